#!/usr/bin/env python
"""Where a training step's time goes: loading a batch against the model's step, for the old and the current data path.

`segment-lib train --instances` on the DSB2018 nuclei runs about a second per step on a 2-core CPU, and part of it is not
the model: decoding the PNGs again for every patch, and kornia's elastic deformation, whose 73-tap smoothing oneDNN runs
slowly. This times both paths on the same three-class dataset, in one process, alternately (old, new, new, old, ...):

- old: kornia's `RandomElasticTransform`, every image and mask decoded from its file each time (`cache_mb=0`);
- new (the defaults): `SmoothElastic` (the same warp from the same random numbers, smoothed by two matrix products) and
  the decoded images and masks kept in memory (`cache_mb=1024`).

A callback notes the time between one training step's end and the next one's start (loading and augmenting the batch)
and the step itself (forward, loss, backward, optimiser, bfloat16 where the CPU has it), medians over the steps after
the first epoch's warm-up. The entry is printed and, with --record, appended to bench/RESULTS.md with the machine.

Run from the repository root:  .venv/bin/python bench/data_path.py --record   (about 4 minutes on 2 cores)
"""
from __future__ import annotations
import argparse, datetime, os, shutil, statistics, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=str(ROOT.parent/'shared'/'datasets'/'dsb2018_nuclei'))
    p.add_argument('--steps', type=int, default=40, help='timed steps per run')
    p.add_argument('--reps', type=int, default=2, help='runs of each path')
    p.add_argument('--record', action='store_true')
    a = p.parse_args(argv)
    data = Path(a.data)
    if not (data/'images').is_dir(): sys.exit(f"{data}: the DSB2018 nuclei are not here; nothing to measure.")
    warnings.simplefilter('ignore')
    import torch, kornia.augmentation as K
    import segment_lib.learner as L, segment_lib.augment
    from fastai.vision.all import Callback, set_seed

    class Clock(Callback):
        order = -100
        def before_fit(self): self.load, self.step, self.last = [], [], None
        def before_batch(self):
            if not self.training: return
            self.t0 = time.time()
            if self.last is not None: self.load.append(self.t0 - self.last)
        def after_batch(self):
            if self.training: self.last = time.time(); self.step.append(self.last - self.t0)

    work = Path(tempfile.mkdtemp(prefix='segment_lib_data_path_'))
    try:
        L.three_class_dataset(data, work/'three-class', False, 2)
        smooth, times = segment_lib.augment.SmoothElastic, {'old': [], 'new': []}
        load = os.getloadavg()[0]
        for rep in range(a.reps):
            for name in (('old', 'new') if rep % 2 == 0 else ('new', 'old')):
                segment_lib.augment.SmoothElastic = K.RandomElasticTransform if name == 'old' else smooth     # what `Augmentation` builds
                set_seed(42)
                dls = L.segmentation_dls(work/'three-class', bs=8, patch=256, seed=42, check=False,
                                         cache_mb=0 if name == 'old' else 1024)
                learn = L.seg_learner(dls, 'unet', base_width=16, depth=4, border_weight=10., border_width=2)
                precision, clock = L.mixed_precision_callbacks(learn), Clock()
                learn.metrics = []
                dls.train.n = (len(dls.train_ds) + a.steps) * 8          # one pass over the images (warm-up), then timed steps
                with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=precision + [clock])
                warm = len(dls.train_ds)
                times[name].append((statistics.median(clock.load[warm:]), statistics.median(clock.step[warm:])))
                print(name, [round(t, 3) for t in times[name][-1]], flush=True)
        segment_lib.augment.SmoothElastic = smooth
    finally: shutil.rmtree(work, ignore_errors=True)
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}
    text = '\n'.join([
        f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: where a training step's time goes, old and new data path (`data_path.py`)\n",
        f"- machine: {cpu_model()}, {usable_cores()} usable cores, torch threads {torch.get_num_threads()}, bfloat16: "
        f"{L.cpu_has_bf16()}; load average (1 min) before / after: {load:.2f} / {os.getloadavg()[0]:.2f}",
        f"- DSB2018 nuclei as three-class masks, batches of 8 patches of 256 px, our U-Net (16, depth 4), {a.steps} timed "
        f"steps after one pass over the images, {a.reps} runs of each path, alternating",
        "", "| path | loading a batch (s) | model step (s) | total (s) |", "|---|---|---|---|",
        *[f"| {k} | {v[0]:.3f} | {v[1]:.3f} | {sum(v):.3f} |" for k, v in
          (('old (kornia elastic, no cache)', med['old']), ('new (SmoothElastic, cache)', med['new']))],
        "", "- per-run medians, loading / step (s): " + '; '.join(f"{k} " + ', '.join(f"{l:.3f} / {s:.3f}" for l, s in v)
                                                              for k, v in times.items()),
        f"- loading: **{med['old'][0] / med['new'][0]:.2f}x** faster; a whole step: **{sum(med['old']) / sum(med['new']):.2f}x**",
        f"- command: `bench/data_path.py{' --record' if a.record else ''}`"])
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text + '\n')


if __name__ == '__main__': main()
