"""Run every lesson alone, top to bottom, as `nbdev-test` runs it (CPU cells only), and record its wall time in
bench/lesson_times.json with the machine: the workshop plan on the home page prints these times.

    OMP_NUM_THREADS=1 .venv/bin/python bench/lesson_times.py          # about 15-25 minutes on an idle machine
    OMP_NUM_THREADS=1 .venv/bin/python bench/lesson_times.py --save   # and keep each run's outputs in the lesson
                                                                        # (then `nbdev-clean`)

One thread, as `make test` runs each notebook: the saved outputs are then the very numbers CI computes (a different
thread count changes the last digits of training, and so the figures a lesson's prose quotes).
"""
import datetime, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'bench'))
from train_throughput import cpu_model, usable_cores   # noqa: E402

def main(save=False):
    exe = Path(sys.executable).parent/'nbdev-test'
    seconds, load = {}, os.getloadavg()[0]
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        t = time.time()
        r = subprocess.run([str(exe), str(nb), '--n-workers', '1', *(['--save'] if save else [])], cwd=ROOT, capture_output=True, text=True)
        seconds[nb.stem] = round(time.time() - t, 1)
        print(f'{nb.stem}: {seconds[nb.stem]} s {"" if r.returncode == 0 else "FAILED"}', flush=True)
        if r.returncode: sys.exit(r.stdout[-2000:] + r.stderr[-2000:])
    rec = dict(date=datetime.date.today().isoformat(), machine=f'{cpu_model()}, {usable_cores()} cores, '
               f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average before/after {load:.1f}/{os.getloadavg()[0]:.1f}",
               seconds=seconds)
    (ROOT/'bench'/'lesson_times.json').write_text(json.dumps(rec, indent=1) + '\n')
    print(json.dumps(rec, indent=1))

if __name__ == '__main__': main(save='--save' in sys.argv[1:])
