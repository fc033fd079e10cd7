"The light core: what never runs a model imports no PyTorch, and the command line is built from the functions themselves."
import subprocess, sys
import numpy as np, pytest
from segment_lib.data import save_mask
from conftest import ROOT, run_cli, run_cli_process

LIGHT = ['segment_lib.data', 'segment_lib.check', 'segment_lib.instances', 'segment_lib.bootstrap', 'segment_lib.annotations',
         'segment_lib.mask_qa', 'segment_lib.regions', 'segment_lib.confidence', 'segment_lib.metrics', 'segment_lib.hitl', 'segment_lib.snapshots', 'segment_lib.active_learning', 'segment_lib.effort', 'segment_lib.correct', 'segment_lib.fingerprint', 'segment_lib.scale', 'segment_lib.measure', 'segment_lib.synthetic', 'segment_lib.viz', 'segment_lib.cli']

def loads_torch(code):
    "Whether running `code` in a fresh interpreter imports torch (or fastai)."
    probe = code + "\nimport sys; print(sorted(m for m in ('torch', 'fastai') if m in sys.modules))"
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip().splitlines()[-1]

@pytest.mark.parametrize('module', LIGHT)
def test_light_module_imports_no_torch(module):
    assert loads_torch(f'import {module}') == '[]'

@pytest.mark.parametrize('args', [['--help'], ['check', 'data/cells'], ['measure', 'data/cells', '--out', '{tmp}/o.csv'],
                                  ['convert', 'data/cells/instances', '--to', 'semantic', '--out', '{tmp}/sem'],
                                  ['bootstrap', '--help'], ['import', '--help']])
def test_light_commands_import_no_torch(args, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    code = f"from segment_lib.cli import main\ntry: main({args!r})\nexcept SystemExit: pass"
    assert loads_torch(code) == '[]'

def test_model_commands_do_load_torch():
    assert loads_torch("from segment_lib.cli import build_parser; build_parser('train')") == "['fastai', 'torch']"

def test_version_and_help_defaults():
    r = run_cli_process('--version')
    assert r.returncode == 0 and r.stdout.startswith('segment-lib ')
    r = run_cli_process('train', '--help')
    text = ' '.join(r.stdout.split())
    for part in ['--minutes MINUTES time budget, everything included; default: 10 on a CPU, 3 on a GPU', "batch size; default: the plan's (8)",
                 "number of poolings; default: the plan's (4)", "--scale SCALE object scale: 'auto'",
                 'held out for validation (default: 0.2)', '{ce,dice,ce+dice,focal}']:
        assert part in text, part

def test_dataset_folder_accepted_everywhere(tmp_path):
    cells = ROOT/'data'/'cells'
    r = run_cli('convert', cells/'instances', '--to', 'three-class', '--out', tmp_path/'three')
    assert r.returncode == 0, r.stderr
    r = run_cli('convert', tmp_path/'three', '--to', 'instances', '--out', tmp_path/'ids')   # the folder convert wrote
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path/'ids'/'masks').iterdir())) == 40
    r = run_cli('measure', cells, '--out', tmp_path/'objects.csv')                       # DATA, not DATA/masks
    assert r.returncode == 0, r.stderr
    r = run_cli('bootstrap', cells, '--out', tmp_path/'boot')                            # DATA, not DATA/images
    assert r.returncode == 0, r.stderr

def test_binary_mask_with_0_and_3_names_only_3(tmp_path):
    (tmp_path/'images').mkdir()
    from segment_lib.data import save_image
    save_image(np.zeros((8, 8), np.uint8), tmp_path/'images'/'a.png')
    m = np.zeros((8, 8), np.uint8); m[2:5, 2:5] = 3
    save_mask(m, tmp_path/'masks'/'a.png')
    r = run_cli('check', tmp_path)
    assert r.returncode == 2 and 'found value 3 outside the codes' in r.stderr and '0, 3' not in r.stderr

def test_a_bug_keeps_its_traceback(monkeypatch):
    import segment_lib.check
    def broken(*args, **kwargs): raise ValueError('an internal bug, not bad input')
    monkeypatch.setattr(segment_lib.check, 'inspect_mask', broken)          # a bug deep inside check_dataset
    with pytest.raises(ValueError, match='internal bug'): run_cli('check', ROOT/'data'/'cells')

def test_check_notes_and_train_refusals(tmp_path):
    "`check` says what cannot train as notes; `train` refuses it with exit code 2 before any work."
    from segment_lib.data import save_image
    d = tmp_path/'blank'
    for i in range(5):
        save_image(np.full((32, 32), 40 * i, np.uint8), d/'images'/f'b{i}.png'); save_mask(np.zeros((32, 32), np.uint8), d/'masks'/f'b{i}.png')
    r = run_cli('check', d)
    assert r.returncode == 0 and "class 'object' occurs in no mask" in r.stdout and 'nothing blocks training' in r.stdout
    r = run_cli('train', d, '--out', tmp_path/'m')
    assert r.returncode == 2 and 'every mask is background only' in r.stderr and not (tmp_path/'m').exists()
    save_mask(np.eye(32, dtype=np.uint8), d/'masks'/'b0.png', overwrite=True)
    r = run_cli('train', d, '--out', tmp_path/'m', '--valid-pct', '0.1')
    assert r.returncode == 2 and 'hold out no image' in r.stderr and 'Traceback' not in r.stderr
    save_image(np.zeros((1, 1), np.uint8), d/'images'/'dot.png'); save_mask(np.ones((1, 1), np.uint8), d/'masks'/'dot.png')
    r = run_cli('check', d)
    assert r.returncode == 0 and 'images of 1x1 pixels are smaller than 16' in r.stdout
    r = run_cli('train', d, '--out', tmp_path/'m')
    assert r.returncode == 2 and 'a U-Net needs at least 16' in r.stderr

def test_grey_and_colour_mixed_is_a_note(tmp_path):
    from segment_lib.data import save_image
    for i, img in enumerate([np.zeros((20, 20), np.uint8), np.zeros((20, 20, 3), np.uint8)]):
        save_image(img, tmp_path/'images'/f'{i}.png'); save_mask(np.eye(20, dtype=np.uint8), tmp_path/'masks'/f'{i}.png')
    r = run_cli('check', tmp_path)
    assert r.returncode == 0 and 'grey and colour images are mixed' in r.stdout
