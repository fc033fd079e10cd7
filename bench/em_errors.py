#!/usr/bin/env python
"""Where a trained EM model's pixel errors are, and how far the ISBI 2012 labels sit from the membranes in the images.

For a model trained by `em_defaults.py` (default: its seed-42 model) and the 6 held-out slices of the same split:

1. the pixel errors by their distance to the labelled membrane/cell border (within 1 px, 1-3 px, farther), and which
   way they go (membrane missed, membrane invented);
2. the offset between labels and images, measured without any model: the correlation of each slice's darkness with its
   membrane mask shifted by -1.5 ... 1.5 px in y and x (bilinear), over all 24 slices;
3. what the test accuracy would be with the model's membrane probability shifted by the same sub-pixel amounts: the
   share of the errors a model with the flip and turn augmentation cannot remove (flips make it symmetric, so it cannot
   learn a fixed offset of the labels).

The entry is printed and, with --record, appended to bench/RESULTS.md. Run from the repository root after em_defaults.py:
    .venv/bin/python bench/em_errors.py --record        (about 1 minute)
"""
from __future__ import annotations
import argparse, datetime, os, sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores
from em_defaults import split


def border_distance(truth: np.ndarray) -> np.ndarray:
    "Distance of every pixel to the nearest pixel on either side of a labelled membrane/cell border."
    membrane, cell = truth == 0, truth == 1
    border = (ndi.binary_dilation(membrane) & cell) | (ndi.binary_dilation(cell) & membrane)
    return ndi.distance_transform_edt(~border)


def label_offset(images: list, masks: list, shifts: np.ndarray) -> np.ndarray:
    "Mean correlation of image darkness with the membrane mask shifted by (dy, dx), for every pair of `shifts`."
    out = np.zeros((len(shifts), len(shifts)))
    for im, m in zip(images, masks):
        a = -(im - im.mean())[8:-8, 8:-8]
        for i, dy in enumerate(shifts):
            for j, dx in enumerate(shifts):
                b = ndi.shift((m == 0).astype(float), (dy, dx), order=1)[8:-8, 8:-8]
                out[i, j] += (a * (b - b.mean())).mean() / a.std() / b.std() / len(images)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=str(ROOT.parent/'shared'/'datasets'/'isbi2012_em'))
    p.add_argument('--work', default='/tmp/segment_lib_em_bench', help='the work folder of em_defaults.py')
    p.add_argument('--model', default=None, help='model folder (default: WORK/seed-42)')
    p.add_argument('--record', action='store_true', help='append the entry to bench/RESULTS.md')
    a = p.parse_args(argv)
    data, work = Path(a.data), Path(a.work)
    if not (data/'images').is_dir(): sys.exit(f"{data}: the ISBI 2012 EM dataset is not here; nothing to measure.")
    model = Path(a.model or work/'seed-42')
    if not (model/'model.pkl').exists(): sys.exit(f"{model}: no model.pkl; run bench/em_defaults.py first (or pass --model).")
    from segment_lib.data import dataset_codes, read_image, read_mask, find_pairs
    from segment_lib.inference import load_model, predict_probs
    _, test_dir, _ = split(data, work)
    codes = dataset_codes(data)
    learn = load_model(model)
    probs, truths = [], []
    for img, msk in find_pairs(test_dir):
        probs.append(predict_probs(learn, read_image(img))[1]); truths.append(read_mask(msk, codes))
    n = sum(t.size for t in truths)
    err = [(p > 0.5) != t for p, t in zip(probs, truths)]
    dist = [border_distance(t) for t in truths]
    def share(f): return sum(int(f(e, d, t).sum()) for e, d, t in zip(err, dist, truths)) / n
    errors = dict(all=share(lambda e, d, t: e), within_1px=share(lambda e, d, t: e & (d <= 1)),
                  px_1_to_3=share(lambda e, d, t: e & (d > 1) & (d <= 3)), farther=share(lambda e, d, t: e & (d > 3)),
                  membrane_missed=share(lambda e, d, t: e & (t == 0)), membrane_invented=share(lambda e, d, t: e & (t == 1)))
    pairs = find_pairs(data)
    shifts = np.arange(-1.5, 1.51, 0.5)
    corr = label_offset([read_image(i).astype(float) for i, _ in pairs], [read_mask(m, codes) for _, m in pairs], shifts)
    iy, ix = np.unravel_index(corr.argmax(), corr.shape)
    fine = np.arange(-1, 1.01, 0.25)
    acc = {(dy, dx): float(np.mean([((ndi.shift(pr, (dy, dx), order=1, mode='nearest') > 0.5) == t)[4:-4, 4:-4].mean()
                                    for pr, t in zip(probs, truths)])) for dy in fine for dx in fine}
    best = max(acc, key=acc.get)
    lines = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: ISBI 2012 EM, where the errors are (`em_errors.py`)\n",
             f"- machine: {cpu_model()}, {usable_cores()} usable cores, CPU only; model: `{model}` (`em_defaults.py`), "
             f"6 held-out slices, {n} pixels",
             f"- pixel errors: {errors['all']:.2%} of the pixels; within 1 px of a labelled border {errors['within_1px']:.2%}, "
             f"1-3 px {errors['px_1_to_3']:.2%}, farther {errors['farther']:.2%}; membrane missed {errors['membrane_missed']:.2%}, "
             f"membrane invented {errors['membrane_invented']:.2%}",
             f"- labels against images (no model; all 24 slices): image darkness correlates best with the membrane mask shifted by "
             f"dy {shifts[iy]:+.1f}, dx {shifts[ix]:+.1f} px ({corr[iy, ix]:.4f}, unshifted {corr[len(shifts) // 2, len(shifts) // 2]:.4f}); "
             "correlations by dy (rows) and dx (columns) " + ', '.join(f'{v:+.1f}' for v in shifts) + ':',
             "", "| dy \\ dx | " + ' | '.join(f'{v:+.1f}' for v in shifts) + " |", "|---" * (len(shifts) + 1) + "|"]
    lines += [f"| {dy:+.1f} | " + ' | '.join(f'{v:.4f}' for v in row) + " |" for dy, row in zip(shifts, corr)]
    lines += ["", f"- test pixel accuracy of the model as it is {acc[(0.0, 0.0)]:.4f}; with its membrane probability shifted by "
              f"dy {best[0]:+.2f}, dx {best[1]:+.2f} px (the best of shifts in steps of 0.25 px) {acc[best]:.4f}",
              f"- command: `bench/em_errors.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    text = '\n'.join(lines) + '\n'
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)


if __name__ == '__main__': main()
