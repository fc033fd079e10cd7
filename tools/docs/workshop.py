"""The home page's course table and workshop plan, from the lessons themselves and a recorded run of each.

Each lesson's title and its "*About NN minutes*" line come from the notebook; its CPU run time from
bench/lesson_times.json (written by `bench/lesson_times.py`, which runs every lesson alone as `nbdev-test` does and
records the machine). nbs/index.ipynb prints the tables, so they cannot go stale by hand.
"""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMES = ROOT/'bench'/'lesson_times.json'

# What each lesson needs beyond a CPU, and which lessons a half-day workshop (at most HALF_DAY_MINUTES of sittings)
# keeps: from a dataset folder to a trained model to counted and measured objects, the path a scientist takes with
# their own micrographs; the theory (02_cnn, 03_unet) and the rest make a second day or self-study.
NEEDS = {'05_transfer': 'optional `#| cuda` cells: a GPU and the network (ImageNet weights)',
         '04b_real_micrographs': 'optional `#| slow`/`#| cuda` cells: the 10-minute default run, a GPU',
         '06d_annotations': '', '12_cli': '', '08_hitl': 'optional: napari for `segment-lib correct` (`pip install "segment-lib[napari]"`)'}
HALF_DAY = ('00_data', '04_learner', '09_objects')
HALF_DAY_MINUTES = 240   # a half day: about four hours with a break

def lessons(nbs=ROOT/'nbs'):
    "(notebook stem, title, minutes) of every lesson, in course order."
    out = []
    for p in sorted(nbs.glob('[0-9]*.ipynb')):
        md = '\n'.join(''.join(c['source']) for c in json.loads(p.read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'markdown')
        title = re.search(r'^#\s+(.+)', md, re.M).group(1).strip()
        m = re.search(r'\*About (\d+) minutes', md)
        out.append((p.stem, title, int(m.group(1)) if m else None))
    return out

def workshop_plan(times=None) -> str:
    "The markdown table: lesson, sitting, measured CPU run time, needs, half-day track."
    rec = times or json.loads(TIMES.read_text(encoding='utf-8'))
    rows = ['| lesson | what it teaches | sitting | runs in (CPU) | needs | half day |', '|---|---|---|---|---|---|']
    for stem, title, minutes in lessons():
        s = rec['seconds'].get(stem)
        run = '' if s is None else f'{s / 60:.1f} min' if s >= 90 else f'{s:.0f} s'
        rows.append(f"| [`{stem}`]({stem}.ipynb) | {title} | {minutes or ''} min | {run} | {NEEDS.get(stem, '') or 'a CPU'} | "
                    f"{'yes' if stem in HALF_DAY else ''} |")
    total = sum(m or 0 for s, _, m in lessons() if s in HALF_DAY)
    return ('\n'.join(rows) + f"\n\nRun times: every lesson run alone, top to bottom, as `nbdev-test` runs it ({rec['date']}, "
            f"{rec['machine']}; `bench/lesson_times.json`, made by `bench/lesson_times.py`). The half-day track is "
            f"{len(HALF_DAY)} lessons, {total / 60:.1f} hours of sittings: images, masks and the dataset folder, training "
            "with fastai, and counting and measuring objects, the path from a scientist's own micrographs to numbers. A "
            "second day takes the theory (`02_cnn`, `03_unet`), real micrographs and scale (`04b`, `04d`), confidence and "
            "the annotation loop (`07`, `08`).")

def reference_table(nbs=ROOT/'nbs') -> str:
    "The markdown table of the library reference: each API notebook, its title and the module it exports."
    rows = ['| reference notebook | what it holds | module |', '|---|---|---|']
    for p in sorted((nbs/'reference').glob('[0-9]*.ipynb')):
        cells = json.loads(p.read_text(encoding='utf-8'))['cells']
        src = '\n'.join(''.join(c['source']) for c in cells)
        title = re.search(r'^#\s+(.+)', src, re.M).group(1).strip()
        mod = re.search(r'#\|\s*default_exp\s+(\S+)', src).group(1)
        rows.append(f'| [`{p.stem}`](reference/{p.name}) | {title} | `segment_lib.{mod}` |')
    return '\n'.join(rows)
