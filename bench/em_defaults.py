#!/usr/bin/env python
"""`segment-lib train` with its default settings on the real ISBI 2012 EM slices, scored on held-out slices.

The split is fixed: the 24 slices sorted by name, the first 18 for training (train itself holds 3 of them out for
validation), the last 6 (18.png to 23.png) for the test. Each seed runs, as a user would, in a fresh process:

    segment-lib train EM_TRAIN --out WORK/seed-N --seed N        (defaults: 10 minutes on a CPU, our U-Net, 256-px patches)
    segment-lib evaluate WORK/seed-N EM_TEST --out WORK/seed-N/test.json

and reports wall time (train command, everything included), optimiser steps, pixel accuracy and the Dice of both
classes on the 6 test slices. Membranes are class 0 ('background' of the 0/255 masks: 0 = membrane, 255 = cell).
Extra arguments after `--` go to `segment-lib train` (e.g. `-- --class-weights balanced` for an ablation).
The entry is printed and, with --record, appended to bench/RESULTS.md with the machine and the load average.

Run from the repository root:  .venv/bin/python bench/em_defaults.py --seeds 42 1 2 --record   (about 35 min on 2 cores)
"""
from __future__ import annotations
import argparse, datetime, json, os, shlex, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores


def split(data: Path, work: Path, n_train: int = 18) -> tuple:
    "Symlinked train/ and test/ dataset folders: the first `n_train` slices by name, and the rest."
    stems = sorted(p.stem for p in (data/'images').iterdir())
    masks = {p.stem: p for p in (data/'masks').iterdir()}
    images = {p.stem: p for p in (data/'images').iterdir()}
    for name, part in (('train', stems[:n_train]), ('test', stems[n_train:])):
        for sub in ('images', 'masks'): (work/name/sub).mkdir(parents=True, exist_ok=True)
        for s in part:
            for sub, src in (('images', images[s]), ('masks', masks[s])):
                link = work/name/sub/src.name
                if not link.exists(): link.symlink_to(src.resolve())
    return work/'train', work/'test', stems[n_train:]


def run(cmd: list) -> float:
    "Run a command, echo its output, fail loudly; return its wall time in seconds."
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(r.stdout[-3000:]); sys.stdout.flush()
    if r.returncode: sys.exit(f"failed ({r.returncode}): {shlex.join(cmd)}\n{r.stderr[-3000:]}")
    return time.time() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=str(ROOT.parent/'shared'/'datasets'/'isbi2012_em'))
    p.add_argument('--work', default='/tmp/segment_lib_em_bench')
    p.add_argument('--seeds', type=int, nargs='+', default=[42, 1, 2])
    p.add_argument('--record', action='store_true', help='append the entry to bench/RESULTS.md')
    p.add_argument('--note', default='')
    p.add_argument('train_args', nargs='*', help='extra arguments for segment-lib train, after --')
    a = p.parse_args(argv)
    data, work = Path(a.data), Path(a.work)
    if not (data/'images').is_dir(): sys.exit(f"{data}: the ISBI 2012 EM dataset is not here; nothing to measure.")
    shutil.rmtree(work, ignore_errors=True)
    train_dir, test_dir, test_stems = split(data, work)
    exe = str(Path(sys.executable).parent/'segment-lib')
    rows, load_before = [], os.getloadavg()
    for seed in a.seeds:
        out = work/f'seed-{seed}'
        wall = run([exe, 'train', str(train_dir), '--out', str(out), '--seed', str(seed), *a.train_args])
        run([exe, 'evaluate', str(out), str(test_dir), '--out', str(out/'test.json')])
        test, report = json.loads((out/'test.json').read_text()), json.loads((out/'report.json').read_text())
        rows.append(dict(seed=seed, wall_s=round(wall, 1), steps=report['plan'].get('steps_done', report['plan']['steps']), patch=report['plan']['patch'],
                         s_per_step=report['plan'].get('seconds_per_step'), accuracy=test['pixel_accuracy'],
                         membrane_dice=test['per_class']['background']['dice'], cell_dice=test['per_class']['object']['dice']))
        print(rows[-1], flush=True)
    acc = [r['accuracy'] for r in rows]
    lines = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: `segment-lib train` defaults on ISBI 2012 EM\n",
             f"- machine: {cpu_model()}, {usable_cores()} usable cores, CPU only; load average (1 min) before / after: "
             f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}" + (f"; {a.note}" if a.note else ''),
             f"- split: train on the first 18 slices by name (3 of them held out by train for validation), test on "
             f"{', '.join(test_stems)}; train arguments: defaults" + (f" plus `{' '.join(a.train_args)}`" if a.train_args else ''),
             "", "| seed | train wall s | steps | s/step (measured) | test pixel accuracy | membrane Dice | cell Dice |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['wall_s']} | {r['steps']} | {r['s_per_step']} | {r['accuracy']:.4f} | {r['membrane_dice']:.4f} | "
              f"{r['cell_dice']:.4f} |" for r in rows]
    lines += ["", f"- pixel accuracy: mean {statistics.mean(acc):.4f}, min {min(acc):.4f}, max {max(acc):.4f} over {len(acc)} seeds",
              f"- command: `bench/em_defaults.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    text = '\n'.join(lines) + '\n'
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)


if __name__ == '__main__': main()
