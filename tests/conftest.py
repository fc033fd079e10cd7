import shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/'shared'/'datasets'

# Every test that needs the project's larger real datasets (../shared/datasets, beside the clone, not in the repository),
# in one place; tests/test_lessons.py checks that this list and the tests agree. Everything else runs on data/ (bundled
# real nuclei and generated course sets), so a user's clone and GitHub's CI run it.
SHARED_DATASET_TESTS = {
    'test_cli.py::test_train_evaluate_isbi_em': 'isbi2012_em',          # 0/255 EM masks through train and evaluate
    'test_data.py::test_isbi_em_real': 'isbi2012_em',
    'test_data.py::test_dsb2018_nuclei_shared': 'dsb2018_nuclei',
    'test_learner.py::test_isbi_em_dataloaders': 'isbi2012_em',
    'test_measure.py::test_real_em_membranes_0_255': 'isbi2012_em',
    'test_unet.py::test_real_em_image_full_size': 'isbi2012_em',
}

def shared_dataset(name):
    "Path of a real dataset next to the repository, or skip the test (with the reason) when it is absent."
    p = SHARED/name
    if not (p/'images').is_dir(): pytest.skip(f'{p} not present (real datasets are optional)')
    return p

def run_cli(*args):
    "Run `segment-lib` in this process through its entry point `main`; return (returncode, stdout, stderr)."
    import contextlib, io
    from segment_lib.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in args])
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

def run_cli_process(*args, cwd=None, timeout=600):
    "Run the installed `segment-lib` console script in a new process; return the CompletedProcess."
    exe = shutil.which('segment-lib', path=str(Path(sys.executable).parent)) or shutil.which('segment-lib')
    assert exe, "the segment-lib command is not installed: run `make install` (pip install -e .)"
    return subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout)

@pytest.fixture
def cells(tmp_path):
    "A writable copy of the bundled cells course dataset."
    dst = tmp_path/'cells'
    shutil.copytree(ROOT/'data'/'cells', dst)
    return dst

def tiny_learner(folder):
    "A tiny, untrained U-Net (width 4, depth 2) on 4 random 32 px images written to `folder`: enough to test files in and out."
    import numpy as np
    from fastai.vision.all import set_seed
    from segment_lib.data import save_image, save_mask
    from segment_lib.learner import seg_learner, segmentation_dls
    rng = np.random.default_rng(0)
    for i in range(4):
        save_image(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), folder/'images'/f'{i}.png')
        save_mask((rng.random((32, 32)) > 0.5).astype(np.uint8), folder/'masks'/f'{i}.png')
    set_seed(0)
    return seg_learner(segmentation_dls(folder, bs=2, valid_pct=0.5, seed=0), 'unet', base_width=4, depth=2)
