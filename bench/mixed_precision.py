#!/usr/bin/env python
"""Seconds per training step of our U-Net on EM-sized patches: float32 against bfloat16 mixed precision on the CPU.

One step = forward pass, cross-entropy + Dice loss, backward pass, as `train` runs it (random data of the right shape:
batch 8, 3 x 256 x 256, two classes; our U-Net, base width 16, depth 4, as `train`'s defaults). float32 is the model as
built; bfloat16 is `CPUMixedPrecision`'s recipe: `torch.autocast('cpu', torch.bfloat16)` around forward and loss, the
model in channels-last memory. The two are timed alternately after a warm-up, medians reported; the entry is printed
and, with --record, appended to bench/RESULTS.md with the machine and the load average.

Run from the repository root:  .venv/bin/python bench/mixed_precision.py --record   (about a minute on 2 cores)
"""
from __future__ import annotations
import argparse, copy, datetime, os, statistics, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores
from segment_lib.unet import UNet
from segment_lib.learner import seg_loss, cpu_has_bf16


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--record', action='store_true')
    a = p.parse_args(argv)
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 256, 256), torch.randint(0, 2, (8, 256, 256))
    fp32 = UNet(3, 2, depth=4, base_width=16)
    bf16 = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
    loss_func = seg_loss('ce+dice')
    def step(model, half):
        t = time.time()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=half): loss = loss_func(model(x).float(), y)
        loss.backward(); model.zero_grad()
        return time.time() - t
    load = os.getloadavg()[0]
    step(fp32, False); step(bf16, True)
    times = {'float32': [], 'bfloat16': []}
    for i in range(a.reps):
        for name in (('float32', 'bfloat16') if i % 2 == 0 else ('bfloat16', 'float32')):
            times[name].append(step(fp32, False) if name == 'float32' else step(bf16, True))
    med = {k: statistics.median(v) for k, v in times.items()}
    text = '\n'.join([f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: training step, float32 vs bfloat16 on the CPU\n",
        f"- machine: {cpu_model()}, {usable_cores()} usable cores, torch threads {torch.get_num_threads()}, native bfloat16: "
        f"{cpu_has_bf16()}; load average (1 min) before / after: {load:.2f} / {os.getloadavg()[0]:.2f}",
        "- step: our U-Net (16, depth 4), batch 8 x 3 x 256 x 256, ce+dice loss, forward + backward",
        f"- seconds per step, float32: {', '.join(f'{t:.2f}' for t in times['float32'])} (median **{med['float32']:.2f}**)",
        f"- seconds per step, bfloat16 autocast + channels-last: {', '.join(f'{t:.2f}' for t in times['bfloat16'])} (median **{med['bfloat16']:.2f}**)",
        f"- ratio float32 / bfloat16 (medians): **{med['float32'] / med['bfloat16']:.2f}x**",
        f"- command: `bench/mixed_precision.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]) + '\n'
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)


if __name__ == '__main__': main()
