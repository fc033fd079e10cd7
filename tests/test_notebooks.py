"""The course as people use it: every course notebook opens on Colab, its saved outputs are clean and its figures are
legible on the docs page, README.md is the home page (nbs/index.ipynb), and the local docs check finds what it must.

These read the notebooks as saved (no kernel) and take about a second, apart from the small docs-site test.
"""
import base64, io, json, re, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import colab                                            # noqa: E402  tools/colab.py
from docs import readme, build, browser                 # noqa: E402  tools/docs/

COURSE = build.course_notebooks()                       # index.ipynb, then 00_data, 00b_check, 01_synthetic, ...
ids = [p.stem for p in COURSE]
SITE = build.site_notebooks()                           # the course, then nbs/reference/*: every page of the docs site
site_ids = [str(p.relative_to(ROOT/'nbs').with_suffix('')) for p in SITE]

def _nb(path): return json.loads(Path(path).read_text(encoding='utf-8'))
def _src(cell): return ''.join(cell['source'])

def _outputs(nb):
    "(cell index, output) for every saved output."
    for i, c in enumerate(nb['cells']):
        for o in c.get('outputs', []): yield i, o

def _texts(o):
    "The text a saved output shows: streams, text/* data, tracebacks."
    if 'text' in o: yield ''.join(o['text'])
    for k, v in o.get('data', {}).items():
        if k.startswith('text/'): yield ''.join(v)
    if o.get('output_type') == 'error': yield '\n'.join(o.get('traceback', []))

def test_course_order():
    "The docs sidebar and the docs check follow the course: index first, then the numbered notebooks in order."
    names = [p.name for p in COURSE]
    assert names[0] == 'index.ipynb' and names[1:3] == ['00_data.ipynb', '00b_check.ipynb'], names
    assert names[1:] == sorted(names[1:])

@pytest.mark.parametrize('path', SITE, ids=site_ids)
def test_title_cell_holds_only_the_title(path):
    "nbdev turns the title cell into the page's front matter (`# title`, `> subtitle`, `- key: value`) and drops the rest."
    cells = _nb(path)['cells']
    extra = [l for l in _src(cells[colab.title_index(cells)]).splitlines()
             if l.strip() and not re.match(r'^(#\s|>\s|-\s+\S.*:)', l)]
    assert not extra, f'{path.name}: the docs site would drop this text of the title cell; move it to the next cell: {extra[:2]}'

# --- Colab ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('path', COURSE, ids=ids)
def test_colab_badge_and_setup_cell(path):
    "Badge right after the title cell, linking this notebook from the one repository setting; then the Colab-only cell."
    cells = _nb(path)['cells']
    fix = f'run: python tools/colab.py {path.relative_to(ROOT)}'
    t = colab.title_index(cells)
    badge = [i for i, c in enumerate(cells) if colab.is_badge_cell(c)]
    setup = [i for i, c in enumerate(cells) if colab.is_setup_cell(c)]
    assert badge == [t + 1], f'{path.name}: no Open-in-Colab badge right after the title cell; {fix}'
    assert colab.colab_url(path.name) in _src(cells[t + 1]), f'{path.name}: the badge links elsewhere; {fix}'
    assert setup == [t + 2], f'{path.name}: no Colab setup cell after the badge; {fix}'
    src = _src(cells[t + 2])
    assert src == colab.setup_src(), f'{path.name}: the Colab setup cell differs from the template; {fix}'
    assert "'google.colab' in sys.modules" in src and not re.search(r'#\|\s*export', src)
    # it runs before any code cell that does anything (the `#| default_exp` cell has nothing to run)
    for c in cells[:t]:
        if c['cell_type'] == 'code': assert not build.strip_directives(_src(c)).strip(), f'{path.name}: code before the Colab cell'

def test_colab_cell_is_a_noop_here():
    "Off Colab the setup cell runs, changes nothing and prints nothing (as under nbdev-test and local Jupyter)."
    import contextlib, os
    assert 'google.colab' not in sys.modules
    cwd, path, out = os.getcwd(), list(sys.path), io.StringIO()
    with contextlib.redirect_stdout(out): exec(colab.setup_src(), {})
    assert (os.getcwd(), sys.path, out.getvalue()) == (cwd, path, '')

