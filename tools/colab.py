#!/usr/bin/env python3
"""Give course notebooks an "Open in Colab" badge and a Colab-only setup cell. Idempotent.

    python tools/colab.py nbs/00_data.ipynb nbs/01_synthetic.ipynb ...   # these notebooks
    python tools/colab.py --all                                          # every course notebook (nbs/index + NN_*)
    python tools/colab.py --check nbs/*.ipynb                            # only report; exit 1 if one needs changes

Each notebook gets, right after its title cell (`# Title` + `> subtitle`):
1. a markdown cell holding only the badge, linking
   https://colab.research.google.com/github/<user>/<repo>/blob/<branch>/nbs/<name>.ipynb;
2. a code cell that, on Colab only (`'google.colab' in sys.modules`), clones the repository, runs `pip install -e .`
   without constraints (our dependency ranges are loose, so Colab's own torch stays), puts the clone on `sys.path`,
   changes into `nbs/` so the notebooks' relative paths (`../data/...`) work, and says which device it will use.
   Elsewhere (Jupyter, `nbdev-test`) it does nothing and prints nothing.

The cell is `#| hide`: the docs site and the README do not show it (a reader of the site is not on Colab, and the
badge says where to go); it is not exported (no `#| export`). The repository, user and branch come from the one place
that holds them: nbdev's settings, i.e. `[project.urls] Repository` and `[tool.nbdev] branch` in pyproject.toml.
Running the script again replaces both cells with the current template (so a changed URL propagates) and moves
nothing else; the notebook file is only rewritten when something changed.
"""
import argparse, hashlib, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BADGE_SVG = 'https://colab.research.google.com/assets/colab-badge.svg'
SETUP_MARK = '# Colab setup (tools/colab.py):'   # first comment line of the setup cell; how we find it again

def repo_settings(root=ROOT):
    "(user, repo, branch, git_url) from nbdev's settings in pyproject.toml ([project.urls] Repository, [tool.nbdev])."
    try:
        from nbdev.config import get_config
        cfg = get_config(root)
        git_url, branch = cfg.git_url, cfg.get('branch') or 'main'
    except ImportError:                          # nbdev not installed: read pyproject.toml the same way nbdev does
        import tomllib
        d = tomllib.loads((root/'pyproject.toml').read_text())
        urls = d.get('project', {}).get('urls', {})
        git_url = (urls.get('Repository') or urls.get('Source') or '').rstrip('/')
        branch = d.get('tool', {}).get('nbdev', {}).get('branch', 'main')
    m = re.match(r'https?://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?$', git_url or '')
    if not m: sys.exit(f"pyproject.toml [project.urls] Repository is not a GitHub URL: {git_url!r}")
    return m.group(1), m.group(2), branch, f'https://github.com/{m.group(1)}/{m.group(2)}'

def colab_url(nb_name, root=ROOT):
    user, repo, branch, _ = repo_settings(root)
    return f'https://colab.research.google.com/github/{user}/{repo}/blob/{branch}/nbs/{nb_name}'

def badge_md(nb_name, root=ROOT):
    return f'[![Open In Colab]({BADGE_SVG})]({colab_url(nb_name, root)})'

def setup_src(root=ROOT):
    user, repo, branch, git_url = repo_settings(root)
    return f'''#| hide
{SETUP_MARK} on Colab, get the course and install segment_lib, keeping Colab's own torch.
# Does nothing anywhere else (your own Jupyter, nbdev-test).
import sys
if 'google.colab' in sys.modules:
    import os, subprocess, torch
    repo = '/content/{repo}'
    if not os.path.isdir(repo): subprocess.run(['git', 'clone', '-q', '-b', '{branch}', '{git_url}', repo], check=True)
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '-e', repo], check=True)  # no constraints: torch stays
    if repo not in sys.path: sys.path.insert(0, repo)
    os.chdir(f'{{repo}}/nbs')                      # the notebooks read ../data/... relative to nbs/
    print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else
          'CPU only (Runtime > Change runtime type > GPU for the #| cuda cells)')'''

def _cell_id(nb_name, role):
    return hashlib.sha1(f'{nb_name}:{role}'.encode()).hexdigest()[:8]

def _src(cell): return ''.join(cell.get('source', []))

def _lines(text):
    ls = text.split('\n')
    return [l + '\n' for l in ls[:-1]] + ([ls[-1]] if ls[-1] else [])

def is_badge_cell(cell): return cell['cell_type'] == 'markdown' and BADGE_SVG in _src(cell)
def is_setup_cell(cell): return cell['cell_type'] == 'code' and SETUP_MARK in _src(cell)

def title_index(cells):
    "Index of the title cell: the first markdown cell starting with '# '."
    for i, c in enumerate(cells):
        if c['cell_type'] == 'markdown' and _src(c).lstrip().startswith('# '): return i
    raise ValueError('no title cell (a markdown cell starting with "# ")')

def add_colab(path, root=ROOT, check=False):
    "Insert or refresh the badge and the setup cell of notebook `path`; return True when it changed (or would)."
    path = Path(path)
    text = path.read_text(encoding='utf-8')
    nb = json.loads(text)
    cells = [c for c in nb['cells'] if not (is_badge_cell(c) or is_setup_cell(c))]
    t = title_index(cells)
    badge = dict(cell_type='markdown', id=_cell_id(path.name, 'badge'), metadata={}, source=_lines(badge_md(path.name, root)))
    setup = dict(cell_type='code', execution_count=None, id=_cell_id(path.name, 'colab'), metadata={}, outputs=[],
                 source=_lines(setup_src(root)))
    nb['cells'] = cells[:t + 1] + [badge, setup] + cells[t + 1:]
    new = json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + '\n'   # nbdev's own format (fastcore write_nb)
    changed = new != text
    if changed and not check: path.write_text(new, encoding='utf-8')
    return changed

def course_notebooks(root=ROOT):
    "index.ipynb and the numbered notebooks, in course order."
    nbs = root/'nbs'
    return [nbs/'index.ipynb'] + sorted(p for p in nbs.glob('*.ipynb') if re.match(r'\d', p.name))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to update')
    ap.add_argument('--all', action='store_true', help='every course notebook (index and the numbered ones)')
    ap.add_argument('--check', action='store_true', help='change nothing; exit 1 when a notebook needs the update')
    a = ap.parse_args(argv)
    paths = course_notebooks() if a.all else [Path(p) for p in a.notebooks]
    if not paths: ap.error('name notebooks or pass --all')
    stale = []
    for p in paths:
        if add_colab(p, check=a.check): stale.append(p)
        print(f"{'needs update' if a.check else 'updated'}: {p}" if p in stale else f'up to date: {p}')
    return 1 if a.check and stale else 0

if __name__ == '__main__': sys.exit(main())
