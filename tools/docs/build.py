"""Notebooks -> HTML pages with their saved outputs, a course sidebar, and a static link check. No Quarto, no network.

Each notebook goes through nbdev's own docs processing (`nbdev.processors.FilterDefaults`, what `nbdev-docs` runs
before Quarto): title and subtitle into front matter, `#| hide` / `#| export` cells out, `show_doc` entries for every
exported function and class (by running the export and import cells, as nbdev-docs does, so a notebook whose cells
break that step fails here as it would fail the docs build). The processed notebook then goes through nbconvert's
HTML exporter instead of Quarto, under the page names nbdev publishes (`nbdev.config.nbpath2html`: `00_data.ipynb` ->
`data.html`), with links between notebooks (`01_synthetic.ipynb#cells`) rewritten to the pages (`synthetic.html#cells`)
as Quarto does. Markdown goes through nbconvert's renderer (mistune), not pandoc, so headings get both ids: nbconvert's
(`Quick-start`) and pandoc's (`quick-start`), and a link written for either resolves.
"""
import copy, html, json, os, re, shutil
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit, unquote

ROOT = Path(__file__).resolve().parents[2]
NBS = ROOT/'nbs'

REFERENCE = 'reference'   # nbs/reference/: the library's API notebooks, a sidebar section of their own
SECTIONS = (('', 'Course'), (REFERENCE, 'Library reference'))   # (folder under nbs/, sidebar title)

def page_name(nb_path, nbs=NBS):
    "The page nbdev/Quarto publish for `nb_path`, relative to the site root: folder kept, numeric prefix dropped, `.html`."
    nb_path = Path(nb_path)
    folder = nb_path.parent.name if nb_path.parent.name == REFERENCE else ''
    name = re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb_path.name.lower()).rsplit('.', 1)[0] + '.html'
    return f'{folder}/{name}' if folder else name

def _listed(folder):
    return sorted(p for p in folder.glob('*.ipynb') if p.name != 'index.ipynb' and not p.name.startswith(('_', '.')))

def course_notebooks(nbs=NBS):
    "The lessons: index.ipynb first, then every other notebook at the top of nbs/ not starting with `_` or `.`, in name order."
    return ([nbs/'index.ipynb'] if (nbs/'index.ipynb').exists() else []) + _listed(nbs)

def reference_notebooks(nbs=NBS):
    "The library reference: the notebooks in nbs/reference/, in name order."
    return _listed(nbs/REFERENCE)

def site_notebooks(nbs=NBS):
    "Every page of the site in sidebar order: the course, then the library reference."
    return course_notebooks(nbs) + reference_notebooks(nbs)

def sidebar_yml(nbs=NBS):
    "The Quarto sidebar (nbs/sidebar.yml, `custom_sidebar = true`): the lessons, then a 'Library reference' section."
    lines = ['website:', '  sidebar:', '    contents:']
    lines += [f'      - {p.relative_to(nbs).as_posix()}' for p in course_notebooks(nbs)]
    ref = reference_notebooks(nbs)
    if ref:
        lines += ['      - section: Library reference', '        contents:']
        lines += [f'          - {p.relative_to(nbs).as_posix()}' for p in ref]
    return '\n'.join(lines) + '\n'

_re_dir = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def directives(src):
    "nbdev/Quarto `#| name value` lines at the top of a code cell, as {name: value}."
    d = {}
    for line in src.splitlines():
        m = _re_dir.match(line)
        if not m:
            if line.strip(): break
            continue
        d[m.group(1)] = m.group(2)
    return d

def strip_directives(src):
    lines = src.splitlines()
    while lines and (not lines[0].strip() or _re_dir.match(lines[0])): lines.pop(0)
    return '\n'.join(lines)

def title_of(nb):
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.match(r'\s*#\s+(.+)', ''.join(c['source']))
            if m: return m.group(1).strip().replace('`', '')
    return None

