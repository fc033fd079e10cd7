"""Research harness for issue 28 (EMPS nanoparticles): does training and predicting at a working object scale fix the
defaults? Oracle experiments: every training image rescaled so its median particle diameter is D0 px, predictions made at
the scale the TRUE diameter gives (an upper bound for any diameter estimate), or at native scale (today's behaviour).

Split: the 366 EMPS images sorted by name, first 293 to train (train holds 20% of those out for validation), last 73 test.

    OMP_NUM_THREADS=2 .venv/bin/python bench/emps_scale.py --work /tmp/emps --d0 32 --steps 1000
"""
import argparse, json, time
from pathlib import Path
import numpy as np
from PIL import Image
from skimage.transform import rescale, resize

EMPS = Path(__file__).resolve().parents[2]/'shared'/'datasets'/'emps_nanoparticles'

def median_diameter(ids):
    "Median equivalent diameter of the objects of an instance-id image (px), None if no objects."
    areas = np.bincount(ids.ravel())[1:]
    areas = areas[areas > 0]
    return float(np.median(np.sqrt(4 * areas / np.pi))) if len(areas) else None

BAND = (12, 48)   # mode 'band': images whose median diameter is outside are brought to the nearest edge

def scale_image(img, s):
    return img if s == 1 else (rescale(img.astype(np.float32), s, order=1, anti_aliasing=s < 1, preserve_range=True,
                                       channel_axis=-1 if img.ndim == 3 else None).round().clip(0, 255).astype(np.uint8))

def scale_ids(ids, shape):
    return resize(ids, shape, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint16)

def split():
    stems = sorted(p.stem for p in (EMPS/'images').glob('*.png'))
    return stems[:293], stems[293:]

def prepare(work, d0, mode):
    "Write the training images rescaled: mode 'native' (unchanged), 'd0' (median diameter -> d0)."
    out = work/f'train_{mode}_{d0}'
    if (out/'done').exists(): return out
    for sub in ('images', 'masks'): (out/sub).mkdir(parents=True, exist_ok=True)
    train, _ = split()
    for s in train:
        img, ids = np.asarray(Image.open(EMPS/'images'/f'{s}.png')), np.asarray(Image.open(EMPS/'masks'/f'{s}.png'))
        d = median_diameter(ids)
        f = 1. if mode == 'native' or d is None else d0 / d if mode == 'd0' else float(np.clip(d, BAND[0], BAND[1])) / d
        im2 = scale_image(img, f)
        Image.fromarray(im2).save(out/'images'/f'{s}.png')
        Image.fromarray(scale_ids(ids, im2.shape[:2])).save(out/'masks'/f'{s}.png')
    (out/'done').write_text('ok')
    return out

def predict_scaled(learn, img, s, tta='all'):
    "Instance ids at the image's own size from a prediction made at scale `s`."
    from segment_lib.inference import predict_probs, instance_limits
    from segment_lib.instances import three_class_to_instances
    small = scale_image(img, s)
    probs = predict_probs(learn, small, tta=tta)
    if s != 1: probs = np.stack([resize(p, img.shape[:2], order=1) for p in probs])
    lim = dict(instance_limits(learn))
    lim['min_size'] = max(1, int(lim['min_size'] / s ** 2)); lim['min_seed_size'] = max(1, int(lim['min_seed_size'] / s ** 2))
    return three_class_to_instances(probs, **lim)

