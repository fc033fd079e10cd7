#!/usr/bin/env python
"""Active learning on CPU: least-confident-first against random (and a diversity-aware variant), larger than 08_hitl.

The experiment of `08_hitl` (segment_lib.active_learning.active_learning_run), with more seeds, rounds and pool images:

- pool: `write_mixed_pool` course crystals at 64 px, most from an ordinary session and `--hard` of them from a "bad
  session" (noisy, unevenly lit, many crystals out of focus); held-out: another such set (a quarter hard), never chosen from;
- the generator's exact masks play the annotator; every run starts from the same `--start` random images per seed,
  adds `--k` per round chosen by each strategy, and trains a U-Net (width 8, depth 3) from scratch every round with the
  same recipe for every strategy (`--epochs` epochs, so steps grow with the labelled set as when a person retrains, and
  at least `--min-steps` steps; batch 4, every labelled image, no validation split). `--epochs 8 --min-steps 40`
  gives a nearly fixed step budget instead;
- after each training: foreground Dice on all held-out images and on its hard ones.

Optionally (`--control`), the same on homogeneous course data (`write_course_dataset`), where a tiny U-Net saturates
from a handful of images: the case where no choice of images can help.

Prints a markdown entry and appends it (dated, with the machine) to bench/RESULTS.md unless --no-record.
Run from the repository root:  OMP_NUM_THREADS=1 .venv/bin/python bench/active_learning.py   (about 12 minutes on 1 core with --control)
"""
from __future__ import annotations
import argparse, datetime, os, shlex, sys, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores  # noqa: E402  (one CPU description for every benchmark)
from segment_lib.active_learning import (STRATEGIES, active_learning_run, annotations_to_reach,  # noqa: E402
                                         plot_learning_curves, write_mixed_pool)


def table(curves:pd.DataFrame) -> str:
    "Markdown table: mean (sd) over seeds of Dice, Dice on hard images and hard images picked, per strategy and size."
    cols = [c for c in ('dice', 'dice_hard', 'hard') if c in curves]
    g = curves.groupby(['labelled', 'strategy'], sort=False)[cols]
    m, s = g.mean(), g.std(ddof=0)
    rows = ['| annotated | strategy | ' + ' | '.join({'dice': 'Dice (all)', 'dice_hard': 'Dice (hard)', 'hard': 'hard images picked'}[c] for c in cols) + ' |',
            '|---|---|' + '---|' * len(cols)]
    for (n, strat), r in m.iterrows():
        sd = s.loc[(n, strat)]
        rows.append(f'| {n} | {strat} | ' + ' | '.join(f'{r[c]:.3f} ({sd[c]:.3f})' if c != 'hard' else f'{r[c]:.1f}' for c in cols) + ' |')
    return '\n'.join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, default=5); p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--start', type=int, default=4); p.add_argument('--k', type=int, default=4)
    p.add_argument('--pool', type=int, default=64); p.add_argument('--heldout', type=int, default=32)
    p.add_argument('--hard', type=float, default=0.15); p.add_argument('--epochs', type=int, default=15)
    p.add_argument('--min-steps', type=int, default=24)
    p.add_argument('--strategies', nargs='+', default=list(STRATEGIES))
    p.add_argument('--control', action='store_true', help="also run on homogeneous course crystals")
    p.add_argument('--figure', default=None, help="also save the learning curves as a PNG here")
    p.add_argument('--no-record', action='store_true')
    a = p.parse_args()
    warnings.filterwarnings('ignore')
    import torch
    tmp, t0, load0 = Path(tempfile.mkdtemp(prefix='al_bench_')), time.time(), os.getloadavg()[0]
    hard = write_mixed_pool(tmp/'pool', n=a.pool, hard_fraction=a.hard, size=64, seed=0)
    held_hard = write_mixed_pool(tmp/'heldout', n=a.heldout, hard_fraction=0.25, size=64, seed=1)
    settings = dict(seeds=tuple(range(a.seeds)), start=a.start, k=a.k, rounds=a.rounds, epochs=a.epochs, min_steps=a.min_steps)
    curves = active_learning_run(tmp/'pool', tmp/'heldout', strategies=tuple(a.strategies), hard=hard, heldout_hard=held_hard,
                                 progress=True, **settings)
    mixed_s = time.time() - t0
    if a.figure: plot_learning_curves(curves).savefig(a.figure, dpi=80, bbox_inches='tight')
    final = curves[curves['round'] == a.rounds].groupby('strategy')
    target = float(final.dice.mean().get('random', np.nan))
    reach = annotations_to_reach(curves, target)
    lines = [f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: active learning (`bench/active_learning.py`)", '',
             f"- machine: {cpu_model()}, {usable_cores()} usable cores, CPU only; torch threads "
             f"{torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); load average before {load0:.2f}",
             f"- pool: {a.pool} course crystals at 64 px, {len(hard)} from the hard session ({a.hard:.0%}); held-out: {a.heldout}, "
             f"{len(held_hard)} hard; start {a.start} random images per seed, +{a.k} per round, {a.rounds} rounds, "
             f"{a.seeds} seeds (start set and initialisation)",
             f"- training every round from scratch: U-Net width 8, depth 3, batch 4, {a.epochs} epochs and at least "
             f"{a.min_steps} steps, all labelled images, no validation split; {mixed_s / 60:.1f} min",
             '', table(curves), '',
             f"- annotations to reach random's final mean Dice ({target:.3f}, {a.start + a.k * a.rounds} images): "
             + ', '.join(f"{s} {'not reached' if pd.isna(v) else int(v)}" for s, v in reach.items())]
    if a.control:
        from segment_lib.synthetic import write_course_dataset
        t1 = time.time()
        write_course_dataset('crystals', tmp/'cpool', n=a.pool, size=64, seed=0, progress=False)
        write_course_dataset('crystals', tmp/'cheld', n=a.heldout, size=64, seed=1, progress=False)
        control = active_learning_run(tmp/'cpool', tmp/'cheld', strategies=('least-confident', 'random'), **settings)
        lines += ['', f"- control, homogeneous course crystals (same settings, {(time.time() - t1) / 60:.1f} min):", '',
                  table(control)]
    lines += ['', f"- command: `{' '.join(shlex.quote(x) for x in ['bench/active_learning.py', *sys.argv[1:]])}`", '']
    text = '\n'.join(lines)
    print(text)
    if not a.no_record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write('\n' + text)


if __name__ == '__main__':
    main()
