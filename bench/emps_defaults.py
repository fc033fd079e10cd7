"""EMPS nanoparticles with the defaults, as a materials scientist would run them (issue 28's Done-when):

    segment-lib train TRAIN --out MODEL --instances        (nothing else: the 10-minute budget, the plan from the data)
    segment-lib predict MODEL TEST/images --out PRED        (each image's object scale estimated)
    segment-lib score PRED TEST                             (object F1 at IoU 0.5, pixel Dice)

plus, per test image, the median particle diameter and the particle count of the prediction against the truth.

Split: the 366 images of ../shared/datasets/emps_nanoparticles sorted by name, the first 293 to train (`train` holds 20% of
them out for its validation), the last 73 to test. `--record` appends the entry to bench/RESULTS.md.

    .venv/bin/python bench/emps_defaults.py --seed 42 --record
    .venv/bin/python bench/emps_defaults.py --model WORK/model --how oracle   # score an existing model, true diameters given
"""
import argparse, datetime, json, os, shutil, subprocess, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EMPS = ROOT.parent/'shared'/'datasets'/'emps_nanoparticles'
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores   # noqa: E402

def split_into(work:Path) -> tuple:
    "Copy the fixed split into work/train and work/test (once)."
    stems = sorted(p.stem for p in (EMPS/'images').glob('*.png'))
    for name, part in (('train', stems[:293]), ('test', stems[293:])):
        for sub in ('images', 'masks'):
            d = work/name/sub; d.mkdir(parents=True, exist_ok=True)
            for s in part:
                if not (d/f'{s}.png').exists(): shutil.copy(EMPS/sub/f'{s}.png', d/f'{s}.png')
    return work/'train', work/'test'

def cli(*args):
    exe = Path(sys.executable).parent/'segment-lib'
    t = time.time()
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
    if r.returncode: sys.exit(f"segment-lib {' '.join(map(str, args))} failed:\n{r.stderr[-3000:]}")
    return r, time.time() - t

def median_diameter(ids):
    from segment_lib.fingerprint import object_diameters
    d = object_diameters(ids)
    return float(np.median(d)) if len(d) else None

def per_image(pred_dir:Path, test:Path) -> dict:
    "Median over test images of |predicted median diameter / true - 1| and of |predicted count / true count - 1|."
    from segment_lib.data import read_mask_array
    derr, cerr = [], []
    for m in sorted(p for p in (test/'masks').iterdir() if not p.name.startswith('.')):
        truth = read_mask_array(m)
        found = list((pred_dir/'instances').glob(f'{m.stem}.*'))
        pred = read_mask_array(found[0]) if found else np.zeros_like(truth)
        dt, dp = median_diameter(truth), median_diameter(pred)
        nt, n_p = len(np.unique(truth)) - 1, len(np.unique(pred)) - 1
        derr.append(1. if dp is None else abs(dp / dt - 1)); cerr.append(abs(n_p / max(nt, 1) - 1))
    return dict(median_diameter_error=round(float(np.median(derr)), 4), images_within_10pct=round(float(np.mean(np.array(derr) <= 0.1)), 3),
                median_count_error=round(float(np.median(cerr)), 4))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--work', default='/tmp/segment_lib_emps')
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--model', help='score this model instead of training one')
    ap.add_argument('--train-args', default='', help='extra train options, e.g. "--steps 1000" (the Done-when uses none)')
    ap.add_argument('--how', default='estimated', choices=['estimated', 'oracle', 'native'],
                    help="prediction scale: estimated per image (the default path), the true median diameter given, or none")
    ap.add_argument('--record', action='store_true')
    ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    if not (EMPS/'images').is_dir(): sys.exit(f'{EMPS} not present')
    work = Path(a.work); train_dir, test_dir = split_into(work)
    load_before = os.getloadavg()[0]
    model = Path(a.model) if a.model else work/f'model_seed{a.seed}'
    t_train = None
    if not a.model:
        if model.exists(): shutil.rmtree(model)
        r, t_train = cli('train', train_dir, '--out', model, '--instances', '--seed', a.seed, *a.train_args.split())
    rep = json.loads((model/'report.json').read_text())
    pred = work/f'pred_{model.name}_{a.how}'
    if pred.exists(): shutil.rmtree(pred)
    t = time.time()
    if a.how == 'estimated': cli('predict', model, test_dir/'images', '--out', pred)
    else:                                     # the Python API, one diameter per image (the truth) or no rescaling
        from segment_lib.inference import load_model, predict_folder
        from segment_lib.data import read_mask_array
        learn = load_model(model)
        if a.how == 'native': learn.model_info.diameters = None
        for m in sorted((test_dir/'masks').glob('*.png')):
            d = median_diameter(read_mask_array(m)) if a.how == 'oracle' else None
            one = work/'one'; shutil.rmtree(one, ignore_errors=True); (one).mkdir()
            shutil.copy(test_dir/'images'/m.name, one/m.name)
            predict_folder(learn, one, pred, progress=False, diameter=d)
    t_pred = time.time() - t
    cli('score', pred, test_dir, '--out', pred/'scores.json')
    s = json.loads((pred/'scores.json').read_text())
    out = dict(seed=a.seed, how=a.how, object_f1=round(s['objects']['f1'], 4), precision=round(s['objects']['precision'], 4),
               recall=round(s['objects']['recall'], 4), pixel_dice=round(s['pixel']['micro']['dice'], 4),
               **per_image(pred, test_dir), steps=rep['plan'].get('steps_done'), train_seconds=rep['seconds'],
               predict_seconds=round(t_pred), plan=rep.get('training_plan', {}).get('why'))
    out['load_average'] = f'{load_before:.1f}/{os.getloadavg()[0]:.1f}'
    print(json.dumps(out, indent=1))
    (work/f'result_{model.name}_{a.how}.json').write_text(json.dumps(out, indent=1))
    if a.record:
        entry = (f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: EMPS nanoparticles, `bench/emps_defaults.py`\n\n"
                 f"- machine: {cpu_model()}, {usable_cores()} usable cores; CPU only; load average before/after {out['load_average']}{'; ' + a.note if a.note else ''}\n"
                 f"- split: 366 images sorted by name, first 293 to train (train holds 20% out for validation), last 73 to test\n"
                 f"- command: `train TRAIN --out MODEL --instances --seed {a.seed} {a.train_args}`, then predict ({a.how} scale) and score\n"
                 f"- steps: {out['steps']} in {out['train_seconds']} s; prediction of 73 images {out['predict_seconds']} s\n"
                 f"- object F1 @0.5 **{out['object_f1']}** (precision {out['precision']}, recall {out['recall']}); pixel Dice "
                 f"{out['pixel_dice']}; per image: median |diameter error| **{out['median_diameter_error']:.1%}** "
                 f"({out['images_within_10pct']:.0%} of images within 10%), median |count error| {out['median_count_error']:.1%}\n")
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(entry)

if __name__ == '__main__': main()
