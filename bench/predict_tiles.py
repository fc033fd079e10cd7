"""Tiled prediction of large images on the CPU: peak memory, time per megapixel, seams, and speed against the bare network.

A small U-Net is trained briefly on data/cells (the weights only need to make masks worth comparing) and exported. A
synthetic 2048 px micrograph (a 1024 px `make_cells` sample and its mirror images, so it stays seamless) is mirror-tiled
to each size. Each size runs in a fresh process, which reports:

- peak memory while predicting with `predict_image(learn, image, keep_probs=False)` (the lean path `predict_folder`
  uses): the high-water mark of resident memory (VmHWM), restarted just before predicting (Linux `/proc/self/clear_refs`),
  because importing fastai and loading the model peak higher than the process then stays; the process's lifetime
  `ru_maxrss` too (which cannot be restarted once threads have come and gone; the process is started through a tiny
  wrapper, because on Linux `ru_maxrss` starts from the size of the process that started it), the RSS just before predicting (Python,
  torch, fastai, the model and the image) and the size of the arrays that must grow with the image (the uint8 RGB
  input, the uint8 mask, the float16 confidence);
- seconds per megapixel of that prediction;
- seam disagreement (sizes up to --seam-max): the fraction of pixels whose class differs between the default tiled
  prediction and one tile covering the whole image;
- throughput against the bare network: the same tiles, in the same batches, through `learn.model` under
  `torch.no_grad()`, timing only the forward calls (tiles cut and normalised outside the timed part), once before and
  once after the prediction (their mean, so that a machine slowing down or speeding up counts for both); and, from
  the prediction itself, the share of its time spent inside the network (forward hooks), which no drift can disturb.

    .venv/bin/python bench/predict_tiles.py                     # 2k, 4k, 8k; about 5 minutes on 2 idle cores
    .venv/bin/python bench/predict_tiles.py --sizes 2048 4096 --record
"""
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 2 ** 20

def mirror_tile(base, size:int):
    "A size x size x 3 image filled with `base` and its mirror images (seamless), with no array larger than the result."
    import numpy as np
    out = np.empty((size, size, 3), np.uint8)
    b = base.shape[0]
    if size <= b: return np.ascontiguousarray(base[:size, :size])
    for i, r in enumerate(range(0, size, b)):
        for j, c in enumerate(range(0, size, b)):
            tile = base[::-1] if i % 2 else base
            out[r:r + b, c:c + b] = tile[:, ::-1] if j % 2 else tile
    return out

def status_mb(field:str) -> float:
    "A memory field of /proc/self/status in MB: VmRSS (resident now) or VmHWM (its high-water mark)."
    return next(int(l.split()[1]) for l in open(f'/proc/self/status') if l.startswith(field + ':')) / 1024

def child(a):
    "One size, in this fresh process: prints one JSON line."
    warnings.filterwarnings('ignore')
    import numpy as np, torch
    torch.set_num_threads(a.threads)
    from segment_lib.data import read_image
    from segment_lib.inference import load_model, predict_image, tile_starts, _normalise, _ceil32
    learn = load_model(a.model)
    model, info = learn.model.eval(), learn.model_info
    image = mirror_tile(read_image(a.image), a.child)
    tile = _ceil32(info.tile or 256)
    starts = tile_starts(a.child, tile, 0.25)
    positions = [(r, c) for r in starts for c in starts]

    def bare() -> float:
        "Seconds of the bare network's forward calls on the same tiles, in the same batches (tiles cut outside the timing)."
        spent = 0.
        with torch.no_grad():
            for i in range(0, len(positions), a.batch_size):
                xb = torch.from_numpy(np.stack([_normalise(image[r:r + tile, c:c + tile], info) for r, c in positions[i:i + a.batch_size]]))
                t = time.perf_counter(); model(xb); spent += time.perf_counter() - t
        return spent

    predict_image(learn, image[:256, :256], keep_probs=False)              # warm-up: the first call sets up the kernels
    bare_before = bare()                                                   # bare runs before and after: machine drift
    startup_peak = status_mb('VmHWM')            # imports and model loading peak higher than they stay:
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')                 # restart the high-water mark
    before = status_mb('VmRSS')
    inside, started = [0.], []                   # time spent inside the network during the prediction itself
    hooks = [model.register_forward_pre_hook(lambda m, x: started.append(time.perf_counter())),
             model.register_forward_hook(lambda m, x, y: inside.append(time.perf_counter() - started.pop()))]
    t0 = time.perf_counter()
    pred = predict_image(learn, image, keep_probs=False, batch_size=a.batch_size)
    seconds = time.perf_counter() - t0
    peak, maxrss = status_mb('VmHWM'), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for h in hooks: h.remove()
    bare_after = bare()
    seam = None
    if a.child <= a.seam_max:                                             # one tile covering the whole image
        whole = predict_image(learn, image, keep_probs=False, tile=_ceil32(a.child))
        seam = float((whole.mask != pred.mask).mean())
    print(json.dumps(dict(size=a.child, tiles=len(positions), tile=tile, seconds=seconds, bare_seconds=(bare_before + bare_after) / 2,
                          bare_runs=[bare_before, bare_after], model_seconds=sum(inside), rss_before_mb=before,
                          startup_peak_mb=startup_peak, peak_mb=peak, maxrss_mb=maxrss, input_mb=image.nbytes / MB,
                          mask_mb=pred.mask.nbytes / MB, confidence_mb=pred.confidence.nbytes / MB, seam=seam,
                          foreground=float(pred.mask.mean()))))

