#!/usr/bin/env python
"""Can the post-processing of a three-class model be tuned on its validation images, as StarDist tunes its thresholds?

Takes the work folder of a `dsb_instances.py` run (its model, its train/ and test/ folders), predicts the class
probabilities of the 24 images that `train` held out for validation and of the 30 test images once (with the test-time
augmentation `predict` uses for three-class models, 'all'), then turns them into instances in several ways and scores
each on both sets with the library's object matcher:

- the default: `three_class_to_instances` (argmax classes; the model's own `instance_limits` for specks and seeds);
- thresholds instead of the argmax: seeds where P(interior) > t_seed, objects where 1 - P(background) > t_fg;
- other speck and seed sizes (`min_size`, `min_seed_size`) than the ones `train` took from its training objects.

A lever pays if the setting best on the validation images is also better than the default on the test images.
Run from the repository root, about 4 min on 2 cores:  .venv/bin/python bench/dsb_postprocess.py WORK --record
"""
from __future__ import annotations
import argparse, datetime, itertools, json, os, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores

THRESHOLDS = list(itertools.product([0.3, 0.4, 0.5, 0.6, 0.7], [0.3, 0.4, 0.5, 0.6]))   # (t_seed, t_fg)
SIZES = [(ms, ss) for ms in (8, 16, 24, 32, 48) for ss in (1, 4, 8, 12, 16)]               # (min_size, min_seed_size)


def predict(work: Path, cache: Path) -> None:
    "Probabilities (float32 .npy) of the validation and test images, in `cache`."
    from segment_lib.inference import load_model, predict_probs
    from segment_lib.data import read_image
    learn = load_model(work/'model')
    report = json.loads((work/'model'/'report.json').read_text())
    parts = dict(val=[work/'train'/'images'/n for n in report['validation_images']],
                 test=sorted((work/'test'/'images').iterdir()))
    cache.mkdir(parents=True, exist_ok=True)
    for part, files in parts.items():
        for f in files:
            out = cache/f"{part}_{f.stem}.npy"
            if not out.exists(): np.save(out, predict_probs(learn, read_image(f), tta='all').astype(np.float32))


def thresholded(p: np.ndarray, t_seed: float, t_fg: float, min_size: int, min_seed_size: int) -> np.ndarray:
    "Instances from probabilities with thresholds instead of the argmax; otherwise as `three_class_to_instances`."
    from skimage import measure, segmentation
    from segment_lib.instances import drop_small_objects
    fg = (1 - p[0]) > t_fg
    seeds = drop_small_objects(measure.label((p[1] > t_seed) & fg, connectivity=1), min_seed_size)
    ids = segmentation.watershed(p[2], seeds, mask=fg, connectivity=2) if seeds.max() else np.zeros(fg.shape, np.int32)
    seedless = measure.label(fg & (ids == 0), connectivity=1)
    return drop_small_objects(np.where(seedless > 0, seedless + ids.max(), ids), min_size)


def score_one(args) -> tuple:
    "Object scores of one cached image for every variant."
    from segment_lib.instances import three_class_to_instances
    from segment_lib.metrics import object_scores, read_any_mask
    work, part, f, limits = args
    stem = f.stem[len(part) + 1:]
    truth = read_any_mask(next((work/('train' if part == 'val' else 'test')/'masks').glob(stem + '.*')), kind='instances')[1]
    p = np.load(f)
    preds = {'default': three_class_to_instances(p, **limits)}
    preds |= {('thresholds', ts, tf): thresholded(p, ts, tf, **limits) for ts, tf in THRESHOLDS}
    preds |= {('sizes', ms, ss): three_class_to_instances(p, min_size=ms, min_seed_size=ss) for ms, ss in SIZES}
    return part, {k: object_scores(truth, v, thresholds=(0.5, 0.75)) for k, v in preds.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('work', help='the --work folder of a bench/dsb_instances.py run')
    p.add_argument('--record', action='store_true', help='append the entry to bench/RESULTS.md')
    a = p.parse_args(argv)
    work = Path(a.work)
    from segment_lib.metrics import object_summary
    report = json.loads((work/'model'/'report.json').read_text())
    limits = report['model']['instance_limits']
    cache = work/'probs'
    predict(work, cache)
    rows = {'val': [], 'test': []}
    jobs = [(work, part, f, limits) for part in rows for f in sorted(cache.glob(part + '_*.npy'))]
    with ProcessPoolExecutor(2) as ex:
        for part, scores in ex.map(score_one, jobs): rows[part].append(scores)
    table = {k: {part: object_summary([r[k] for r in rows[part]]) for part in rows} for k in rows['val'][0]}
    def best(kind): return max((k for k in table if k[0] == kind), key=lambda k: table[k]['val']['f1'])
    def line(label, k):
        v, t = table[k]['val'], table[k]['test']
        return f"| {label} | {v['f1']:.4f} | {t['f1']:.4f} | {t['ap']['0.50']:.4f} | {t['ap']['0.75']:.4f} | {t['pred']} |"
    bt, bs = best('thresholds'), best('sizes')
    test_best = max(table, key=lambda k: table[k]['test']['f1'])
    lines = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: DSB2018, post-processing tuned on the validation images",
             f"- machine: {cpu_model()}, {usable_cores()} usable cores, CPU only; model: `{work}/model` (seed "
             f"{report['settings']['seed']}, {report['plan'].get('steps_done')} steps); its limits {limits}; "
             f"{len(rows['val'])} validation and {len(rows['test'])} test images, tta 'all'",
             "", "| objects from | validation F1 @0.5 | test F1 @0.5 | test AP @0.5 | test AP @0.75 | test predicted |",
             "|---|---|---|---|---|---|", line('default (argmax, model limits)', 'default'),
             line(f"thresholds best on validation: t_seed {bt[1]}, t_fg {bt[2]}", bt),
             line(f"sizes best on validation: min_size {bs[1]}, min_seed_size {bs[2]}", bs),
             line(f"best on test, for reference: {test_best if test_best == 'default' else ' '.join(map(str, test_best))}", test_best),
             "", f"- grid: thresholds (t_seed, t_fg) {THRESHOLDS}; sizes (min_size, min_seed_size) {SIZES}",
             f"- command: `bench/dsb_postprocess.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    text = '\n'.join(lines) + '\n'
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)


if __name__ == '__main__': main()
