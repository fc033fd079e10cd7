"""Research for issue 28: estimating an image's object diameter without its mask, with a trained working-scale model.

(A) Cellpose's way: a linear (ridge) regression of log diameter on the model's pooled bottleneck features ("style"),
fitted on the training images shown at several scales; then optionally one refinement pass (predict at the estimated
scale, measure the predicted objects). Scored on the model's own validation images (held out by `train`), then test.

    OMP_NUM_THREADS=2 .venv/bin/python bench/emps_size.py MODEL_DIR --d0 32
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).parent))
import emps_scale as E

def style(learn, img, levels=2):
    "Mean- and max-pooled features of the deepest `levels` encoder levels of our UNet, for one image."
    feats = []
    m = learn.model.eval()
    hooks = [d.register_forward_hook(lambda mod, i, o: feats.append(o)) for d in list(m.downs)[-levels:]]
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(img_to_input(learn, img)))[None]
        m(t)
    for h in hooks: h.remove()
    return np.concatenate([np.concatenate([f.mean((0, 2, 3)).numpy(), f.amax((2, 3))[0].numpy()]) for f in feats])

def img_to_input(learn, img):
    from segment_lib.data import image_to_rgb
    info = learn.model_info
    x = image_to_rgb(img).astype(np.float32) / 255
    if info.mean is not None: x = (x - np.array(info.mean, np.float32)) / np.array(info.std, np.float32)
    return x.transpose(2, 0, 1)

def fit_ridge(X, y, alpha):
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    w = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))
    return lambda X2: ((X2 - mu) / sd) @ w + y.mean()

def samples(learn, stems, factors, max_side=512):
    X, y = [], []
    for s in stems:
        img, ids = np.asarray(Image.open(E.EMPS/'images'/f'{s}.png')), np.asarray(Image.open(E.EMPS/'masks'/f'{s}.png'))
        d = E.median_diameter(ids)
        if d is None: continue
        f0 = min(1., max_side / max(img.shape[:2]))
        for f in factors:
            im = E.scale_image(img, f0 * f)
            if min(im.shape[:2]) < 32: continue
            X.append(style(learn, im)); y.append(np.log(d * f0 * f))
    return np.array(X), np.array(y)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('model'); ap.add_argument('--d0', type=float, default=32)
    a = ap.parse_args()
    from segment_lib.inference import load_model
    learn = load_model(a.model)
    rep = json.loads((Path(a.model)/'report.json').read_text())
    train_stems = [Path(n).stem for n in rep['training_images']]
    valid_stems = [Path(n).stem for n in rep['validation_images']]
    _, test_stems = E.split()
    t = time.time()
    Xtr, ytr = samples(learn, train_stems, (0.5, 1, 2))
    print(f'{len(ytr)} training samples in {time.time() - t:.0f} s', flush=True)
    Xva, yva = samples(learn, valid_stems, (1,))
    Xte, yte = samples(learn, test_stems, (1,))
    for alpha in (1, 10, 100, 1000):
        f = fit_ridge(Xtr, ytr, alpha)
        ev = np.abs(np.exp(f(Xva) - yva) - 1); et = np.abs(np.exp(f(Xte) - yte) - 1)
        print(f'alpha {alpha}: validation median |error| {np.median(ev):.3f} (within 25%: {np.mean(ev < .25):.2f}, within 2x: {np.mean(np.abs(f(Xva) - yva) < np.log(2)):.2f}); '
              f'test median {np.median(et):.3f} (within 25%: {np.mean(et < .25):.2f})', flush=True)

if __name__ == '__main__': main()