def test_colab_script_is_idempotent(tmp_path):
    src = ROOT/'nbs'/'06c_regions.ipynb'
    nb = _nb(src)
    nb['cells'] = [c for c in nb['cells'] if not (colab.is_badge_cell(c) or colab.is_setup_cell(c))]
    p = tmp_path/src.name; p.write_text(json.dumps(nb))
    assert colab.add_colab(p) and not colab.add_colab(p)          # changes once, then nothing more
    cells = _nb(p)['cells']
    assert sum(map(colab.is_badge_cell, cells)) == 1 and sum(map(colab.is_setup_cell, cells)) == 1
    assert colab.main(['--check', str(p)]) == 0

# --- clean outputs ----------------------------------------------------------------------------------------------------

# An absolute path of the machine that ran the notebook (not part of a URL: no word character or '.' before it).
MACHINE_PATH = re.compile(r'(?<![\w.])/(?:tmp|home|work|root)/|\.venv\b')

@pytest.mark.parametrize('path', SITE, ids=site_ids)
def test_saved_outputs_are_clean(path):
    "No progress-bar residue, no warnings, no paths of the machine that ran it, no saved errors."
    problems = []
    for i, o in _outputs(_nb(path)):
        if o.get('output_type') == 'error': problems.append(f"cell {i}: saved error {o.get('ename')}")
        for t in _texts(o):
            if '\r' in t: problems.append(f'cell {i}: carriage return (progress-bar residue): {t[:80]!r}')
            if '<progress' in t: problems.append(f'cell {i}: an HTML progress bar')
            if 'Warning' in t: problems.append(f"cell {i}: a warning: {t[max(0, t.find('Warning') - 80):][:200]!r}")
            m = MACHINE_PATH.search(t)
            if m: problems.append(f'cell {i}: a machine path: {t[max(0, m.start() - 60):m.end() + 60]!r}')
    assert not problems, f'{path.name}:\n  ' + '\n  '.join(problems)

# --- figures ----------------------------------------------------------------------------------------------------------

# The docs page shows figures in a column about 800 px wide. A figure that is much wider than tall (w >= 1.5 h) is a
# row of panels, a sheet of images: at 600 px each of 3-4 panels still gets 150-200 px, enough to see objects and
# read titles, and below that they are thumbnails. Any other figure (one plot, one image, a square grid) must be at
# least 400 px wide: axis labels and ticks are readable and a single image is shown larger than its 128-256 px source.
SHEET_RATIO, SHEET_MIN_W, FIGURE_MIN_W = 1.5, 600, 400

def figure_sizes(nb):
    "(cell index, mime, width, height) of every saved PNG/JPEG figure, as shown: a retina PNG's `width` metadata wins."
    from PIL import Image
    for i, o in _outputs(nb):
        for k, v in o.get('data', {}).items():
            if k in ('image/png', 'image/jpeg'):
                w, h = Image.open(io.BytesIO(base64.b64decode(''.join(v)))).size
                shown = o.get('metadata', {}).get(k, {})
                yield i, k, shown.get('width', w), shown.get('height', h)

def min_width(w, h): return SHEET_MIN_W if w >= SHEET_RATIO * h else FIGURE_MIN_W

@pytest.mark.parametrize('path', SITE, ids=site_ids)
def test_figures_are_legible(path):
    small = [f'cell {i}: {k} {w}x{h} px, needs >= {min_width(w, h)} px wide'
             for i, k, w, h in figure_sizes(_nb(path)) if w < min_width(w, h)]
    assert not small, f'{path.name}: figures too small for the docs page:\n  ' + '\n  '.join(small)

def test_saved_notebooks_stay_small():
    "Saved outputs are for reading, not archiving: the whole course stays a few MB."
    total = sum(p.stat().st_size for p in SITE)                  # 22 lessons and 20 reference notebooks: 6.4 MB in Dec 2026
    assert total < 8e6, f'the course and reference notebooks hold {total / 1e6:.1f} MB'

def test_sidebar_lists_every_page():
    "nbs/sidebar.yml (the Quarto sidebar, custom_sidebar = true) lists the lessons, then the 'Library reference' section."
    assert (ROOT/'nbs'/'sidebar.yml').read_text(encoding='utf-8') == build.sidebar_yml(), \
        'nbs/sidebar.yml is out of date: run `make sidebar`'

# --- README = home page -----------------------------------------------------------------------------------------------

