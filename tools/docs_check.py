#!/usr/bin/env python3
"""The local docs check, where Quarto is not available: `make docs-check` (and `make docs` without Quarto).

1. Every notebook in nbs/ and nbs/reference/ goes through nbdev's own docs processing (front matter, hidden cells, `show_doc` for every
   export, which runs the notebook's import and export cells as nbdev-docs does) and becomes an HTML page with its
   saved outputs (nbconvert instead of Quarto), with a sidebar of all pages in course order (index, 00_data,
   00b_check, 01_synthetic, ..., then the "Library reference" section: reference/data.html, ...), under the names nbdev publishes (`data.html`, ...), links between notebooks
   rewritten to the pages (see tools/docs/build.py).
2. Static check: nbdev's processing succeeded, no saved error output, every local link reaches a page and anchor that
   exist, local images exist.
3. Browser check: headless Chromium loads the home page and every course page and checks that the page loads with no
   error, that every figure has loaded (naturalWidth > 0), and that every local link and anchor resolves
   (see tools/docs/browser.py). Without Chromium this part is skipped with a message, or fails with
   --require-browser.
Exits 1 with the list of failures; the pages stay in --out to look at.
"""
import argparse, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs.build import ROOT, build_site, check_links      # noqa: E402
from docs.browser import find_chromium, check_pages        # noqa: E402

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_proc'/'docs_check'), help='folder for the HTML pages (replaced)')
    ap.add_argument('--no-browser', action='store_true', help='skip the Chromium part')
    ap.add_argument('--require-browser', action='store_true', help='fail when no Chromium is found')
    ap.add_argument('--timeout', type=int, default=30, help='seconds a page may take to load')
    a = ap.parse_args(argv)
    t0 = time.time()
    print(f'docs check: notebooks -> HTML pages in {a.out}')
    pages, problems = build_site(a.out)
    t_build = time.time() - t0
    link_problems, st = check_links(a.out, pages)
    problems += link_problems
    print(f"built {len(pages)} pages in {t_build:.1f} s; static check: {st['internal_links']} local links, "
          f"{st['images']} images ({st['external_images']} hosted elsewhere, not checked offline), "
          f"{len(link_problems)} problems")
    exe = None if a.no_browser else find_chromium()
    if a.no_browser: print('browser check: skipped (--no-browser)')
    elif exe is None:
        msg = ('browser check: SKIPPED: no Chromium found (install it: apt-get install chromium, '
               'or set CHROMIUM=/path/to/chrome); the HTML conversion and the link check above still ran')
        if a.require_browser: problems.append(msg)
        print(msg)
    else:
        print(f'browser check: {exe}, headless, {len(pages)} pages')
        try:
            bp, bs = check_pages(a.out, [p for p, _, _ in pages], exe=exe, timeout=a.timeout)
        except Exception as e:                                   # Chromium would not start: a failure, with why
            bp, bs = [f'browser check could not run: {type(e).__name__}: {e}'], None
        problems += bp
        if bs: print(f"browser check: {bs['pages']} pages loaded, {bs['images']} figures loaded "
                     f"({bs['external_images']} hosted elsewhere skipped), {bs['local_links']} local links followed, "
                     f"{bs['seconds']} s")
    if problems:
        print(f'\ndocs check FAILED ({len(problems)} problems, {time.time() - t0:.0f} s):', file=sys.stderr)
        for p in problems: print('  - ' + p, file=sys.stderr)
        return 1
    print(f'docs check passed in {time.time() - t0:.0f} s')
    return 0

if __name__ == '__main__': sys.exit(main())
