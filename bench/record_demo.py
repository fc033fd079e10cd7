"""Record the headline figures of `segment-lib demo` in bench/demo_record.json, with the machine and the date.

The README (nbs/index.ipynb) prints its demo paragraph from this record, and tests/test_demo.py runs a fresh demo and
fails when its figures drift from the record by more than run-to-run noise. Re-record after a change that moves them
on purpose (and say why in the commit):

    .venv/bin/python bench/record_demo.py                 # runs the demo into a temporary folder (about 20 s on 2 idle cores)
    .venv/bin/python bench/record_demo.py --metrics demo-output/metrics.json   # or takes an existing run
"""
import argparse, datetime, json, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT/'bench'/'demo_record.json'

def figures(m:dict) -> dict:
    "The figures the README quotes, from a demo's metrics.json."
    s, o, c = m['settings'], m['objects'], m['calibration']
    return dict(heldout_images=m['heldout']['images'], foreground_dice=round(m['heldout']['foreground_dice'], 3),
                temperature=round(c['temperature'], 2), ece_before=round(c['ece_before'], 3), ece_after=round(c['ece_after'], 3),
                spearman=round(m['ranking']['spearman_unconfident_vs_error'], 2), true_instances=o['true_instances'],
                predicted_objects=o['predicted_objects'], object_f1=round(o['f1_at_0_5'], 2), ap50=round(o['ap_at_0_5'], 2),
                merges=o['merges'], epochs=s['epochs'], parameters=s['parameters'], patch=s['patch'], seed=s['seed'],
                seconds=round(m['timings_s']['total']))

def cpu_model() -> str:
    for line in Path('/proc/cpuinfo').read_text().splitlines():
        if line.startswith('model name'): return line.split(':', 1)[1].strip()
    return 'unknown CPU'

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--metrics', help='metrics.json of an existing demo run (default: run the demo now)')
    a = ap.parse_args(argv)
    if a.metrics: m = json.loads(Path(a.metrics).read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([str(Path(sys.executable).parent/'segment-lib'), 'demo', '--out', f'{tmp}/demo'], check=True)
            m = json.loads(Path(f'{tmp}/demo/metrics.json').read_text())
    rec = dict(date=datetime.date.today().isoformat(), machine=f"{cpu_model()}, {m['machine']['cpu_threads']} threads, "
               f"torch {m['machine']['torch']}", figures=figures(m))
    RECORD.write_text(json.dumps(rec, indent=1) + '\n')
    print(json.dumps(rec, indent=1))

if __name__ == '__main__': main()
