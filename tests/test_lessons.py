"""The course as lessons a workshop can teach (issue 29): each numbered notebook at the top of nbs/ fits a sitting, says what
you will be able to do, ends in Questions, Exercises (with solutions that run) and Further reading, exports little, and
reads only what is in the repository; the engine lives in nbs/reference/ and no module grows past 600 lines.
These read the saved notebooks and the package's files; they take well under a second."""
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))
REFERENCE = sorted((ROOT/'nbs'/'reference').glob('[0-9]*.ipynb'))
MAX_EXPORTED, MAX_MODULE = 200, 600

def _cells(path): return json.loads(path.read_text(encoding='utf-8'))['cells']
def _src(c): return ''.join(c['source'])
def _exported_lines(cells):
    return sum(len(_src(c).splitlines()) for c in cells if c['cell_type'] == 'code' and re.search(r'^#\|\s*export', _src(c), re.M))
def _sections(cells):
    "[(heading, [cells or markdown pieces])] in order: a `## ` heading may start a cell or sit inside one."
    out = [('', [])]
    for c in cells:
        if c['cell_type'] != 'markdown': out[-1][1].append(c); continue
        piece = []
        for line in _src(c).splitlines():
            m = re.match(r'##\s+(.+)', line)
            if m:
                if piece: out[-1][1].append(dict(cell_type='markdown', source='\n'.join(piece)))
                out.append((m.group(1).strip(), [])); piece = []
            else: piece.append(line)
        if piece: out[-1][1].append(dict(cell_type='markdown', source='\n'.join(piece)))
    return out

def _section(cells, title):
    "The cells (and markdown pieces) under the heading `## title`, up to the next `## ` heading."
    return next((body for head, body in _sections(cells) if re.match(rf'{title}\b', head, re.I)), [])

@pytest.mark.parametrize('path', LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_fits_a_sitting(path):
    cells = _cells(path)
    n = _exported_lines(cells)
    assert n <= MAX_EXPORTED, f'{path.name}: {n} exported lines; a lesson exports at most {MAX_EXPORTED} (the engine goes to nbs/reference/)'
    md = '\n'.join(_src(c) for c in cells if c['cell_type'] == 'markdown')
    assert re.search(r'(?im)^##\s+What you will be able to do', md), f'{path.name}: no "What you will be able to do" section at the top'

@pytest.mark.parametrize('path', LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_ends_in_questions_exercises_reading(path):
    cells = _cells(path)
    questions = _section(cells, 'Questions')
    n_q = sum(len(re.findall(r'(?m)^\s*\d+\.\s+\S', _src(c))) for c in questions if c['cell_type'] == 'markdown')
    assert n_q >= 5, f'{path.name}: {n_q} numbered questions in "## Questions"; at least 5'
    exercises = _section(cells, 'Exercises')
    solutions = [c for c in exercises if c['cell_type'] == 'code' and re.search(r'^#\|\s*code-fold:\s*true', _src(c), re.M)]
    assert len(solutions) >= 2, f'{path.name}: {len(solutions)} folded solution cells in "## Exercises"; at least 2'
    for c in solutions:                                  # solutions run in CI: not flagged away from nbdev-test
        assert not re.search(r'^#\|\s*(eval:\s*false|slow|cuda|notest)', _src(c), re.M), f'{path.name}: a solution that does not run'
    reading = ' '.join(_src(c) for c in _section(cells, 'Further reading'))
    assert len(re.findall(r'https?://', reading)) >= 2, f'{path.name}: "## Further reading" should give at least 2 links'
    heads = [h for h, _ in _sections(cells)]
    assert heads[-3:] == ['Questions', 'Exercises', 'Further reading'], f'{path.name}: the lesson should end with these sections: {heads[-3:]}'

@pytest.mark.parametrize('path', LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_reads_only_the_repository(path):
    "What a student sees on Colab is what the saved outputs show: no lesson reads ../shared/datasets."
    bad = [i for i, c in enumerate(_cells(path)) if 'shared/datasets' in _src(c)]
    assert not bad, f'{path.name}: cells {bad} read ../shared/datasets, which a student does not have; use data/nuclei or generated data'

def test_reference_notebooks_hold_the_engine():
    assert len(REFERENCE) >= 10
    for p in REFERENCE:
        cells = _cells(p)
        assert any(re.match(r'#\|\s*default_exp\s', _src(c)) for c in cells), f'{p.name}: a reference notebook exports a module'

def test_no_module_over_600_lines():
    long = {p.name: n for p in (ROOT/'segment_lib').glob('*.py') if p.name != '_modidx.py'
            for n in [len(p.read_text(encoding='utf-8').splitlines())] if n > MAX_MODULE}
    assert not long, f'modules over {MAX_MODULE} lines (split them, one concept each): {long}'

def test_shared_data_uses_are_listed():
    "Every test that reads ../shared/datasets is in conftest.SHARED_DATASET_TESTS, and every listed one does."
    import ast, sys
    sys.path.insert(0, str(ROOT/'tests'))
    from conftest import SHARED_DATASET_TESTS
    found = {}
    for f in sorted((ROOT/'tests').glob('test_*.py')):
        for node in ast.walk(ast.parse(f.read_text(encoding='utf-8'))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith('test_'):
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and getattr(call.func, 'id', None) == 'shared_dataset':
                        found[f'{f.name}::{node.name}'] = call.args[0].value
    assert found == SHARED_DATASET_TESTS
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):                  # notebooks: none reads it
        assert 'shared/datasets' not in ''.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells']
                                                if c['cell_type'] == 'code'), nb.name

def test_half_day_track_fits_half_a_day():
    "The home page's half-day track: lessons that exist, in course order, whose sittings add up to half a day at most."
    import sys; sys.path.insert(0, str(ROOT/'tools'))
    from docs.workshop import HALF_DAY, HALF_DAY_MINUTES, lessons
    minutes = {stem: m for stem, _, m in lessons()}
    assert set(HALF_DAY) <= set(minutes) and list(HALF_DAY) == [s for s in minutes if s in HALF_DAY]
    assert all(minutes[s] for s in HALF_DAY), 'every lesson of the track states its sitting'
    assert sum(minutes[s] for s in HALF_DAY) <= HALF_DAY_MINUTES