def doc_cells(nb):
    "Without nbdev: the notebook as the docs show it (the fallback when its processing fails), and its saved error outputs."
    nb, problems, keep = copy.deepcopy(nb), [], []
    for i, c in enumerate(nb['cells']):
        c['metadata'] = {}                              # run-time metadata (timings) is not part of the page
        if c['cell_type'] != 'code': keep.append(c); continue
        src = ''.join(c['source']); d = directives(src)
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error': problems.append(f"cell {i}: saved error output {o.get('ename')}: {o.get('evalue')}")
        if 'hide' in d or d.get('include') == 'false' or (set(d) & {'default_exp'} and not strip_directives(src).strip()): continue
        c['source'] = '' if d.get('echo') == 'false' else strip_directives(src)
        if d.get('output') == 'false': c['outputs'] = []
        keep.append(c)
    nb['cells'] = keep
    return nb, problems

def pandoc_id(text):
    "The id pandoc (Quarto) gives a heading."
    s = re.sub(r'[^\w\s.-]', '', text.strip().lower(), flags=re.UNICODE)
    s = re.sub(r'\s+', '-', s)
    return re.sub(r'^[^a-z]+', '', s) or 'section'

def _add_pandoc_ids(body):
    def f(m):
        tag, attrs, inner = m.group(1), m.group(2), m.group(3)
        text = re.sub(r'<[^>]+>', '', inner).replace('¶', '')
        pid = pandoc_id(html.unescape(text))
        if f'id="{pid}"' in attrs: return m.group(0)
        return f'<{tag}{attrs}><span id="{pid}"></span>{inner}</{tag}>'
    return re.sub(r'<(h[1-6])([^>]*)>(.*?)</\1>', f, body, flags=re.S)

def _rewrite_links(body, nb_path, known):
    "href='X.ipynb[#a]' (relative to `nb_path`) -> the page of X, relative to this page; an unknown notebook keeps its .ipynb link."
    here = Path(page_name(nb_path)).parent
    def f(m):
        q, url = m.group(1), html.unescape(m.group(2))
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path.endswith('.ipynb'): return m.group(0)
        target = (Path(nb_path).parent/unquote(parts.path)).resolve()
        new = os.path.relpath(page_name(target), here) if target in known else url
        if parts.fragment: new += '#' + parts.fragment
        return f'href={q}{html.escape(new)}{q}'
    return re.sub(r'href=(["\'])(.*?)\1', f, body)

CSS = """
body { margin: 0; font-family: system-ui, sans-serif; line-height: 1.5; color: #222; }
#sidebar { position: fixed; top: 0; bottom: 0; left: 0; width: 250px; overflow-y: auto; padding: 1rem;
           background: #f6f7f9; border-right: 1px solid #ddd; font-size: 0.9rem; box-sizing: border-box; }
#sidebar ul { padding-left: 0; list-style: none; } #sidebar li { margin: .3rem 0; }
#sidebar a.active { font-weight: bold; } #sidebar .num { color: #888; font-family: monospace; }
#sidebar p.section { margin: 1rem 0 .2rem; font-weight: bold; color: #555; }
details.code-fold > summary { cursor: pointer; color: #2a6; }
main { margin-left: 250px; padding: 1rem 2rem; max-width: 920px; }
p.description { font-style: italic; font-size: 125%; opacity: .75; }
img { max-width: 100%; height: auto; }
pre { background: #f6f7f9; padding: .5rem; overflow-x: auto; }
.jp-InputPrompt, .jp-OutputPrompt { display: none; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 2px 6px; }
"""

def page_html(title, body, nav, current):
    "One page: the sidebar (a list per section, links relative to this page) and the body."
    up = os.path.relpath('.', Path(current).parent)
    def link(n): return os.path.relpath(n, Path(current).parent)
    items = ''
    for folder, heading in SECTIONS:
        entries = [(n, t, num) for n, t, num in nav if (Path(n).parent.name if '/' in n else '') == folder]
        if not entries: continue
        if folder: items += f'</ul><p class="section">{html.escape(heading)}</p><ul>\n'
        items += '\n'.join(f'<li><a href="{link(n)}"{" class=active" if n == current else ""}>'
                           f'<span class="num">{html.escape(num)}</span> {html.escape(t)}</a></li>' for n, t, num in entries)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>{html.escape(title)}</title><style>{CSS}</style></head>
