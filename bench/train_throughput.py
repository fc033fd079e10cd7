#!/usr/bin/env python
"""Training throughput (images/s) of a segment_lib learner against a plain PyTorch loop on the same model and batches.

Both sides train a copy of the same initial model (`seg_learner`'s U-Net or ResNet DynamicUnet) on the same N batches,
pre-collected once from `segmentation_dls(...).train` (so decoding and augmentation cost nothing to either side), with
the same loss object type and the same optimizer: `torch.optim.Adam` (fastai's `Learner` gets it through `OptimWrapper`,
so the update math is identical), constant learning rate, no weight decay.

- learner: `learn.fit(1, lr)` over the N batches, training only: no validation pass and no metrics (`learn.metrics = []`),
  no progress bar; it gets the batches as fastai yields them (`TensorImage` / `TensorMask`), and its default
  `CastToTensor` callback turns them into plain tensors before the model sees them.
- plain: `zero_grad / forward / loss / backward / step / loss.item()` over the same N batches as plain `torch.Tensor`s
  (same storage, same values), as a PyTorch user would write it.

After a warm-up of each, the two are timed alternately (learner first on even repetitions, plain first on odd ones) so
that load from other processes hits both; the report gives the median images/s of each and the ratio learner / plain.
The result is printed and appended, with the date and the machine, to bench/RESULTS.md.

Run from the repository root:  .venv/bin/python bench/train_throughput.py   (about 40 s on 2 CPU cores)
"""
from __future__ import annotations
import argparse, copy, datetime, os, platform, shlex, statistics, sys, time
from pathlib import Path

import torch
import fastai
from fastai.vision.all import DataLoaders, OptimWrapper, set_seed
from functools import partial

from segment_lib.learner import segmentation_dls
from segment_lib.learner import seg_learner, seg_loss, LOSSES

ROOT = Path(__file__).resolve().parent.parent


def markdown_table(df) -> str:
    "A DataFrame as a markdown table of its columns (pandas' to_markdown needs tabulate, which the project does not install)."
    rows = ['| ' + ' | '.join(map(str, df.columns)) + ' |', '|---' * len(df.columns) + '|']
    return '\n'.join(rows + ['| ' + ' | '.join(str(v) for v in r) + ' |' for r in df.values.tolist()])

def cpu_model() -> str:
    "The CPU model name from /proc/cpuinfo (or platform.processor() elsewhere)."
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or 'unknown CPU'


def usable_cores() -> int:
    "Cores this process may run on (affinity), falling back to the machine's count."
    try: return len(os.sched_getaffinity(0))
    except AttributeError: return os.cpu_count() or 1


def collect_batches(dls, n: int) -> list:
    "The first `n` batches of `dls.train` (cycling if it holds fewer), as fastai yields them."
    out = []
    while len(out) < n:
        for b in dls.train:
            out.append(tuple(t.detach() for t in b))
            if len(out) == n: break
    return out


def plain_epoch(model, opt, loss_func, batches) -> float:
    "One pass of a plain PyTorch training loop; returns the mean loss."
    model.train()
    total = 0.
    for x, y in batches:
        opt.zero_grad()
        loss = loss_func(model(x), y)
        loss.backward()
        opt.step()
        total += loss.item()
    return total / len(batches)


def learner_epoch(learn, lr: float) -> None:
    "One `fit` epoch of the fastai learner over the batches in its `dls.train` (its `dls.valid` is empty)."
    learn.fit(1, lr)


def timed(device: str, fn, *args) -> tuple:
    "Wall-clock and CPU seconds (this process, all threads) of `fn(*args)`, waiting for the GPU to finish."
    if device == 'cuda': torch.cuda.synchronize()
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    if device == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - w0, time.process_time() - c0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--data', default=str(ROOT/'data'/'cells'), help='dataset folder (images/, masks/)')
    p.add_argument('--arch', default='unet', help="'unet' (ours) or a ResNet name, e.g. resnet18 (random init)")
    p.add_argument('--size', type=int, default=64, help='image side in pixels (images are resized)')
    p.add_argument('--bs', type=int, default=8, help='batch size')
    p.add_argument('--width', type=int, default=16, help='our U-Net: channels of the first level')
    p.add_argument('--depth', type=int, default=3, help='our U-Net: number of poolings')
    p.add_argument('--loss', default='ce+dice', choices=LOSSES, help='loss function')
    p.add_argument('--lr', type=float, default=1e-3, help='constant learning rate')
    p.add_argument('--batches', type=int, default=16, help='batches per timed repetition')
    p.add_argument('--warmup', type=int, default=1, help='untimed passes of each side before timing')
    p.add_argument('--reps', type=int, default=15, help='timed repetitions of each side')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    p.add_argument('--seed', type=int, default=0, help='seed for data order, augmentation and initialisation')
    p.add_argument('--results', default=str(ROOT/'bench'/'RESULTS.md'), help='markdown file the entry is appended to')
    p.add_argument('--no-record', action='store_true', help='print only; do not append to the results file')
    p.add_argument('--note', default='', help='free text added to the entry (e.g. what else was running)')
    return p.parse_args(argv)


