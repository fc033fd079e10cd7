#!/usr/bin/env bash
# Fails when `nbdev-export` or `nbdev-clean` would change the working tree: notebooks, library and
# clean notebooks must agree. Runs on a copy so nothing here is touched.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$top"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$tmp"
cd "$tmp"
git init -q && git add -A && git -c user.email=ci@local -c user.name=ci commit -qm snapshot
nbdev-export
nbdev-clean
if [ -n "$(git status --porcelain)" ]; then
  echo "nbdev-export / nbdev-clean change these files; run 'make export' and commit the result:" >&2
  git status --porcelain >&2
  git --no-pager diff --stat >&2
  exit 1
fi
echo "notebooks, library and clean notebooks agree"
