"""Object scale end to end (issue 28): a model trained at a working scale predicts new images at that scale through the
command (`--diameter` or estimated), records what it used in scores.csv, and pixel sizes read from TIFF metadata reach
`measure` through predict's record of each mask's image."""
import json
import numpy as np, pandas as pd, pytest, tifffile
from conftest import ROOT, run_cli, tiny_learner
from segment_lib.data import save_image, save_mask, read_mask_array
from segment_lib.instances import instances_to_three_class

def test_pixel_size_from_tiff_reaches_measure(tmp_path):
    learn = tiny_learner(tmp_path/'train')
    from segment_lib.budget import export_learner
    export_learner(learn, tmp_path/'model'/'model.pkl')
    img = np.random.default_rng(1).integers(0, 256, (40, 50), dtype=np.uint8)
    (tmp_path/'new').mkdir()
    tifffile.imwrite(tmp_path/'new'/'a.tif', img, imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={'unit': 'um'})
    r = run_cli('predict', tmp_path/'model', tmp_path/'new', '--out', tmp_path/'pred')
    assert r.returncode == 0, r.stderr[-2000:]
    scores = pd.read_csv(tmp_path/'pred'/'scores.csv')
    assert (tmp_path/'pred'/scores.source[0]).resolve() == (tmp_path/'new'/'a.tif').resolve()   # where each mask came from
    r = run_cli('measure', tmp_path/'pred'/'masks', '--out', tmp_path/'objects.csv', '--min-size', '0')
    assert r.returncode == 0, r.stderr[-2000:]
    summary = pd.read_csv(tmp_path/'objects_summary.csv')
    assert summary.pixel_size_source.tolist() == ['imagej']                       # from the image's TIFF metadata
    objects = pd.read_csv(tmp_path/'objects.csv')
    if len(objects): assert (objects.pixel_size == 0.25).all() and (objects.unit == 'um').all()

def _spots(folder, n, side, radius, seed):
    rng, (yy, xx) = np.random.default_rng(seed), np.mgrid[:side, :side]
    step = 4 * radius
    for i in range(n):
        ids, k = np.zeros((side, side), np.uint16), 0
        for r in range(step // 2, side - radius, step):
            for c in range(step // 2, side - radius, step):
                k += 1; dr, dc = rng.integers(-radius // 2, radius // 2 + 1, 2)
                ids[(yy - r - dr) ** 2 + (xx - c - dc) ** 2 <= radius ** 2] = k
        img = np.clip(np.where(ids > 0, 190, 50) + rng.normal(0, 12, ids.shape), 0, 255).astype(np.uint8)
        save_image(img, folder/'images'/f'r{radius}_{i}.png'); save_mask(ids, folder/'masks'/f'r{radius}_{i}.png', instances=True)

def test_working_scale_model_through_the_command(tmp_path):
    "Spots 16 px across and spots 96 px across (another magnification): train rescales the large ones, predict too."
    data = tmp_path/'spots'
    _spots(data, 6, 96, 8, 0); _spots(data, 6, 384, 48, 1)
    r = run_cli('train', data, '--out', tmp_path/'m', '--instances', '--steps', '40', '--bs', '4', '--base-width', '8',
                '--depth', '3', '--lr', '0.01')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path/'m'/'report.json').read_text())
    assert rep['model']['diameters'] == [12.0, 48.0] and len(rep['training_plan']['scales']) == 6
    assert 'plan: scale:' in r.stdout                                             # the plan is printed
    _spots(tmp_path/'new', 1, 384, 48, 7)
    r = run_cli('predict', tmp_path/'m', tmp_path/'new'/'images', '--out', tmp_path/'given', '--diameter', '96')
    assert r.returncode == 0, r.stderr[-2000:]
    s = pd.read_csv(tmp_path/'given'/'scores.csv')
    assert s.diameter_px.tolist() == [96.0] and s.scale.tolist() == [0.5]          # 96 px objects shrunk to 48
    ids = read_mask_array(next((tmp_path/'given'/'instances').iterdir()))
    assert ids.shape == (384, 384)                                                # back at the image's own size
    r = run_cli('predict', tmp_path/'m', tmp_path/'new'/'images', '--out', tmp_path/'estimated')
    assert r.returncode == 0, r.stderr[-2000:]
    s = pd.read_csv(tmp_path/'estimated'/'scores.csv')
    assert s.diameter_px.notna().all() and s.scale.iloc[0] < 1                     # estimated: too large, shrunk
