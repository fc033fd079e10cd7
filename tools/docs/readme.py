"""README.md from nbs/index.ipynb, without Quarto (`nbdev-readme` needs it): `make readme`, `python tools/docs/readme.py`.

The README is the home page as GitHub shows it: markdown cells as written, code cells that the docs show as ```python
blocks followed by their text output, `#| hide` cells left out (the Colab setup cell), and links to notebooks
(`00_data.ipynb`) pointed at `nbs/00_data.ipynb` so they work from the repository's front page.
tests/test_notebooks.py fails when README.md and the notebook disagree.
"""
import json, re, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from docs.build import ROOT, directives, strip_directives   # noqa: E402

INDEX, README = ROOT/'nbs'/'index.ipynb', ROOT/'README.md'

def _nb_links(md):
    "Relative links to notebooks -> nbs/NAME.ipynb (the README sits one folder up)."
    return re.sub(r'\]\((?!https?:|/|#|nbs/)([^)\s]+\.ipynb(?:#[^)\s]*)?)\)', r'](nbs/\1)', md)

def _output_markdown(o):
    "Markdown a cell displays (`IPython.display.Markdown`): it goes into the README as markdown, not as a code block."
    if o.get('output_type') in ('execute_result', 'display_data') and 'text/markdown' in o.get('data', {}):
        return ''.join(o['data']['text/markdown'])
    return ''

def _output_text(o):
    if o.get('output_type') == 'stream' and o.get('name') == 'stdout': return ''.join(o['text'])
    if o.get('output_type') in ('execute_result', 'display_data') and 'text/plain' in o.get('data', {}) \
       and not any(k.startswith('image/') or k in ('text/html', 'text/markdown') for k in o['data']): return ''.join(o['data']['text/plain'])
    return ''

def readme_text(index=INDEX):
    parts = []
    for c in json.loads(Path(index).read_text(encoding='utf-8'))['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': parts.append(_nb_links(src.strip()))
        elif c['cell_type'] == 'code':
            d = directives(src)
            if 'hide' in d or d.get('include') == 'false': continue
            code = strip_directives(src).strip()
            if code and d.get('echo') != 'false': parts.append(f'```python\n{code}\n```')
            md = ''.join(_output_markdown(o) for o in c.get('outputs', [])).strip()
            if md and d.get('output') != 'false': parts.append(md)
            out = ''.join(_output_text(o) for o in c.get('outputs', [])).rstrip('\n')
            if out and d.get('output') != 'false': parts.append(f'```\n{out}\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text = readme_text()
    changed = not README.exists() or README.read_text(encoding='utf-8') != text
    if changed: README.write_text(text, encoding='utf-8')
    print(f"{'wrote' if changed else 'up to date:'} {README.relative_to(ROOT)} from {INDEX.relative_to(ROOT)}")
