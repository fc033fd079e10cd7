"`predict_folder` on Dask workers writes what the serial run writes (needs the optional extra: segment-lib[scale])."
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('dask.distributed', reason='Dask is optional: pip install segment-lib[scale]')

from segment_lib.data import read_mask_array, save_image, save_mask
from segment_lib.inference import predict_folder, read_confidence
from conftest import tiny_learner


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    "A tiny random-init U-Net, exported as `train` would: the workers load it from the file."
    from segment_lib.learner import export_learner
    learn = tiny_learner(tmp_path_factory.mktemp('ds'))
    return export_learner(learn, tmp_path_factory.mktemp('model')/'model.pkl')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    "Six images of different sizes and types, one of them larger than a tile."
    from segment_lib.synthetic import make_cells
    d = tmp_path_factory.mktemp('imgs')
    rng = np.random.default_rng(1)
    for i, size in enumerate((48, 64, 96)): save_image(make_cells(size=size, seed=i).image, d/f'cells{i}.png')
    save_image(rng.integers(0, 4096, (40, 70), dtype=np.uint16), d/'grey16.tif')
    save_image(rng.integers(0, 256, (300, 90, 3), dtype=np.uint8), d/'tall.png')
    save_image(rng.integers(0, 256, (17, 33), dtype=np.uint8), d/'thin.png')
    return d


def _outputs(out:Path) -> dict:
    "Every file written under `out`, by relative path: masks and 8-bit confidence as arrays, the rest as bytes."
    files = {}
    for p in sorted(out.rglob('*')):
        if p.is_dir(): continue
        rel = p.relative_to(out).as_posix()
        files[rel] = (read_mask_array(p) if rel.startswith('masks/') else read_confidence(p) if rel.endswith('.png')
                      else p.read_bytes() if rel == 'codes.txt' else None)
    return files


def test_two_workers_write_what_the_serial_run_writes(model_path, images, tmp_path):
    serial = predict_folder(model_path, images, tmp_path/'serial', progress=False)
    parallel = predict_folder(str(model_path), images, tmp_path/'dask', workers=2, progress=False)
    assert [p.name for p in parallel] == [p.name for p in serial] and len(serial) == 6
    assert all(p.parent == tmp_path/'dask'/'masks' for p in parallel)
    a, b = _outputs(tmp_path/'serial'), _outputs(tmp_path/'dask')
    assert list(a) == list(b)                                   # same files, no temporary files left behind
    assert a['codes.txt'] == b['codes.txt']
    for rel in a:
        if rel.startswith('masks/'): assert np.array_equal(a[rel], b[rel]), rel                   # the same masks
        elif rel.endswith('.png'): assert np.abs(a[rel] - b[rel]).max() <= 1 / 255 + 1e-6, rel   # 8-bit confidence


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