<body><nav id="sidebar"><a href="{up}/index.html"><b>segment_lib</b></a><ul>
{items}
</ul></nav>
<main id="content">
{body}
</main></body></html>
"""

def nbdev_process(path):
    """nbdev's docs processing of notebook `path` (a separate process each: it runs cells, as nbdev-docs does).
    Returns (processed notebook as a dict, front matter dict, error message or None)."""
    import yaml
    from fastcore.nbio import read_nb, nb2dict
    from nbdev.processors import FilterDefaults
    import warnings
    os.environ['IN_TEST'] = '1'                        # as nbdev's docs workers set it
    os.chdir(ROOT)                                     # where nbdev-docs runs: the project root (this is a worker process)
    try:
        with warnings.catch_warnings(record=True) as caught:   # nbdev warns about cells mixing imports and code:
            warnings.simplefilter('always')                   # they run during the docs build (see its FAQ)
            nb = read_nb(path)
            FilterDefaults()(nb)
    except Exception as e:
        msg = str(e).strip().splitlines()
        return None, {}, f"nbdev's docs processing fails (nbdev-docs would too): {' | '.join(msg[-3:])[:600]}"
    mixed = sum('containing imports and other code' in str(w.message) for w in caught)
    if mixed: print(f'  note: {Path(path).name}: {mixed} cell(s) mix imports with other code; nbdev-docs runs them (it ran them fine)')
    d = nb2dict(nb)
    fm = {}
    if d['cells'] and d['cells'][0]['cell_type'] == 'raw':
        src = ''.join(d['cells'][0]['source']).strip()
        if src.startswith('---'): fm = yaml.safe_load(src.strip('-')) or {}; d['cells'] = d['cells'][1:]
    return d, fm, None

def _render_cells(d):
    "Apply the Quarto cell options nbdev leaves in the processed notebook (echo, output, include)."
    keep = []
    for c in d['cells']:
        c['metadata'] = {}                              # run-time metadata (timings) is not part of the page
        if c['cell_type'] == 'raw': continue
        if c['cell_type'] == 'code':
            src = ''.join(c['source']); dd = directives(src)
            if dd.get('include') == 'false': continue
            c['source'] = '' if dd.get('echo') == 'false' else strip_directives(src)
            if dd.get('output') == 'false': c['outputs'] = []
            if not c['source'] and not c.get('outputs'): continue
            if not c['source']: c['metadata'] = {'tags': ['remove_input']}       # show_doc: its output only
            elif dd.get('code-fold', '').strip('"\'') in ('true', 'show'):       # folded code, as Quarto shows it
                summary = dd.get('code-summary', 'Code').strip('"\'')
                keep.append(dict(cell_type='markdown', id=f"{c.get('id', 'x')}-fold", metadata={}, source=(
                    f'<details class="code-fold"><summary>{html.escape(summary)}</summary>\n\n```python\n{c["source"]}\n```\n\n</details>')))
                c['source'], c['metadata'] = '', {'tags': ['remove_input']}
                if not c.get('outputs'): continue
        keep.append(c)
    d['cells'] = keep
    return d

def _head(fm, title):
    desc = fm.get('description')
    return f'<h1 class="title">{html.escape(title)}</h1>' + (f'<p class="description">{html.escape(desc)}</p>' if desc else '')

def build_site(out, nbs=NBS, quiet=False, workers=2):
    """Write one HTML page per notebook into `out`, plus the local files markdown refers to.
    Returns (pages: [(page, title, notebook)], problems: [str])."""
    from nbconvert import HTMLExporter
    import nbformat
    out = Path(out)
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    nb_paths = site_notebooks(nbs)
    known = {p.resolve() for p in nb_paths}
    nbs_json = {p: json.loads(p.read_text(encoding='utf-8')) for p in nb_paths}
    nav = [(page_name(p, nbs), title_of(nb) or p.stem, re.match(r'(\d*[a-z]?)(?=_)|', p.name).group(1) or '')
           for p, nb in nbs_json.items()]
    from traitlets.config import Config
    conf = Config()
    conf.TagRemovePreprocessor.enabled, conf.TagRemovePreprocessor.remove_input_tags = True, {'remove_input'}
    exporter = HTMLExporter(config=conf, template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
    pages, problems = [], []
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context('spawn')) as pool:
        processed = dict(zip(nb_paths, pool.map(nbdev_process, nb_paths)))
    for p, nb in nbs_json.items():
        problems += [f'{p.relative_to(nbs)}: {x}' for x in doc_cells(nb)[1]]          # saved error outputs
        d, fm, err = processed[p]
        if err: problems.append(f'{p.relative_to(nbs)}: {err}'); d, fm = doc_cells(nb)[0], {}   # still show the page
        title = fm.get('title') or title_of(nb)
        if not title: problems.append(f'{p.relative_to(nbs)}: no title cell (a markdown cell starting with "# ")')
        body, _ = exporter.from_notebook_node(nbformat.reads(json.dumps(_render_cells(d)), as_version=4))
        body = _add_pandoc_ids(_rewrite_links((_head(fm, title) if fm.get('title') else '') + body, p, known))
        name = page_name(p, nbs)
        (out/name).parent.mkdir(parents=True, exist_ok=True)
        (out/name).write_text(page_html(title or p.stem, body, nav, name), encoding='utf-8')
        pages.append((name, title or p.stem, p))
        # local files that markdown points at (![](images/x.png), [data](../data/x.csv)) travel with the page
        for ref in re.findall(r'(?:src|href)=["\']([^"\'#?]+)', body):
            if urlsplit(ref).scheme or ref.startswith('/') or ref.endswith('.html'): continue
            src = (p.parent/unquote(ref)).resolve()
            if src.is_file() and src.is_relative_to(ROOT):
                dst = (out/Path(name).parent/unquote(ref)).resolve()
                if dst.is_relative_to(out.resolve()):
                    dst.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(src, dst)
        if not quiet: print(f'  {str(p.relative_to(nbs)):32} -> {name}')
    return pages, problems

class _Refs(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids, self.links, self.imgs = set(), [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])
        if tag == 'a' and a.get('href') is not None: self.links.append(a['href'])
        if tag == 'img': self.imgs.append(a.get('src') or '')

def parse_page(path):
    r = _Refs(); r.feed(Path(path).read_text(encoding='utf-8')); return r

def is_external(url):
    return bool(urlsplit(url).scheme) and not url.startswith(('data:', 'file:'))

def check_links(out, pages):
    """Static check of every page: internal links reach an existing page (and its anchor), local images exist.
    Returns (problems, stats)."""
    out = Path(out); problems = []; parsed = {}
    stats = dict(pages=len(pages), internal_links=0, external_links=0, images=0, external_images=0)
    def page(rel):
        if rel not in parsed: parsed[rel] = parse_page(out/rel) if (out/rel).is_file() else None
        return parsed[rel]
    for name, _, nb in pages:
        r = page(name)
        for href in r.links:
            if is_external(href) or href.startswith(('mailto:', 'javascript:')): stats['external_links'] += 1; continue
            stats['internal_links'] += 1
            parts = urlsplit(href)
            target = name if not parts.path else str(Path(name).parent/unquote(parts.path))
            if parts.path.endswith('.ipynb'):
                problems.append(f'{name} ({nb.name}): link to a notebook that is not in the course: {href}'); continue
            if not (out/target).resolve().is_relative_to(out.resolve()) or not (out/target).is_file():
                problems.append(f'{name} ({nb.name}): broken link {href}: no page {target}'); continue
            ids = page(target).ids if target.endswith('.html') else None   # HTML: the raw fragment, else decoded
            if parts.fragment and ids is not None and parts.fragment not in ids and unquote(parts.fragment) not in ids:
                problems.append(f'{name} ({nb.name}): broken anchor {href}: {target} has no id "{unquote(parts.fragment)}"')
        for src in r.imgs:
            stats['images'] += 1
            if src.startswith('data:'): continue
            if is_external(src): stats['external_images'] += 1; continue
            if not (out/Path(name).parent/unquote(urlsplit(src).path)).is_file():
                problems.append(f'{name} ({nb.name}): image file missing: {src}')
    return problems, stats
