"""Build data/nuclei: 40 real DSB2018 micrographs (BBBC038, CC0) with their instance masks, across the three modalities.

Run from the repository root with the DSB2018 subset beside the clone (../shared/datasets/dsb2018_nuclei, 150 images of
stage1_train with the community label fixes):

    .venv/bin/python tools/bundle_nuclei.py [SOURCE] [--out data/nuclei]

Each image's modality comes from its pixels: colour (mean channel spread above 10 grey levels) is H&E-stained tissue,
a grey image brighter than 100 on average is brightfield, the rest fluorescence. The selection is fixed by name order:
every 5th fluorescence image (26), every other stained-tissue image (10) and the 4 brightfield images, which are
1024x1024 and are cropped to the 512x512 quadrant holding the most nuclei (ids renumbered 1..n, nuclei cut by the crop
kept as the part inside). Fluorescence and tissue files are copied byte for byte. `modality.csv` lists stem, modality,
source file and crop.
"""
import argparse, csv, shutil
from pathlib import Path
import numpy as np
from PIL import Image
from skimage.segmentation import relabel_sequential

def modality(rgb):
    "'stained tissue', 'brightfield' or 'fluorescence', from an RGB(A) image's pixels."
    rgb = rgb[..., :3].astype(float)
    if (rgb.max(-1) - rgb.min(-1)).mean() > 10: return 'stained tissue'
    return 'brightfield' if rgb.mean() > 100 else 'fluorescence'

def best_quadrant(ids, side=512):
    "(row, col) of the side x side quadrant of `ids` that holds the most nuclei."
    starts = [(r, c) for r in (0, ids.shape[0] - side) for c in (0, ids.shape[1] - side)]
    return max(starts, key=lambda rc: len(np.unique(ids[rc[0]:rc[0] + side, rc[1]:rc[1] + side])) - 1)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('source', nargs='?', default='../shared/datasets/dsb2018_nuclei')
    ap.add_argument('--out', default='data/nuclei')
    a = ap.parse_args(argv)
    src, out = Path(a.source), Path(a.out)
    by_kind = {}
    for p in sorted((src/'images').glob('*.png')): by_kind.setdefault(modality(np.asarray(Image.open(p))), []).append(p)
    chosen = by_kind['fluorescence'][::5] + by_kind['stained tissue'][::2] + by_kind['brightfield']
    for sub in ('images', 'masks'): (out/sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for p in chosen:
        kind, m = modality(np.asarray(Image.open(p))), src/'masks'/p.name
        if kind == 'brightfield':
            ids = np.asarray(Image.open(m))
            r, c = best_quadrant(ids)
            crop = (slice(r, r + 512), slice(c, c + 512))
            Image.fromarray(np.asarray(Image.open(p))[crop]).save(out/'images'/p.name)
            Image.fromarray(relabel_sequential(ids[crop])[0].astype(np.uint16)).save(out/'masks'/p.name)
            where = f'rows {r}-{r + 511}, cols {c}-{c + 511}'
        else:
            shutil.copyfile(p, out/'images'/p.name); shutil.copyfile(m, out/'masks'/p.name)
            where = 'whole image'
        rows.append(dict(stem=p.stem, modality=kind, source=f'stage1_train/{p.stem}', crop=where))
    with open(out/'modality.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    print(f"{out}: {len(rows)} images; " + ', '.join(f"{k} {sum(r['modality'] == k for r in rows)}" for k in by_kind))

if __name__ == '__main__': main()