def busy_processes() -> str:
    "Other processes above 10% CPU right now (ps), e.g. another job on a shared machine."
    out = subprocess.run(['ps', '-eo', 'pcpu,pid,args', '--sort=-pcpu'], capture_output=True, text=True).stdout.splitlines()[1:]
    busy = [l.split(None, 2) for l in out if l.split() and float(l.split()[0]) > 10 and int(l.split()[1]) != os.getpid()]
    return ', '.join(f"{Path(args.split()[1] if args.split()[0].endswith('python') and len(args.split()) > 1 else args.split()[0]).name} "
                     f"({float(cpu):.0f}%)" for cpu, _, args in busy[:4]) or 'none'

def machine(threads) -> str:
    import torch
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    return (f"{cpu}, {len(os.sched_getaffinity(0))} usable cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB; "
            f"python {platform.python_version()}, torch {torch.__version__}, torch threads {threads}; device cpu")

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[2048, 4096, 8192], help='image sides, each in a fresh process')
    p.add_argument('--threads', type=int, default=2, help='torch threads')
    p.add_argument('--base-width', type=int, default=16, help="our U-Net's first-level channels")
    p.add_argument('--depth', type=int, default=3, help="our U-Net's poolings")
    p.add_argument('--epochs', type=int, default=3, help='training epochs on data/cells (0: random init)')
    p.add_argument('--batch-size', type=int, default=4, help='tiles per forward pass')
    p.add_argument('--seam-max', type=int, default=2048, help='largest size also predicted as one tile (memory!)')
    p.add_argument('--record', action='store_true', help='append the entry to bench/RESULTS.md')
    p.add_argument('--child', type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument('--model', default=None, help=argparse.SUPPRESS)
    p.add_argument('--image', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return child(a)

    warnings.filterwarnings('ignore')
    import numpy as np, torch
    torch.set_num_threads(a.threads)
    from fastai.vision.all import set_seed
    from segment_lib.data import save_image
    from segment_lib.learner import segmentation_dls, seg_learner, export_learner
    from segment_lib.synthetic import make_cells
    load_before, busy = os.getloadavg()[0], busy_processes()
    t_start = time.time()
    tmp = Path(tempfile.mkdtemp(prefix='segment_lib_bench_'))
    set_seed(0, reproducible=True)
    dls = segmentation_dls(ROOT/'data'/'cells', bs=4, seed=0)
    learn = seg_learner(dls, 'unet', base_width=a.base_width, depth=a.depth)
    if a.epochs:
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, 1e-2)
    with learn.no_bar(): dice = float(learn.validate()[2]) if a.epochs else None
    model_path = export_learner(learn, tmp/'model.pkl')
    n_params = sum(q.numel() for q in learn.model.parameters())
    save_image(mirror_tile(make_cells(size=1024, seed=0).image, 2048), tmp/'base.png')
    rows = []
    for size in a.sizes:
        # through a tiny wrapper process: on Linux a process's ru_maxrss starts from the size of the process that
        # started it, and this one holds a trained model
        cmd = [sys.executable, '-c', 'import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))',
               sys.executable, __file__, '--child', str(size), '--model', str(model_path), '--image', str(tmp/'base.png'),
               '--threads', str(a.threads), '--batch-size', str(a.batch_size), '--seam-max', str(a.seam_max)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode: sys.exit(f"size {size} failed:\n{r.stderr[-3000:]}")
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(f"  {size}: {rows[-1]['seconds']:.1f} s, peak {rows[-1]['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0]

    first = rows[0]
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: tiled prediction of large images (`predict_tiles.py`)\n",
             f"- machine: {machine(a.threads)}",
             f"- load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}; other processes above 10% CPU just before: {busy}",
             f"- model: our U-Net (base_width={a.base_width}, depth={a.depth}), {n_params:,} parameters, "
             + (f"trained {a.epochs} epoch{'s' if a.epochs > 1 else ''} on data/cells, batch 4, lr 1e-2 (validation Dice {dice:.2f})" if a.epochs else "random init")
             + f"; tile {first['tile']} px (the model's training size), overlap 0.25, batch {a.batch_size} tiles",
             "- image: synthetic cells (`make_cells(size=1024, seed=0)` mirror-tiled), uint8 RGB; each size in a fresh process",
             "- path: `predict_image(learn, image, keep_probs=False)` (mask + float16 confidence, as `predict_folder` uses it); "
             "bare: the same tiles and batches through `learn.model` under `torch.no_grad()`, forward calls only, run before and "
             "after the prediction (mean); in the network: share of the prediction's own time inside `learn.model` (forward hooks)\n",
             "| size | tiles | s | s / Mpx | bare s (before, after) | speed vs bare | in the network | RSS before MB | peak RSS while predicting MB | peak - before MB "
             "| image-sized arrays MB (input + mask + confidence) | ru_maxrss MB (lifetime) | seam: classes differ |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mpx = r['size'] ** 2 / 1e6
        arrays = r['input_mb'] + r['mask_mb'] + r['confidence_mb']
        lines.append(f"| {r['size']} | {r['tiles']} | {r['seconds']:.1f} | {r['seconds'] / mpx:.2f} | {r['bare_seconds']:.1f} "
                     f"({r['bare_runs'][0]:.1f}, {r['bare_runs'][1]:.1f}) | {r['bare_seconds'] / r['seconds']:.2f} | "
                     f"{r['model_seconds'] / r['seconds']:.0%} | {r['rss_before_mb']:.0f} | {r['peak_mb']:.0f} | "
                     f"{r['peak_mb'] - r['rss_before_mb']:.0f} | {arrays:.0f} ({r['input_mb']:.0f} + {r['mask_mb']:.0f} + "
                     f"{r['confidence_mb']:.0f}) | {r['maxrss_mb']:.0f} | {'%.3f%%' % (100 * r['seam']) if r['seam'] is not None else 'not measured'} |")
    last = rows[-1]
    without = lambda r: r['peak_mb'] - r['input_mb'] - r['mask_mb'] - r['confidence_mb']
    lines += ["",
              f"- peak RSS while predicting, {last['size']} / {first['size']}: **{last['peak_mb'] / first['peak_mb']:.2f}x** "
              f"(criterion: at most 1.5x); without the image-sized arrays: {without(last) / without(first):.2f}x; "
              f"lifetime ru_maxrss: {last['maxrss_mb'] / first['maxrss_mb']:.2f}x",
              f"- seconds per megapixel: {', '.join('%.2f' % (r['seconds'] / (r['size'] ** 2 / 1e6)) for r in rows)}; "
              f"speed against the bare network: {', '.join('%.2f' % (r['bare_seconds'] / r['seconds']) for r in rows)} (target >= 0.8); share of the prediction's time inside the network: "
              f"{', '.join('%.0f%%' % (100 * r['model_seconds'] / r['seconds']) for r in rows)}",
              f"- startup peaks (imports, model loading; before the high-water mark was restarted): "
              f"{', '.join('%.0f MB' % r['startup_peak_mb'] for r in rows)}",
              f"- total wall time {time.time() - t_start:.0f} s; command: `bench/predict_tiles.py {' '.join(sys.argv[1:])}`"]
    text = '\n'.join(lines) + '\n'
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)

if __name__ == '__main__': main()
