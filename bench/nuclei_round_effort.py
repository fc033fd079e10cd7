"""One annotation round on the real nuclei bundled in the repository (data/nuclei), measured in a person's effort (issue 30).

DATA starts with the first 6 fluorescence images (by name) and their true masks; the pool is all 39 images. A model is
trained on DATA (`train(..., instances=True, steps=STEPS, patch=128)`), `make_round` picks the 6 least-confident pool
images, and the effort model (`segment_lib.effort`) prices correcting the round's masks into the true ones, next to
drawing every object from scratch and next to correcting the classical bootstrap's masks of the same images. It prints
which modalities the round took against the pool's shares. `--record` appends the entry to bench/RESULTS.md.

    OMP_NUM_THREADS=2 .venv/bin/python bench/nuclei_round_effort.py --steps 60
"""
import argparse, datetime, os, shutil, sys, tempfile, time, warnings
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, markdown_table, usable_cores   # noqa: E402

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=60); ap.add_argument('--n', type=int, default=6)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--record', action='store_true')
    a = ap.parse_args(argv)
    warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')
    from segment_lib.data import copy_image
    from segment_lib.learner import train
    from segment_lib.hitl import make_round
    from segment_lib.effort import effort_folders, effort_totals
    from segment_lib.bootstrap import bootstrap_folder
    nuclei, load = ROOT/'data'/'nuclei', os.getloadavg()[0]
    modality = pd.read_csv(nuclei/'modality.csv').set_index('stem').modality
    work = Path(tempfile.mkdtemp(prefix='segment_lib_round_effort_'))
    first = list(modality[modality == 'fluorescence'].index[:6])
    (work/'data'/'masks').mkdir(parents=True)
    for s in first:
        copy_image(nuclei/'images'/f'{s}.png', work/'data'/'images'/f'{s}.png')
        shutil.copyfile(nuclei/'masks'/f'{s}.png', work/'data'/'masks'/f'{s}.png')
    for p in sorted((nuclei/'images').iterdir()): copy_image(p, work/'pool'/'images'/p.name)
    t = time.time()
    rep = train(work/'data', work/'model', instances=True, steps=a.steps, patch=128, seed=a.seed, show_progress=False)
    t_train, t = time.time() - t, time.time()
    r = make_round(work/'model', work/'pool', work/'data', work/'round', n=a.n)
    t_round = time.time() - t
    picked = [q['image'] for q in r['queue']]
    for p in picked: copy_image(nuclei/'images'/f'{p}.png', work/'boot'/'images'/f'{p}.png')
    bootstrap_folder(work/'boot', work/'bootstrapped', progress=False)
    model_eff = effort_folders(work/'round'/'masks', nuclei/'masks', partial=True)
    boot_eff = effort_folders(work/'bootstrapped'/'masks', nuclei/'masks', partial=True)
    tm, tb = effort_totals(model_eff), effort_totals(boot_eff)
    took = modality[picked].value_counts().to_dict()
    share = modality.drop(first).value_counts().to_dict()
    table = model_eff[['drawn', 'redrawn', 'deleted', 'split', 'merged', 'effort', 'scratch_effort']].assign(
        modality=modality[model_eff.index].values, bootstrap_effort=boot_eff.effort.reindex(model_eff.index).values)
    table.index = [s[:10] for s in table.index]
    text = (f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: one annotation round on data/nuclei, in effort "
            f"(`bench/nuclei_round_effort.py`)\n\n"
            f"- machine: {cpu_model()}, {usable_cores()} usable cores, CPU only; load average before/after {load:.1f}/{os.getloadavg()[0]:.1f}\n"
            f"- DATA: the first 6 fluorescence images; model: `train(..., instances=True, steps={a.steps}, patch=128, seed={a.seed})` "
            f"in {t_train:.0f} s (validation foreground Dice {rep['final']['foreground_dice']:.3f}); `make_round(n={a.n})` over "
            f"{r['candidates']} pool images in {t_round:.0f} s\n"
            f"- the round took {took}; the pool (less DATA) holds {share}\n"
            f"- effort (seconds, `EffortCosts()` defaults) for the round's {a.n} images: correcting the model's objects "
            f"**{tm['effort']:.0f}**, correcting the classical bootstrap's {tb['effort']:.0f}, drawing from scratch "
            f"{tm['scratch_effort']:.0f} (saved {tm['saved']:.1%} and {tb['saved']:.1%})\n\n"
            + markdown_table(table.round(1).rename_axis('image').reset_index()) + '\n')
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)
    shutil.rmtree(work, ignore_errors=True)

if __name__ == '__main__': main()
