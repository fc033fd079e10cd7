#!/usr/bin/env python
"""Which images to annotate when a round is paid for in a person's time: random, least confident first, or coverage of what the model sees, on the DSB2018 nuclei (issue 30).

The shared 150 DSB2018 images (../shared/datasets/dsb2018_nuclei: 129 fluorescence, 17 stained tissue, 4 brightfield,
modality from the pixels as in tools/bundle_nuclei.py) are split once: a held-out set stratified by modality (a fifth of
each modality, at least 2, evenly spread in name order) and a pool (the rest). Per seed:

- start: `--start` pool images drawn at random, paid for as drawn from scratch (`correction_effort` of an empty mask);
- train: `segment_lib.learner.train(..., instances=True, steps=STEPS, patch=PATCH, scale='none', seed=SEED)` on the
  labelled images, from scratch every round (the same budget every round and every strategy);
- score: held-out object F1 at IoU 0.5 (pooled over objects) and foreground pixel Dice (pooled over pixels), overall and
  per modality;
- choose: the model predicts every pool image once; each image's price is `correction_effort(truth, predicted objects)`
  (a person correcting the model's masks); a round takes images in the strategy's order until `--effort` seconds are
  spent (`take_within_effort`); their true masks join the labelled set. Strategies: `random`, `least-confident`
  (highest unconfident fraction first, as `segment-lib round` ranks), `coverage` (k-centre greedy on the model's
  encoder features, `coverage_order`, away from everything labelled).

Round 0 (start set and first model) is the same for every strategy of a seed. One JSON per seed is written to --out; run
the seeds side by side (one thread each), then `--report` prints (and with --record appends to bench/RESULTS.md) the
tables and writes the figure:

    for s in 0 1 2; do OMP_NUM_THREADS=1 .venv/bin/python bench/dsb_selection.py --seed $s & done; wait
    .venv/bin/python bench/dsb_selection.py --report --record
"""
from __future__ import annotations
import argparse, datetime, json, os, shutil, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'bench'))
sys.path.insert(0, str(ROOT/'tools'))
from train_throughput import cpu_model, markdown_table, usable_cores   # noqa: E402

STRATEGIES = ('random', 'least-confident', 'coverage')
OUT = ROOT/'bench'/'runs'/'dsb_selection'
FIGURE = ROOT/'bench'/'figures'/'dsb_selection.png'
TARGETS = (('f1', (0.6, 0.65)), ('f1_stained tissue', (0.25, 0.5)))   # targets of the effort-to-reach table
PANELS = (('f1', 'held-out object F1, all'), ('f1_stained tissue', 'stained tissue'), ('f1_brightfield', 'brightfield'))

def split(data:Path) -> tuple:
    "(held-out stems, pool stems, stem -> modality): a fifth of each modality held out (at least 2), evenly spread by name."
    from PIL import Image
    from bundle_nuclei import modality
    kinds = {p.stem: modality(np.asarray(Image.open(p))) for p in sorted((data/'images').glob('*.png'))}
    held = []
    for kind in sorted(set(kinds.values())):
        stems = sorted(s for s, k in kinds.items() if k == kind)
        n = max(2, round(len(stems) / 5))
        held += [stems[i] for i in np.linspace(0, len(stems) - 1, n).round().astype(int)]
    return sorted(held), sorted(s for s in kinds if s not in held), kinds

def link_pairs(data:Path, stems:list, out:Path):
    "A dataset folder `out` whose images/ and masks/ link to `stems` of `data` (rebuilt from scratch)."
    shutil.rmtree(out, ignore_errors=True)
    for sub in ('images', 'masks'):
        (out/sub).mkdir(parents=True)
        for s in stems: os.symlink(data/sub/f'{s}.png', out/sub/f'{s}.png')

def predict_all(learn, data:Path, stems:list, truth:dict, features:bool=False) -> dict:
    "stem -> predicted objects' scores: unconfident fraction, effort to correct, effort from scratch, objects (and features)."
    from segment_lib.data import read_image
    from segment_lib.inference import predict_image
    from segment_lib.confidence import map_scores
    from segment_lib.effort import correction_effort
    from segment_lib.hitl import encoder_features
    out = {}
    for s in stems:
        image = read_image(data/'images'/f'{s}.png')
        pred = predict_image(learn, image, keep_probs=False)
        e = correction_effort(truth[s], pred.instances, truth_kind='instances', pred_kind='instances')
        out[s] = dict(unsure=map_scores(pred.mask, pred.confidence)['unconfident_fraction'], effort=e.effort,
                      scratch=e.scratch_effort, objects=pred.instances)
        if features: out[s]['features'] = encoder_features(learn, image)
    return out

