#!/usr/bin/env python
"""Instance segmentation of real nuclei (DSB2018) with the default instance pipeline, scored as papers score it.

The split is fixed: the 150 images sorted by file name, the first 120 for training (train itself holds 24 of them out
for validation), the last 30 for the test. As a user would, in fresh processes:

    segment-lib train TRAIN --out WORK/model --instances --minutes M --seed S   (three-class: background/interior/boundary)
    segment-lib predict WORK/model TEST --out WORK/pred                          (writes pred/masks and pred/instances)
    segment-lib score WORK/pred TEST --out WORK/scores.json                      (object F1, AP at IoU 0.5 ... 0.95)

Then, from the same model, the two simpler ways to get objects compared in 09_objects: the predicted foreground
(interior + boundary) labelled by connected components, and split by a distance-transform watershed (`score --split`).
The entry is printed and, with --record, appended to bench/RESULTS.md with the machine and the load average.

Run from the repository root:  .venv/bin/python bench/dsb_instances.py --minutes 25 --record   (about 30 min on 2 cores)
"""
from __future__ import annotations
import argparse, datetime, json, os, shlex, shutil, subprocess, sys, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores
from em_defaults import run
from emps_defaults import per_image as per_image_errors


def split(data: Path, work: Path, n_train: int = 120) -> tuple:
    "Symlinked train/ and test/ dataset folders: the first `n_train` images by name, and the rest."
    images = {p.stem: p for p in (data/'images').iterdir()}
    masks = {p.stem: p for p in (data/'masks').iterdir()}
    stems = sorted(images)
    for name, part in (('train', stems[:n_train]), ('test', stems[n_train:])):
        for sub in ('images', 'masks'): (work/name/sub).mkdir(parents=True, exist_ok=True)
        for s in part:
            for sub, src in (('images', images[s]), ('masks', masks[s])): (work/name/sub/src.name).symlink_to(src.resolve())
    return work/'train', work/'test', len(stems) - n_train


def foreground_folder(pred: Path, out: Path) -> Path:
    "Binary masks (interior or boundary = object) from a three-class prediction folder, as a semantic model would give."
    from segment_lib.data import read_mask_array, save_mask
    for f in sorted((pred/'masks').glob('*.png')):
        save_mask((read_mask_array(f) > 0).astype(np.uint8), out/'masks'/f.name)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=str(ROOT.parent/'shared'/'datasets'/'dsb2018_nuclei'))
    p.add_argument('--work', default='/tmp/segment_lib_dsb_bench')
    p.add_argument('--minutes', type=float, default=25)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--record', action='store_true', help='append the entry to bench/RESULTS.md')
    p.add_argument('--note', default='')
    p.add_argument('train_args', nargs='*', help='extra arguments for segment-lib train, after --')
    a = p.parse_args(argv)
    data, work = Path(a.data), Path(a.work)
    if not (data/'images').is_dir(): sys.exit(f"{data}: the DSB2018 nuclei are not here; nothing to measure.")
    shutil.rmtree(work, ignore_errors=True)
    train_dir, test_dir, n_test = split(data, work)
    exe = str(Path(sys.executable).parent/'segment-lib')
    load_before = os.getloadavg()
    wall = run([exe, 'train', str(train_dir), '--out', str(work/'model'), '--instances', '--minutes', str(a.minutes),
                '--seed', str(a.seed), *a.train_args])
    t = time.time(); run([exe, 'predict', str(work/'model'), str(test_dir), '--out', str(work/'pred')]); predict_s = time.time() - t
    rows = {}
    for name, pred, extra in (('three-class (default)', work/'pred', []),
                              ('foreground + connected components', foreground_folder(work/'pred', work/'fg'), []),
                              ('foreground + distance watershed', work/'fg', ['--split'])):
        out = work/f"scores-{len(rows)}.json"
        run([exe, 'score', str(pred), str(test_dir), '--out', str(out), *extra])
        ob = json.loads(out.read_text())['objects']
        rows[name] = dict(f1=ob['f1'], ap50=ob['ap']['0.50'], ap75=ob['ap']['0.75'], true=ob['true'], pred=ob['pred'],
                          splits=ob['splits'], merges=ob['merges'])
        print(name, rows[name], flush=True)
    report = json.loads((work/'model'/'report.json').read_text())
    lines = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: DSB2018 nuclei, `train --instances` (three-class)\n",
             f"- machine: {cpu_model()}, {usable_cores()} usable cores, CPU only; load average (1 min) before / after: "
             f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}" + (f"; {a.note}" if a.note else ''),
             f"- split: the 150 images sorted by name, first 120 to train (24 of them held out by train for validation), last "
             f"{n_test} to test; seed {a.seed}; budget `--minutes {a.minutes:g}`" + (f" plus `{' '.join(a.train_args)}`" if a.train_args else ''),
             f"- training: {wall:.0f} s wall (command), {report['plan'].get('steps_done', report['plan']['steps'])} steps of {report['settings']['bs']} patches of "
             f"{report['plan']['patch']} px; prediction of the {n_test} test images: {predict_s:.0f} s",
             "", "| objects from | F1 @0.5 | AP @0.5 | AP @0.75 | true | predicted | splits | merges |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['f1']} | {v['ap50']} | {v['ap75']} | {v['true']} | {v['pred']} | {v['splits']} | {v['merges']} |"
              for k, v in rows.items()]
    per_image = json.loads((work/'scores-0.json').read_text())['per_image']
    worst = sorted(per_image, key=lambda r: r['objects']['tp'] - r['objects']['true'])[:4]
    st = report['settings']
    lines += ["", f"- train settings: boundary width {st.get('boundary_width')} (min interior {st.get('min_interior', 0)}), border weight {st.get('border_weight')}, inverted "
              f"patches {st['augment']['invert'] if st['augment'] else 0}, loss {st['loss']}, U-Net width {st['base_width']} depth "
              f"{st['depth']}; torch threads {report['machine']['cpu_threads']}; {report['plan'].get('steps_done')} steps done",
              "- most true objects missed (three-class): " + '; '.join(
                  f"{r['name'][:8]} ({r['objects']['true']} true, {r['objects']['tp']} found, {r['objects']['merges']} merges)" for r in worst)]
    err = per_image_errors(work/'pred', test_dir)
    lines += [f"- per test image (three-class): median |diameter error| {err['median_diameter_error']:.1%} ({err['images_within_10pct']:.0%} "
              f"of images within 10%), median |count error| {err['median_count_error']:.1%}",
              f"- training plan: {report.get('training_plan', {}).get('why', {}).get('scale', 'none recorded')}"]
    lines += ["", f"- command: `bench/dsb_instances.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    text = '\n'.join(lines) + '\n'
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)


if __name__ == '__main__': main()