def evaluate(learn, d0, how, work, tta='all'):
    from segment_lib.metrics import object_scores, object_summary
    _, test = split()
    per, derr, rows = [], [], []
    for s in test:
        img, ids = np.asarray(Image.open(EMPS/'images'/f'{s}.png')), np.asarray(Image.open(EMPS/'masks'/f'{s}.png'))
        d = median_diameter(ids)
        f = 1. if how == 'native' else d0 / d if how == 'oracle' else float(np.clip(d, BAND[0], BAND[1])) / d
        pred = predict_scaled(learn, img, f, tta)
        sc = object_scores(ids, pred); per.append(sc)
        dp = median_diameter(pred)
        derr.append(abs(dp - d) / d if dp else 1.)
        fg_t, fg_p = ids > 0, pred > 0
        rows.append(dict(stem=s, d_true=round(d, 1), d_pred=None if dp is None else round(dp, 1), f1=sc['f1'], n_true=sc['true'], n_pred=sc['pred'],
                         dice=round(2 * (fg_t & fg_p).sum() / max(1, fg_t.sum() + fg_p.sum()), 4)))
    summ = object_summary(per)
    return dict(f1=round(summ['f1'], 4), precision=round(summ['precision'], 4), recall=round(summ['recall'], 4),
                median_diameter_error=round(float(np.median(derr)), 4), mean_image_dice=round(float(np.mean([r['dice'] for r in rows])), 4),
                merges=summ['merges'], splits=summ['splits']), rows

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--work', default='/tmp/emps')
    ap.add_argument('--d0', type=float, default=32)
    ap.add_argument('--mode', default='d0', choices=['native', 'd0', 'band'])
    ap.add_argument('--steps', type=int, default=None)
    ap.add_argument('--minutes', type=float, default=None)
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--invert', type=float, default=0.)
    ap.add_argument('--tag', default='')
    ap.add_argument('--patch', type=int, default=256)
    a = ap.parse_args()
    from segment_lib.learner import train
    from segment_lib.inference import load_model
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    data = prepare(work, a.d0, a.mode)
    model = work/f'model_{a.mode}_{a.d0}_{a.steps}_{a.minutes}_{a.seed}_{a.invert}{a.tag}'
    t = time.time()
    if not (model/'model.pkl').exists():
        rep = train(data, model, instances=True, steps=a.steps, minutes=a.minutes, seed=a.seed, invert=a.invert, patch=a.patch)
    else: rep = json.loads((model/'report.json').read_text())
    learn = load_model(model)
    res = {}
    for how in ({'native': ['native'], 'd0': ['oracle'], 'band': ['band']}[a.mode]):
        res[how], rows = evaluate(learn, a.d0, how, work)
        (model/f'rows_{how}.json').write_text(json.dumps(rows, indent=1))
    out = dict(mode=a.mode, d0=a.d0, steps=rep['plan'].get('steps_done'), seconds=rep['seconds'], seed=a.seed, invert=a.invert,
               valid=rep['final'].get('foreground_dice'), results=res, wall=round(time.time() - t))
    print(json.dumps(out))
    with open(work/'log.jsonl', 'a') as f: f.write(json.dumps(out) + '\n')

if __name__ == '__main__': main()

def search_table(learn, img, d0, candidates, max_side=1536):
    "For each candidate native diameter: predict at the scale that would bring it to d0; what the model then sees."
    from segment_lib.inference import predict_probs, instance_limits
    from segment_lib.instances import three_class_to_instances
    lim = instance_limits(learn)
    rows = []
    for d in candidates:
        s = d0 / d
        h, w = img.shape[:2]
        if min(h, w) * s < 24: continue
        crop = img
        if max(h, w) * s > max_side:                       # too large: a centre crop that becomes max_side px
            side = int(max_side / s); r0, c0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
            crop = img[r0:r0 + side, c0:c0 + side]
        small = scale_image(crop, s)
        probs = predict_probs(learn, small, tta='none')
        ids = three_class_to_instances(probs, **lim)
        m = median_diameter(ids)
        fg = probs[0] < 0.5
        rows.append(dict(d=d, s=round(s, 4), m=None if m is None else round(m, 2), n=int(ids.max()),
                         conf=round(float(probs.max(0)[fg].mean()), 4) if fg.any() else 0.,
                         conf_all=round(float(probs.max(0).mean()), 4), fg=round(float(fg.mean()), 4)))
    return rows

def search_experiment(model_dir, d0, out_json):
    from segment_lib.inference import load_model
    learn = load_model(model_dir)
    _, test = split()
    cands = [d0 * 2 ** (k / 2) for k in range(-4, 10)]        # sqrt(2) steps: d0/4 .. d0*22
    res = []
    for s in test:
        img, ids = np.asarray(Image.open(EMPS/'images'/f'{s}.png')), np.asarray(Image.open(EMPS/'masks'/f'{s}.png'))
        res.append(dict(stem=s, d_true=median_diameter(ids), rows=search_table(learn, img, d0, cands)))
        print(s, round(res[-1]['d_true'], 1), flush=True)
    Path(out_json).write_text(json.dumps(res, indent=1))