def held_out_scores(preds:dict, truth:dict, kinds:dict) -> dict:
    "Object F1 @0.5 (pooled over objects) and foreground Dice (pooled over pixels), overall and per modality."
    from segment_lib.metrics import object_scores, object_summary
    groups = {'all': list(preds)}
    for s in preds: groups.setdefault(kinds[s], []).append(s)
    res = {}
    for g, stems in groups.items():
        objs = object_summary([object_scores(truth[s], preds[s]['objects']) for s in stems])
        inter = sum(int(((truth[s] > 0) & (preds[s]['objects'] > 0)).sum()) for s in stems)
        total = sum(int((truth[s] > 0).sum() + (preds[s]['objects'] > 0).sum()) for s in stems)
        res[g] = dict(f1=round(objs['f1'], 4), dice=round(2 * inter / total, 4), images=len(stems))
    return res

def run_seed(a) -> dict:
    "All strategies' rounds for one seed; the record written to --out."
    warnings.filterwarnings('ignore')
    from segment_lib.data import read_mask_array
    from segment_lib.learner import train
    from segment_lib.inference import load_model
    from segment_lib.effort import correction_effort
    from segment_lib.hitl import coverage_order
    from segment_lib.active_learning import take_within_effort
    data = Path(a.data)
    held, pool, kinds = split(data)
    truth = {s: np.asarray(read_mask_array(data/'masks'/f'{s}.png')).astype(np.int32) for s in held + pool}
    rng = np.random.default_rng(a.seed)
    start = sorted(rng.choice(pool, a.start, replace=False).tolist())
    scratch = {s: correction_effort(truth[s], np.zeros_like(truth[s])).scratch_effort for s in pool}
    work = Path(tempfile.mkdtemp(prefix=f'dsb_selection_{a.seed}_'))
    t0, record = time.time(), dict(seed=a.seed, start=start, steps=a.steps, patch=a.patch, effort_budget=a.effort,
                                   rounds=a.rounds, held_out=held, pool=len(pool), kinds=kinds, runs={})
    def fit(stems, tag):
        link_pairs(data, stems, work/'data')
        t = time.time()
        train(work/'data', work/tag, instances=True, steps=a.steps, patch=a.patch, scale='none', seed=a.seed,
              show_progress=False)
        return load_model(work/tag/'model.pkl'), time.time() - t
    def log(msg): print(f"[seed {a.seed} {time.time() - t0:6.0f} s] {msg}", flush=True)
    learn0, t_train = fit(start, 'model_0')
    held0 = held_out_scores(predict_all(learn0, data, held, truth), truth, kinds)
    rest0 = [s for s in pool if s not in start]
    pool0 = predict_all(learn0, data, rest0 + start, truth, features=True)
    log(f"round 0: {len(start)} images, held-out F1 {held0['all']['f1']:.3f} (training {t_train:.0f} s)")
    for strategy in a.strategies:
        labelled, spent, learn, scores, preds = list(start), sum(scratch[s] for s in start), learn0, held0, pool0
        rows = [dict(round=0, labelled=len(labelled), effort=spent, scores=scores, chosen=[])]
        pick_rng = np.random.default_rng(1000 + a.seed)
        for r in range(1, a.rounds + 1):
            rest = [s for s in pool if s not in labelled]
            if strategy == 'random': order = list(pick_rng.permutation(rest))
            elif strategy == 'least-confident': order = sorted(rest, key=lambda s: (-preds[s]['unsure'], s))
            else: order = coverage_order({s: preds[s]['features'] for s in rest}, [preds[s]['features'] for s in labelled])
            chosen = take_within_effort(order, {s: preds[s]['effort'] for s in rest}, a.effort)
            spent += sum(preds[s]['effort'] for s in chosen)
            labelled += chosen
            learn, t_train = fit(labelled, f'model_{strategy}_{r}')
            scores = held_out_scores(predict_all(learn, data, held, truth), truth, kinds)
            rows.append(dict(round=r, labelled=len(labelled), effort=spent, scores=scores,
                             chosen=[dict(image=s, modality=kinds[s], effort=round(preds[s]['effort'], 1),
                                          scratch=round(scratch[s], 1)) for s in chosen]))
            log(f"{strategy} round {r}: +{len(chosen)} images ({sum(kinds[s] != 'fluorescence' for s in chosen)} not "
                f"fluorescence), effort {spent:.0f} s, held-out F1 {scores['all']['f1']:.3f} (training {t_train:.0f} s)")
            if r < a.rounds:
                rest = [s for s in pool if s not in labelled]
                coverage = strategy == 'coverage'                # coverage also needs the labelled images' features
                preds = predict_all(learn, data, rest + labelled if coverage else rest, truth, features=coverage)
        record['runs'][strategy] = rows
    record.update(seconds=round(time.time() - t0), machine=f"{cpu_model()}, {usable_cores()} usable cores, CPU only",
                  threads=os.environ.get('OMP_NUM_THREADS', 'default'),
                  finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='minutes'))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out)/f'seed_{a.seed}.json').write_text(json.dumps(record, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return record

def report(a) -> str:
    "The RESULTS entry of the seeds recorded in --out."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    records = [json.loads(p.read_text()) for p in sorted(Path(a.out).glob('seed_*.json'))]
    if not records: sys.exit(f"{a.out}: no seed_*.json; run the seeds first.")
    from segment_lib.active_learning import effort_curves, effort_to_reach, plot_effort_curves
    df = effort_curves(records, majority='fluorescence')
    fig = plot_effort_curves(df, panels=PANELS)
    FIGURE.parent.mkdir(parents=True, exist_ok=True); fig.savefig(FIGURE); plt.close(fig)
    r0 = records[0]
    kinds = r0['kinds']
    held = {k: sum(kinds[s] == k for s in r0['held_out']) for k in sorted(set(kinds.values()))}
    cols = ['f1', 'f1_fluorescence', 'f1_stained tissue', 'f1_brightfield', 'dice', 'labelled', 'effort_h']
    mean = df.groupby(['strategy', 'round'], sort=False)[cols].mean().round(3).reset_index()
    last = df[df['round'] == df['round'].max()]
    final = last.groupby('strategy', sort=False)[['f1', 'f1_stained tissue', 'f1_brightfield', 'dice', 'effort_h']].agg(
        lambda v: f"{v.mean():.3f} ({v.min():.3f}-{v.max():.3f})").reset_index()
    took = df[df['round'] > 0].groupby('strategy', sort=False)[['took', 'not_majority', 'round_effort', 'round_scratch']].sum()
    took = took.assign(round_effort=took.round_effort.round(0), round_scratch=took.round_scratch.round(0), saved=(1 - took.round_effort / took.round_scratch).round(3),
                       seconds_per_image=(took.round_effort / took.took).round(0)).reset_index()
    by_round = df[df['round'] > 0].assign(saved=lambda d: 1 - d.round_effort / d.round_scratch).groupby(
        ['round', 'strategy'], sort=False).saved.mean().round(3).unstack()
    by_round.index = by_round.index.astype(int)
    reach = {f"{score} {t}": effort_to_reach(df, t, score).round(2).to_dict() for score, ts in TARGETS for t in ts}
    secs = ', '.join(f"seed {r['seed']} {r['seconds'] / 60:.0f} min (OMP_NUM_THREADS={r['threads']})" for r in records)
    text = (f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: choosing what to annotate on DSB2018, "
            f"effort on the x axis (`bench/dsb_selection.py`)\n\n"
            f"- machine: {r0['machine']}; {secs}; finished {', '.join(r['finished'] for r in records)}\n"
            f"- split: held-out {len(r0['held_out'])} images stratified by modality {held}; pool {r0['pool']}; start: "
            f"{len(r0['start'])} random pool images per seed, drawn from scratch; {r0['rounds']} rounds of "
            f"{r0['effort_budget']:.0f} s of correction effort each (`take_within_effort`); every model "
            f"`train(instances=True, steps={r0['steps']}, patch={r0['patch']}, scale='none')` from scratch; seeds "
            f"{', '.join(str(r['seed']) for r in records)}\n"
            f"- held-out scores: object F1 @0.5 pooled over objects, foreground Dice pooled over pixels\n\n"
            f"Mean over seeds by round:\n\n{markdown_table(mean)}\n\n"
            f"Last round, mean (min-max over seeds):\n\n{markdown_table(final)}\n\n"
            f"What the rounds took (all seeds, rounds 1-{r0['rounds']}): images, of them not fluorescence, correction "
            f"effort against drawing the same images (s):\n\n{markdown_table(took)}\n\n"
            f"Time saved by correcting instead of drawing, mean over seeds, by round:\n\n{markdown_table(by_round.reset_index())}\n\n"
            f"Effort (hours, mean over seeds) at which the mean held-out score first reaches a target (NaN: not within the "
            f"rounds): {reach}\n\n"
            f"Figure: `bench/figures/{FIGURE.name}`.\n")
    return text

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(ROOT.parent/'shared'/'datasets'/'dsb2018_nuclei'))
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--strategies', nargs='+', default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument('--start', type=int, default=5, help='labelled images before the first round')
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--effort', type=float, default=1200, help='seconds of correction effort per round')
    ap.add_argument('--steps', type=int, default=300, help='optimiser steps of every training')
    ap.add_argument('--patch', type=int, default=128)
    ap.add_argument('--out', default=str(OUT))
    ap.add_argument('--report', action='store_true', help='summarise the seeds in --out instead of running one')
    ap.add_argument('--record', action='store_true', help='with --report: append the entry to bench/RESULTS.md')
    a = ap.parse_args(argv)
    if a.report:
        text = report(a)
        print(text)
        if a.record:
            with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)
        return
    if not (Path(a.data)/'images').is_dir(): sys.exit(f"{a.data}: the DSB2018 nuclei are not here; nothing to measure.")
    run_seed(a)

if __name__ == '__main__': main()
