"""Wall time and peak memory of light `segment-lib` commands, optionally against another checkout side by side.

Each repetition runs the command in a fresh process (as a user would) and reads its peak resident memory from
`getrusage(RUSAGE_CHILDREN)` of a one-shot wrapper process. With `--before DIR` the same commands also run with the
package imported from DIR (e.g. a `git worktree` of an older commit), alternating with the current checkout, so the
ratio comes from one run on one machine.

    .venv/bin/python bench/command_speed.py                       # this checkout only, print
    git worktree add /tmp/before e90c2c8
    .venv/bin/python bench/command_speed.py --before /tmp/before --record
"""
import argparse, os, platform, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    'check data/cells': ['check', 'data/cells'],
    '--help': ['--help'],
    'measure data/cells/masks': ['measure', 'data/cells/masks', '--out', '{tmp}/objects.csv', '--overwrite'],
}
WRAPPER = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
           "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")

def run_once(args, src=None):
    "(seconds, peak MB, exit code) of `segment-lib ARGS` in a fresh process, importing the package from `src` if given."
    first = f'import sys; sys.path.insert(0, {str(src)!r}); ' if src else ''   # ahead of this checkout and the editable install
    cmd = [sys.executable, '-c', first + 'from segment_lib.cli import main; raise SystemExit(main())', *args]
    out = subprocess.run([sys.executable, '-c', WRAPPER, *cmd], capture_output=True, text=True, cwd=ROOT).stdout
    secs, kb, rc = out.split()
    return float(secs), int(kb) / 1024, int(rc)

def machine():
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    return f"{cpu}, {len(os.sched_getaffinity(0))} usable cores; python {platform.python_version()}"

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=5, help='repetitions per command and checkout')
    p.add_argument('--before', default=None, help='another checkout to compare with (its package root)')
    p.add_argument('--record', action='store_true', help='append the entry to bench/RESULTS.md')
    a = p.parse_args()
    import tempfile
    tmp = tempfile.mkdtemp(prefix='segment_lib_bench_')
    sources = {'this checkout': None} | ({'before': a.before} if a.before else {})
    rows = []
    for name, args in COMMANDS.items():
        args = [x.format(tmp=tmp) for x in args]
        got = {k: [] for k in sources}
        for _ in range(a.reps):                       # alternate, so both see the same machine load
            for k, src in sources.items(): got[k].append(run_once(args, src))
        for k, runs in got.items():
            rows.append((name, k, statistics.median(r[0] for r in runs), max(r[1] for r in runs), {r[2] for r in runs}))
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: light commands, wall time and peak memory\n",
             f"- machine: {machine()}; {a.reps} runs per command and checkout, alternating; median wall time, largest peak RSS",
             f"- before: {a.before or '(not compared)'}\n",
             "| command | checkout | wall s (median) | peak MB | exit codes |", "|---|---|---|---|---|"]
    lines += [f"| `segment-lib {c}` | {k} | {s:.2f} | {m:.0f} | {', '.join(map(str, sorted(rc)))} |" for c, k, s, m, rc in rows]
    text = '\n'.join(lines) + '\n'
    print(text)
    if a.record:
        with open(ROOT/'bench'/'RESULTS.md', 'a') as f: f.write(text)

if __name__ == '__main__': main()
