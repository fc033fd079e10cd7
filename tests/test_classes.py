"""Several classes and a void label from the command line: `segment-lib train` and `segment-lib evaluate` on the course's
cells as background / cytoplasm / nucleus with a void band (segment_lib.synthetic.write_cell_classes), as 04c_classes
teaches. The scores are checked against the trivial baselines, never against a fixed floor."""
import json
import numpy as np
import pytest
from segment_lib.data import read_codes, read_mask
from segment_lib.synthetic import write_cell_classes
from conftest import run_cli

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A small model trained by the command on 16 three-class images, and 4 other images held out."
    root = tmp_path_factory.mktemp('classes')
    data = write_cell_classes(root/'cells', n=16, progress=False)
    heldout = write_cell_classes(root/'heldout', n=4, start=16, progress=False)
    r = run_cli('train', data, '--out', root/'model', '--steps', 40, '--depth', 3, '--valid-pct', 0.25)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, data, heldout, r

def _baselines(folder):
    "Share of each labelled class in a folder's masks (void left out): the scores of constant predictions follow from it."
    codes = read_codes(folder/'codes.txt')
    counts = sum(np.bincount(read_mask(m, codes).ravel(), minlength=len(codes)) for m in sorted((folder/'masks').iterdir()))
    known = [c for c in range(len(codes)) if c != codes.void]
    share = counts[known] / counts[known].sum()
    return dict(zip([codes.names[c] for c in known], share))

def test_train_command_on_several_classes_with_void(trained):
    root, data, heldout, r = trained
    report = json.loads((root/'model'/'report.json').read_text())
    assert report['model']['classes'] == ['background', 'cytoplasm', 'nucleus', 'void']    # one output per class
    final = report['final']
    assert list(final['per_class']) == ['background', 'cytoplasm', 'nucleus']             # void is not scored
    assert 'model written to' in r.stdout and json.loads(r.stdout[r.stdout.index('{'):])['per_class'] == final['per_class']
    known = sum(int((read_mask(data/'masks'/n, read_codes(data/'codes.txt')) != 3).sum()) for n in report['validation_images'])
    assert report['calibration']['pixels'] == known                                       # calibrated on labelled pixels only
    assert {'image_accuracy', 'image_dice'} <= set(report['epochs'][-1])

def test_evaluate_command_beats_the_majority_class(trained):
    "Scores of the held-out images, printed by `segment-lib evaluate`: each class above the best constant prediction."
    root, data, heldout, _ = trained
    r = run_cli('evaluate', root/'model', heldout, '--out', root/'scores.json')
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((root/'scores.json').read_text())
    assert not res['warnings'] and res['images'] == 4 and 'objects (IoU >= 0.5' in r.stdout
    assert list(res['per_class']) == ['background', 'cytoplasm', 'nucleus']
    share = _baselines(heldout)
    majority = max(share.values())                                   # accuracy of calling every pixel background
    assert res['pixel_accuracy'] > majority + 0.1
    for name, p in share.items():                                    # Dice of calling every pixel this class: 2p / (1 + p)
        assert res['per_class'][name]['dice'] > 2 * p / (1 + p) + (0.05 if name == 'background' else 0.3), name
