"`predict_folder` on Dask workers writes what the serial run writes (needs the optional extra: segment-lib[scale])."
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip('dask.distributed', reason='Dask is optional: pip install segment-lib[scale]')

from segment_lib.data import read_image, read_mask_array, save_image, save_mask
from segment_lib.inference import predict_folder
from conftest import ROOT


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    "A small U-Net trained a few epochs on the course cells, exported as `train` would: the workers load it from the file."
    from fastai.vision.all import set_seed
    from segment_lib.learner import export_learner, seg_learner, segmentation_dls
    set_seed(0, reproducible=True)
    learn = seg_learner(segmentation_dls(ROOT/'data'/'cells', bs=8, seed=0), 'unet', base_width=4, depth=2)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-2)
    return export_learner(learn, tmp_path_factory.mktemp('model')/'model.pkl')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    "Six images of different sizes and types, one of them larger than a tile."
    from segment_lib.synthetic import make_cells
    d = tmp_path_factory.mktemp('imgs')
    rng = np.random.default_rng(1)
    for i, size in enumerate((48, 64, 96)): save_image(make_cells(size=size, seed=i).image, d/f'cells{i}.png')
    save_image(rng.integers(0, 4096, (40, 70), dtype=np.uint16), d/'grey16.tif')
    save_image(np.concatenate([make_cells(size=96, seed=5).image] * 3)[:300, :90], d/'tall.png')     # 300 x 90: several tiles
    save_image(rng.integers(0, 256, (17, 33), dtype=np.uint8), d/'thin.png')
    return d


def _files(out:Path) -> list:
    "Every file written under `out`, by relative path."
    return sorted(p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file())


def test_two_workers_write_what_the_serial_run_writes(model_path, images, tmp_path):
    "Masks pixel for pixel, confidence maps value for value and the same scores.csv: the workers compute what one process does."
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                      # as each Dask worker (one thread), so the sums run in one order
    try: serial = predict_folder(model_path, images, tmp_path/'serial', progress=False)
    finally: torch.set_num_threads(threads)
    parallel = predict_folder(str(model_path), images, tmp_path/'dask', workers=2, progress=False)
    a, b = tmp_path/'serial', tmp_path/'dask'
    assert [p.name for p in parallel] == [p.name for p in serial] and len(serial) == 6
    assert all(p.parent == b/'masks' for p in parallel)
    assert _files(a) == _files(b)                                 # the same files, no temporary files left behind
    assert (a/'codes.txt').read_bytes() == (b/'codes.txt').read_bytes()
    masks = {p.name: read_mask_array(a/'masks'/p.name) for p in serial}
    assert sum(len(np.unique(m)) == 2 for m in masks.values()) >= 4   # background and cells both predicted: not a blank model
    for name, mask in masks.items():
        stem = Path(name).stem
        np.testing.assert_array_equal(read_mask_array(b/'masks'/name), mask, err_msg=name)                   # pixel for pixel
        np.testing.assert_array_equal(read_image(b/'confidence'/f'{stem}.png'), read_image(a/'confidence'/f'{stem}.png'), err_msg=name)
        np.testing.assert_array_equal(read_image(b/'confidence'/f'{stem}.tif'), read_image(a/'confidence'/f'{stem}.tif'), err_msg=name)
    scores_a, scores_b = (pd.read_csv(d/'scores.csv').sort_values('image').reset_index(drop=True) for d in (a, b))
    assert len(scores_a) == 6 and scores_a.unconfident_fraction.nunique() > 1
    pd.testing.assert_frame_equal(scores_b, scores_a, check_exact=True)   # the same values, to the last digit written


def test_existing_masks_are_kept_and_a_running_scheduler_is_used(model_path, images, tmp_path):
    "The never-overwrite rule holds on the workers; `scheduler=` uses a cluster that is already running."
    from dask.distributed import LocalCluster
    out = tmp_path/'out'
    predict_folder(model_path, images, out, progress=False)
    corrected = out/'masks'/'cells0.png'
    save_mask(np.eye(48, dtype=np.uint8), corrected, overwrite=True)   # a person's correction
    before = corrected.read_bytes()
    (out/'masks'/'tall.png').unlink()                                   # and one mask missing
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with pytest.warns(UserWarning, match='5 masks already there'):
            again = predict_folder(model_path, images, out, scheduler=cluster.scheduler_address, progress=False)
        assert again == [out/'masks'/'tall.png']
        assert corrected.read_bytes() == before
        with pytest.warns(UserWarning, match='6 masks already there'):  # nothing left to do: no task is sent
            assert predict_folder(model_path, images, out, scheduler=cluster.scheduler_address, progress=False) == []


def test_workers_need_a_model_file_and_say_so(model_path, images, tmp_path):
    from segment_lib.data import UserError
    from segment_lib.inference import load_model
    with pytest.raises(UserError, match='path of the model.pkl'):
        predict_folder(load_model(model_path), images, tmp_path/'out', workers=2)
    assert not (tmp_path/'out').exists()


def test_the_command_line_passes_workers_on(model_path, images, tmp_path):
    "`segment-lib predict --workers 2`: the option comes from `predict_folder`'s signature and docments."
    from conftest import run_cli
    r = run_cli('predict', model_path, images, '--out', tmp_path/'out', '--workers', 2)
    assert r.returncode == 0 and '6 masks written' in r.stdout, r.stderr