def test_readme_is_the_home_page():
    "README.md is generated from nbs/index.ipynb (tools/docs/readme.py; `make readme`)."
    assert (ROOT/'README.md').read_text(encoding='utf-8') == readme.readme_text(), \
        'README.md differs from nbs/index.ipynb: edit the notebook, then run `make readme`'

def test_readme_clone_line_uses_the_repository_setting():
    user, repo, _, git_url = colab.repo_settings()
    text = (ROOT/'README.md').read_text(encoding='utf-8')
    assert f'git clone {git_url}' in text
    for url in re.findall(r'https://github\.com/[\w.-]+/[\w.-]+', text):
        assert url.rstrip('.') == git_url, f'README links {url}, the repository setting says {git_url}'

# --- the local docs check -----------------------------------------------------------------------------------------

def _mini_course(folder):
    def md(s): return dict(cell_type='markdown', id=f'm{abs(hash(s)) % 10**6}', metadata={}, source=s)
    def nb(cells): return dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)
    png = base64.b64encode(next((ROOT/'data'/'cells'/'images').glob('*.png')).read_bytes()).decode()
    (folder/'reference').mkdir(parents=True)
    (folder/'index.ipynb').write_text(json.dumps(nb([md('# Home\n\n> the title cell becomes front matter'),
        md('[one](01_one.ipynb#good-part), [gone](02_gone.ipynb), [bad](01_one.ipynb#nope), [api](reference/00_api.ipynb#an-api)')])))
    (folder/'01_one.ipynb').write_text(json.dumps(nb([md('# One'), md('## Good part'), dict(
        cell_type='code', id='c1', metadata={}, execution_count=None, source='x',
        outputs=[dict(output_type='display_data', metadata={}, data={'image/png': png, 'text/plain': 'fig'})]),
        dict(cell_type='code', id='c2', metadata={}, execution_count=None, source='#| code-fold: true\n#| code-summary: "Solution"\ny = 1',
             outputs=[dict(output_type='stream', name='stdout', text='solved\n')])])))
    (folder/'reference'/'00_api.ipynb').write_text(json.dumps(nb([md('# An API'), md('## An API\n\n[back](../01_one.ipynb#good-part)')])))
    return folder

def test_docs_check_finds_broken_links(tmp_path):
    pages, problems = build.build_site(tmp_path/'site', nbs=_mini_course(tmp_path/'nbs'), quiet=True)
    assert [p for p, _, _ in pages] == ['index.html', 'one.html', 'reference/api.html']
    home, api = (tmp_path/'site'/'index.html').read_text(), (tmp_path/'site'/'reference'/'api.html').read_text()
    assert 'href="one.html#good-part"' in home and 'href="reference/api.html#an-api"' in home  # .ipynb -> page, as Quarto
    assert 'href="../one.html#good-part"' in api and 'href="../index.html"' in api           # relative to the page's folder
    assert '<p class="section">Library reference</p>' in home
    one = (tmp_path/'site'/'one.html').read_text()
    assert '<details class="code-fold"><summary>Solution</summary>' in one and 'solved' in one   # folded code, output shown
    problems, stats = build.check_links(tmp_path/'site', pages)
    assert len(problems) == 2 and 'not in the course: 02_gone.ipynb' in problems[0] and 'no id "nope"' in problems[1]

@pytest.mark.skipif(not browser.find_chromium(), reason='no Chromium here (apt-get install chromium)')
def test_docs_check_in_chromium(tmp_path):
    pages, _ = build.build_site(tmp_path/'site', nbs=_mini_course(tmp_path/'nbs'), quiet=True)
    problems, stats = browser.check_pages(tmp_path/'site', [p for p, _, _ in pages], log=lambda *a: None)
    assert stats['pages'] == 3 and stats['images'] == 1
    assert any('02_gone.ipynb: 404' in p for p in problems) and any('no anchor "nope"' in p for p in problems)

def test_the_course_passes_the_docs_check(tmp_path):
    "Every notebook goes through nbdev's docs processing (as nbdev-docs would) and every local link of the site resolves."
    pages, problems = build.build_site(tmp_path/'site', quiet=True)
    problems += build.check_links(tmp_path/'site', pages)[0]
    assert len(pages) == len(build.site_notebooks()) and problems == [], '\n'.join(problems)
