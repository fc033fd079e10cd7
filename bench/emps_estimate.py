"""Research for issue 28: how to find an image's object scale at prediction time, without its mask, for a model trained
at a working object scale (`train`'s plan). Scored on the model's own validation images (held out by `train`, never
trained on); the test images are not looked at here.

Two estimators:
- search: predict at a ladder of scales (factor sqrt 2 apart); at each, the predicted objects' median diameter and the
  model's confidence on them; a scale is consistent when the objects come out inside the working range;
- size model (Cellpose's way): a ridge regression of log diameter on the model's pooled encoder features, fitted on the
  training images shown at several scales.

    OMP_NUM_THREADS=2 .venv/bin/python bench/emps_estimate.py MODEL_DIR DATA_DIR --out table.json
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).parent))
import emps_scale as E
from emps_size import style, fit_ridge

def search_rows(learn, img, factors, lim, max_side=2048):
    from segment_lib.inference import predict_probs
    from segment_lib.instances import three_class_to_instances
    rows = []
    for s in factors:
        h, w = img.shape[:2]
        if min(h, w) * s < 32 or max(h, w) * s > max_side: continue
        probs = predict_probs(learn, E.scale_image(img, s), tta='none')
        ids = three_class_to_instances(probs, **lim)
        m = E.median_diameter(ids)
        fg = probs[0] < 0.5
        rows.append(dict(s=round(s, 4), m=m, n=int(ids.max()), conf=float(probs.max(0)[fg].mean()) if fg.any() else 0.,
                         fg=float(fg.mean())))
    return rows

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('model'); ap.add_argument('data'); ap.add_argument('--out', required=True)
    a = ap.parse_args()
    from segment_lib.inference import load_model, instance_limits
    learn = load_model(a.model)
    rep = json.loads((Path(a.model)/'report.json').read_text())
    data = Path(a.data)
    train_stems = [Path(n).stem for n in rep['training_images']]
    valid_stems = [Path(n).stem for n in rep['validation_images']]
    def load(s): return np.asarray(Image.open(data/'images'/f'{s}.png')), np.asarray(Image.open(data/'masks'/f'{s}.png'))
    # size model
    t = time.time(); X, y = [], []
    for s in train_stems:
        img, ids = load(s); d = E.median_diameter(ids)
        if d is None: continue
        f0 = min(1., 512 / max(img.shape[:2]))
        for f in (0.5, 1, 2):
            im = E.scale_image(img, f0 * f)
            if min(im.shape[:2]) >= 32: X.append(style(learn, im)); y.append(np.log(d * f0 * f))
    size_model = fit_ridge(np.array(X), np.array(y), 100.)
    print(f'size model on {len(y)} samples in {time.time() - t:.0f} s', flush=True)
    lim = instance_limits(learn)
    factors = [2 ** (k / 2) for k in range(-10, 4)]            # 1/32 .. 2.8
    out = []
    for s in valid_stems:
        img, ids = load(s); d = E.median_diameter(ids)
        if d is None: continue
        f0 = min(1., 512 / max(img.shape[:2]))
        est = float(np.exp(size_model(style(learn, E.scale_image(img, f0))[None])[0]) / f0)
        out.append(dict(stem=s, d_true=d, size_model=est, rows=search_rows(learn, img, factors, lim)))
        print(s, round(d, 1), round(est, 1), flush=True)
    Path(a.out).write_text(json.dumps(out, indent=1))

if __name__ == '__main__': main()
