import shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/'shared'/'datasets'

def shared_dataset(name):
    "Path of a real dataset next to the repository, or skip the test when it is absent."
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
