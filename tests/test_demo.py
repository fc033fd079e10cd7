"""The README's demo figures come from a recorded run (bench/demo_record.json), and a fresh `segment-lib demo` reproduces
them: the test fails when they drift by more than run-to-run noise, so the home page cannot quietly go stale."""
import json, sys
import pytest
from conftest import ROOT, run_cli_process

sys.path.insert(0, str(ROOT/'tools'))
from docs.demo import demo_paragraph, demo_record   # noqa: E402

# How far a fresh run may land from the record: the same code gives the same figures on one machine; across CPUs
# (AVX-512 bfloat16 or not, thread counts) the training numbers move a little, the 12-image Spearman most.
TOLERANCE = dict(foreground_dice=0.02, temperature=0.15, object_f1=0.08, ap50=0.08, spearman=0.4)
COUNTS = dict(predicted_objects=12, merges=8)

def test_readme_prints_the_recorded_figures():
    "The home page's demo paragraph is the record's, word for word (the index notebook prints it)."
    assert demo_paragraph() in (ROOT/'README.md').read_text(encoding='utf-8'), \
        'README.md does not show bench/demo_record.json: re-run nbs/index.ipynb, then `make readme`'

@pytest.fixture(scope='module')
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')/'demo'
    r = run_cli_process('demo', '--out', out, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    sys.path.insert(0, str(ROOT/'bench'))
    from record_demo import figures
    return figures(json.loads((out/'metrics.json').read_text()))

def test_fresh_demo_reproduces_the_record(fresh):
    rec = demo_record()['figures']
    drift = {k: (fresh[k], rec[k]) for k, tol in TOLERANCE.items() if abs(fresh[k] - rec[k]) > tol}
    drift |= {k: (fresh[k], rec[k]) for k, tol in COUNTS.items() if abs(fresh[k] - rec[k]) > tol}
    drift |= {k: (fresh[k], rec[k]) for k in ('heldout_images', 'true_instances', 'epochs', 'parameters', 'patch', 'seed')
              if fresh[k] != rec[k]}
    assert not drift, f'the demo no longer gives the recorded figures (fresh, recorded): {drift}; if on purpose, run bench/record_demo.py'
    assert fresh['ece_after'] < fresh['ece_before'] and fresh['ece_after'] <= 0.02      # calibration still works
    assert fresh['foreground_dice'] > 0.35 + 0.5                                      # all-object predictions score 0.35 on these cells