def run(args) -> dict:
    "Time both sides and return the measurements."
    if args.threads: torch.set_num_threads(args.threads)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    load_before = os.getloadavg()
    set_seed(args.seed, reproducible=True)
    dls = segmentation_dls(args.data, bs=args.bs, size=args.size, seed=args.seed, device=device)
    batches = collect_batches(dls, args.batches)
    plain_batches = [tuple(t.as_subclass(torch.Tensor) for t in b) for b in batches]   # what CastToTensor gives the learner

    learn = seg_learner(dls, args.arch, loss=args.loss, pretrained=False, base_width=args.width, depth=args.depth,
                        opt_func=partial(OptimWrapper, opt=torch.optim.Adam))
    learn.metrics = []                                   # training throughput only: no metrics
    learn.dls = DataLoaders(batches, [])                 # the pre-collected batches; empty validation set
    model = copy.deepcopy(learn.model).to(device)        # same initial weights for the plain loop
    learn.model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_func = seg_loss(args.loss)

    def time_learner(): return timed(device, learner_epoch, learn, args.lr)
    def time_plain(): return timed(device, plain_epoch, model, opt, loss_func, plain_batches)

    with learn.no_bar(), learn.no_logging():
        for _ in range(args.warmup): time_learner(); time_plain()
        t_learn, t_plain = [], []
        for rep in range(args.reps):
            if rep % 2 == 0: t_learn.append(time_learner()); t_plain.append(time_plain())
            else: t_plain.append(time_plain()); t_learn.append(time_learner())

    n_images = sum(len(b[0]) for b in batches)
    ips_learn = [n_images / w for w, c in t_learn]
    ips_plain = [n_images / w for w, c in t_plain]
    med_learn, med_plain = statistics.median(ips_learn), statistics.median(ips_plain)
    cpu_learn = statistics.median(n_images / c for w, c in t_learn)
    cpu_plain = statistics.median(n_images / c for w, c in t_plain)
    return dict(ips_learn=ips_learn, ips_plain=ips_plain, median_learn=med_learn, median_plain=med_plain,
                ratio=med_learn / med_plain, cpu_learn=cpu_learn, cpu_plain=cpu_plain, cpu_ratio=cpu_learn / cpu_plain, n_images=n_images, device=device, params=sum(p.numel() for p in model.parameters()),
                threads=torch.get_num_threads(), load_before=load_before, load_after=os.getloadavg())


def machine(res: dict) -> str:
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if res['device'] == 'cuda' else ''
    return (f"{cpu_model()}, {usable_cores()} usable cores{gpu}; python {platform.python_version()}, torch {torch.__version__}, "
            f"fastai {fastai.__version__}, torch threads {res['threads']}")


def report(args, res: dict) -> str:
    "A markdown entry describing the run and its results."
    date = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    model = f"our U-Net (base_width={args.width}, depth={args.depth})" if args.arch == 'unet' else f"{args.arch} DynamicUnet (random init)"
    def fmt(xs): return ', '.join(f'{x:.1f}' for x in xs)
    lb, la = res['load_before'], res['load_after']
    lines = [f"## {date}", '',
             f"- machine: {machine(res)}; device {res['device']}",
             f"- load average (1 min) before / after: {lb[0]:.2f} / {la[0]:.2f}",
             f"- model: {model}, {res['params']:,} parameters; loss {args.loss}; torch.optim.Adam lr={args.lr} constant",
             f"- data: {Path(args.data).name}, {args.size}x{args.size}, batch {args.bs}, {args.batches} batches "
             f"({res['n_images']} images) per repetition; warm-up {args.warmup}, {args.reps} timed repetitions, alternating",
             f"- learner: `learn.fit(1, lr)`, no metrics, no validation, no progress bar; plain: hand-written loop; "
             f"both on the same batches (plain torch.Tensor in the model)",
             f"- images/s learner: {fmt(res['ips_learn'])}  (median **{res['median_learn']:.1f}**)",
             f"- images/s plain:   {fmt(res['ips_plain'])}  (median **{res['median_plain']:.1f}**)",
             f"- ratio learner / plain (medians): **{res['ratio']:.3f}**",
             f"- images per CPU-second (process time, all threads): learner {res['cpu_learn']:.1f}, "
             f"plain {res['cpu_plain']:.1f}, ratio {res['cpu_ratio']:.3f}"]
    if args.note: lines.append(f"- note: {args.note}")
    cmd = shlex.join(['bench/train_throughput.py'] + sys.argv[1:])
    lines.append(f"- command: `{cmd}`")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    if not Path(args.data).is_dir():
        sys.exit(f"{args.data}: no dataset folder here. Pass --data DATA (a folder with images/ and masks/).")
    res = run(args)
    entry = report(args, res)
    print(entry)
    if not args.no_record:
        path = Path(args.results)
        if not path.exists():
            path.write_text("# Training throughput: segment_lib learner vs a plain PyTorch loop\n\n"
                            "Entries appended by `bench/train_throughput.py` (newest last). See bench/README.md.\n\n")
        with path.open('a') as f: f.write('\n' + entry)
        print(f'appended to {path}')


if __name__ == '__main__':
    main()
