"The annotation loop (segment_lib.hitl): rank, round, accept; accept killed at any moment leaves DATA before or after."
import ctypes, errno, json, os, random, shutil, signal, subprocess, sys, time, uuid
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from segment_lib.data import DatasetError, find_pairs, read_mask, save_image, save_mask
from segment_lib.hitl import (HISTORY, ROUND_FILE, accept, accepted_rounds, backups, exchange_paths, file_sha256, link_tree,
                              read_round)
from conftest import ROOT, run_cli, run_cli_process, tiny_learner

def state(folder):
    "relative path -> bytes of every file under `folder`, hidden ones included (None when the folder is absent)."
    folder = Path(folder)
    if not folder.exists(): return None
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}

def comparable(st):
    "A state with the history lines' run-specific fields (time, backup name) left out."
    if st is None or HISTORY not in st: return st
    lines = [json.loads(l) for l in st[HISTORY].decode().splitlines()]
    return {**st, HISTORY: [{k: v for k, v in l.items() if k not in ('accepted', 'backup')} for l in lines]}

def pair(folder, stem, size=48, seed=0, value=1):
    rng = np.random.default_rng(seed)
    save_image(rng.integers(0, 256, (size, size), dtype=np.uint8), folder/'images'/f'{stem}.png')
    m = np.zeros((size, size), np.uint8); m[5:20, 5:30] = value
    save_mask(m, folder/'masks'/f'{stem}.png')

def make_world(root, n_data=5, n_round=4):
    "DATA with pairs, codes.txt and one earlier history line; ROUND with corrected pairs and a round.json (no model needed)."
    data, rnd = root/'data', root/'round'
    for i in range(n_data): pair(data, f'd{i}', seed=i)
    (data/'codes.txt').write_text('background\nobject\n')
    (data/HISTORY).write_text(json.dumps(dict(round='earlier', images=[])) + '\n')
    for i in range(n_round): pair(rnd, f'r{i}', seed=100 + i)
    rec = dict(format=1, id=uuid.uuid4().hex, created='2026-01-01T00:00:00+00:00', score='unconfident_fraction',
               model=dict(path='m/model.pkl', sha256='0' * 64, metrics=dict(foreground_dice=0.5)),
               images=[dict(image=f'r{i}', file=f'r{i}.png', start_mask_sha256='x', unconfident_fraction=0.1 * i)
                       for i in range(n_round)])
    (rnd/ROUND_FILE).write_text(json.dumps(rec))
    return data, rnd, rec

def leftovers(root): return sorted(p.name for p in Path(root).iterdir() if '.accept-' in p.name)

# --- accept: validation, refusal, history ----------------------------------------------------------------------

def test_accept_adds_round_and_history(tmp_path):
    data, rnd, rec = make_world(tmp_path)
    before = state(data)
    res = accept(rnd, data, who='ann')
    assert res['added'] == 4 and not res['already'] and len(find_pairs(data)) == 9
    after = state(data)
    assert all(after[k] == v for k, v in before.items() if k != HISTORY)            # old files untouched
    for i in range(4): assert after[f'masks/r{i}.png'] == (rnd/'masks'/f'r{i}.png').read_bytes()
    h = accepted_rounds(data)
    assert [x['round'] for x in h] == ['earlier', rec['id']]
    assert h[1]['who'] == 'ann' and h[1]['model']['metrics'] == dict(foreground_dice=0.5)
    assert [i['image'] for i in h[1]['images']] == ['r0', 'r1', 'r2', 'r3'] and h[1]['images'][2]['unconfident_fraction'] == 0.2
    assert (data/HISTORY).read_bytes().startswith(before[HISTORY])                  # appended, earlier lines kept
    assert list(backups(data).note) == ['before accepting round'] and h[1]['backup'] == Path(res['backup']).name
    assert leftovers(tmp_path) == []
    again = accept(rnd, data)
    assert again['already'] and state(data) == after

def test_bad_masks_refused_each_named_data_untouched(tmp_path):
    data, rnd, rec = make_world(tmp_path)
    save_mask(np.zeros((30, 30), np.uint8), rnd/'masks'/'r0.png', overwrite=True)   # wrong size
    m = read_mask(rnd/'masks'/'r1.png'); m[0, 0] = 7
    save_mask(m, rnd/'masks'/'r1.png', overwrite=True)                              # a value outside DATA's codes
    Image.open(rnd/'masks'/'r2.png').convert('L').save(rnd/'masks'/'r2.jpg'); (rnd/'masks'/'r2.png').unlink()   # JPEG
    before = state(data)
    with pytest.raises(DatasetError) as e: accept(rnd, data)
    msg = str(e.value)
    assert 'nothing was added' in msg
    for name in ('r0.png', 'r1.png', 'r2.jpg'): assert name in msg, name
    assert 'r3' not in msg
    assert state(data) == before and len(backups(data)) == 0 and leftovers(tmp_path) == []

def test_never_replaces_a_mask_in_data(tmp_path):
    data, rnd, rec = make_world(tmp_path)
    shutil.copyfile(data/'images'/'d1.png', rnd/'images'/'d1.png')
    save_mask(np.ones((48, 48), np.uint8), rnd/'masks'/'d1.png')                 # a later round with an image already in DATA
    before = state(data)
    with pytest.raises(DatasetError, match='never replaces a mask'): accept(rnd, data)
    assert state(data) == before

def test_accept_needs_a_round_and_a_data_folder(tmp_path):
    data, rnd, rec = make_world(tmp_path)
    with pytest.raises(DatasetError, match='not a round folder'): accept(data, data)
    with pytest.raises(DatasetError, match='folder not found'): accept(rnd, tmp_path/'nope')

def test_accept_into_empty_dataset(tmp_path):
    _, rnd, rec = make_world(tmp_path)
    (tmp_path/'new').mkdir()
    (rnd/'codes.txt').write_text('background\ncrystal\n')
    assert accept(rnd, tmp_path/'new')['added'] == 4 and len(find_pairs(tmp_path/'new')) == 4
    assert (tmp_path/'new'/'codes.txt').read_text() == 'background\ncrystal\n'         # a new dataset takes the round's classes

def test_accept_loads_no_torch(tmp_path):
    data, rnd, rec = make_world(tmp_path)
    code = f"from segment_lib.hitl import accept; accept({str(rnd)!r}, {str(data)!r}); import sys; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == 'False', r.stderr

def test_link_tree_mirrors_with_hard_links(tmp_path):
    a = tmp_path/'a'; (a/'sub').mkdir(parents=True); (a/'sub'/'f').write_text('x'); (a/'g').write_text('y')
    assert link_tree(a, tmp_path/'b') == 2
    assert os.path.samefile(a/'sub'/'f', tmp_path/'b'/'sub'/'f')                   # hard links: no copy
    assert sorted(p.relative_to(tmp_path/'b').as_posix() for p in (tmp_path/'b').rglob('*')) == ['g', 'sub', 'sub/f']

def two_folders(tmp_path):
    a, b = tmp_path/'a', tmp_path/'b'
    a.mkdir(); b.mkdir(); (a/'old').write_text('a'); (b/'new').write_text('b')
    return a, b

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='renameat2(RENAME_EXCHANGE) exists on Linux only')
def test_exchange_paths_swaps_in_one_call(tmp_path):
    a, b = two_folders(tmp_path)
    assert exchange_paths(a, b) is True
    assert [p.name for p in a.iterdir()] == ['new'] and [p.name for p in b.iterdir()] == ['old']
    with pytest.raises(FileNotFoundError): exchange_paths(a, tmp_path/'nowhere')     # a real error is raised, not hidden

class _FakeLibc:
    "A C library whose renameat2 fails with the errno given (or that has none)."
    def __init__(self, err): self.err = err
    def __getattr__(self, name):
        if name != 'renameat2' or self.err is None: raise AttributeError(name)
        def renameat2(*args): ctypes.set_errno(self.err); return -1
        return renameat2

@pytest.mark.parametrize('unavailable', ['platform', 'old-libc', 'EINVAL', 'ENOSYS', 'EOPNOTSUPP'])
def test_exchange_paths_unavailable_moves_nothing(tmp_path, monkeypatch, unavailable):
    "Where the system cannot swap (macOS, an old C library, a file system without the flag): False, and nothing moved."
    a, b = two_folders(tmp_path)
    if unavailable == 'platform': monkeypatch.setattr(sys, 'platform', 'darwin')
    else: monkeypatch.setattr(ctypes, 'CDLL', lambda *args, **kw: _FakeLibc(None if unavailable == 'old-libc' else getattr(errno, unavailable)))
    assert exchange_paths(a, b) is False
    assert [p.name for p in a.iterdir()] == ['old'] and [p.name for p in b.iterdir()] == ['new']

def test_exchange_paths_other_errors_raise(tmp_path, monkeypatch):
    a, b = two_folders(tmp_path)
    monkeypatch.setattr(sys, 'platform', 'linux')
    monkeypatch.setattr(ctypes, 'CDLL', lambda *args, **kw: _FakeLibc(errno.EACCES))
    with pytest.raises(PermissionError): exchange_paths(a, b)

def test_accept_without_exchange_adds_the_round(tmp_path, monkeypatch):
    "The fallback of two renames gives the same DATA as the swap, and leaves nothing behind."
    import segment_lib.hitl as h
    swapped, renamed = tmp_path/'swap', tmp_path/'rename'
    for root in (swapped, renamed): root.mkdir()
    _, _, rec = make_world(swapped); shutil.copytree(swapped, renamed, dirs_exist_ok=True)
    accept(swapped/'round', swapped/'data')
    monkeypatch.setattr(h, 'exchange_paths', lambda a, b: False)
    res = accept(renamed/'round', renamed/'data')
    assert res['added'] == 4 and not res['already'] and leftovers(renamed) == []
    assert comparable(state(renamed/'data')) == comparable(state(swapped/'data'))

# --- accept killed at any moment -------------------------------------------------------------------------------

CHILD = """
import sys, os
import segment_lib.hitl as h
if os.environ.get('NO_EXCHANGE'): h.exchange_paths = lambda a, b: False
print('go', flush=True)
h.accept(sys.argv[1], sys.argv[2])
print('done', flush=True)
"""

def spawn(world, env=None):
    return subprocess.Popen([sys.executable, '-c', CHILD, str(world/'round'), str(world/'data')], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})

@pytest.fixture(scope='module')
def worlds(tmp_path_factory):
    "A pristine DATA + ROUND, the state after an uninterrupted accept, and how long its process runs from go to exit."
    base = tmp_path_factory.mktemp('kill')/'base'
    make_world(base, n_data=12, n_round=8)
    ref = base.parent/'ref'; shutil.copytree(base, ref)
    times = []
    for i in range(3):
        w = base.parent/f'timing{i}'; shutil.copytree(base, w)
        p = spawn(w); assert p.stdout.readline().strip() == 'go'
        t0 = time.perf_counter(); out, err = p.communicate(); times.append(time.perf_counter() - t0)
        assert p.returncode == 0 and out.strip() == 'done', err
    accept(ref/'round', ref/'data')
    return base, comparable(state(base/'data')), comparable(state(ref/'data')), float(np.median(times))

def check_world(world, before, after):
    "DATA is exactly before or after; running accept again completes it and leaves nothing behind."
    now = comparable(state(world/'data'))
    outcome = 'before' if now == before else 'after' if now == after else None
    assert outcome, f"DATA is in between: {sorted(set(now or {}) ^ set(before))}"
    if leftovers(world): outcome += ', mid-work'                                    # killed with its stage beside DATA
    res = accept(world/'round', world/'data')
    assert res['already'] == outcome.startswith('after')
    assert comparable(state(world/'data')) == after and leftovers(world) == []
    assert sum(1 for _ in open(world/'data'/HISTORY)) == 2                         # exactly one line for the round
    return outcome

KILLS, SPAN = 40, 1.25    # kill moments up to 1.25 times an uninterrupted run, denser early (where accept works)

def test_accept_killed_at_random_moments(worlds, tmp_path):
    """Kill `accept` at 40 moments spread over its whole run and past its end: every kill leaves DATA whole, exactly the
    state before or the state after (checked in `check_world`, which also finishes the accept), and both states occur."""
    base, before, after, seconds = worlds
    rng, outcomes = random.Random(0), []
    for i in range(KILLS):
        world = tmp_path/f'w{i}'; shutil.copytree(base, world)
        p = spawn(world)
        assert p.stdout.readline().strip() == 'go'
        # one moment in each 1/40 of [0, 1], squared: accept itself takes about the first quarter of the process's run
        # (the rest is the interpreter closing), so half the kills land while it works and the last ones after it exited
        time.sleep(seconds * SPAN * ((i + rng.random()) / KILLS) ** 2)
        p.send_signal(signal.SIGKILL); p.communicate()
        outcomes.append(check_world(world, before, after))
        shutil.rmtree(world)
    counts = {k: outcomes.count(k) for k in sorted(set(outcomes))}
    print(f"{len(outcomes)} kills: {counts}")
    assert {o.split(',')[0] for o in outcomes} == {'before', 'after'}, counts

@pytest.mark.parametrize('step', ['backed-up', 'linked', 'staged', 'ready', 'swapped'])
def test_accept_killed_at_each_step(worlds, tmp_path, step):
    base, before, after, _ = worlds
    world = tmp_path/'w'; shutil.copytree(base, world)
    p = spawn(world, {'SEGMENT_LIB_CRASH_AT': step}); p.communicate()
    assert p.returncode == -signal.SIGKILL
    assert check_world(world, before, after).split(',')[0] == ('after' if step == 'swapped' else 'before')

def test_accept_without_exchange_killed_between_renames(worlds, tmp_path):
    "Where no atomic swap exists, DATA is briefly absent between two renames; a re-run finishes the accept."
    base, before, after, _ = worlds
    world = tmp_path/'w'; shutil.copytree(base, world)
    p = spawn(world, {'SEGMENT_LIB_CRASH_AT': 'moved-away', 'NO_EXCHANGE': '1'}); p.communicate()
    assert p.returncode == -signal.SIGKILL and not (world/'data').exists()
    assert accept(world/'round', world/'data')['already'] is True
    assert comparable(state(world/'data')) == after and leftovers(world) == []
    world2 = tmp_path/'w2'; shutil.copytree(base, world2)
    p = spawn(world2, {'NO_EXCHANGE': '1'}); out, err = p.communicate()
    assert p.returncode == 0 and out.split() == ['go', 'done'], err
    assert comparable(state(world2/'data')) == after and leftovers(world2) == []

# --- rank and round, with a tiny model; the commands -----------------------------------------------------------

@pytest.fixture(scope='module')
def model_world(tmp_path_factory):
    "A tiny exported model, a pool of 10 images (2 of them already in DATA) and DATA."
    from segment_lib.learner import export_learner
    root = tmp_path_factory.mktemp('model')
    learn = tiny_learner(root/'train')
    export_learner(learn, root/'model'/'model.pkl')
    (root/'model'/'report.json').write_text(json.dumps(dict(final=dict(foreground_dice=0.42))))
    rng = np.random.default_rng(1)
    for i in range(10): save_image(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), root/'pool'/'images'/f'p{i}.png')
    for i in (0, 1):
        shutil.copyfile(root/'pool'/'images'/f'p{i}.png', (root/'data'/'images').mkdir(parents=True, exist_ok=True) or root/'data'/'images'/f'p{i}.png')
        save_mask(np.eye(32, dtype=np.uint8), root/'data'/'masks'/f'p{i}.png')
    (root/'data'/'codes.txt').write_text('background\nobject\n')
    return root

def test_rank_command_queue_and_sheet(model_world, tmp_path):
    r = run_cli('rank', model_world/'model', model_world/'pool', '--out', tmp_path/'q.csv', '--sheet', tmp_path/'s.png', '--top', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    import pandas as pd
    q = pd.read_csv(tmp_path/'q.csv')
    assert len(q) == 10 and list(q['rank']) == list(range(1, 11)) and q.unconfident_fraction.is_monotonic_decreasing
    assert 'least confident first' in r.stdout and str(tmp_path/'q.csv') in r.stdout
    with Image.open(tmp_path/'s.png') as im: assert im.size[0] >= 600
    r = run_cli('rank', model_world/'model', model_world/'pool', '--out', tmp_path/'q.csv')
    assert r.returncode == 2 and 'already exists' in r.stderr
    r = run_cli('rank', model_world/'model', model_world/'pool', '--out', tmp_path/'m.csv', '--score', 'mean_confidence')
    assert r.returncode == 0 and pd.read_csv(tmp_path/'m.csv').mean_confidence.is_monotonic_increasing

def test_round_then_accept_commands(model_world, tmp_path):
    data = tmp_path/'data'; shutil.copytree(model_world/'data', data)
    rnd = tmp_path/'round1'
    r = run_cli('round', model_world/'model', model_world/'pool', data, '--n', '3', '--out', rnd)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'segment-lib accept' in r.stdout and '2 of the pool are already in' in r.stdout
    rec = read_round(rnd)
    stems = [e['image'] for e in rec['images']]
    assert len(stems) == 3 and not {'p0', 'p1'} & set(stems)                        # images already in DATA left out
    assert rec['model']['sha256'] == file_sha256(model_world/'model'/'model.pkl')
    assert rec['model']['metrics'] == dict(foreground_dice=0.42) and rec['candidates'] == 8
    assert sorted(p.name for p in (rnd/'masks').iterdir()) == sorted(f'{s}.png' for s in stems)
    assert all((rnd/'images'/f'{s}.png').read_bytes() == (model_world/'pool'/'images'/f'{s}.png').read_bytes() for s in stems)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []   # the round was built aside, then renamed
    from segment_lib.data import _umask
    assert (rnd.stat().st_mode & 0o777) == (0o777 & ~_umask())                     # with the permissions mkdir gives
    r = run_cli('round', model_world/'model', model_world/'pool', data, '--n', '3', '--out', rnd)
    assert r.returncode == 2 and 'already holds 3 masks' in r.stderr and 'Traceback' not in r.stderr
    save_mask(np.zeros((8, 8), np.uint8), rnd/'masks'/f'{stems[0]}.png', overwrite=True)      # a bad correction
    r = run_cli_process('accept', rnd, data)
    assert r.returncode == 2 and f'{stems[0]}.png' in r.stderr and 'nothing was added' in r.stderr
    assert len(find_pairs(data)) == 2
    save_mask(np.eye(32, dtype=np.uint8), rnd/'masks'/f'{stems[0]}.png', overwrite=True)      # corrected properly
    r = run_cli_process('accept', rnd, data, '--who', 'tester')
    assert r.returncode == 0, r.stderr[-2000:]
    assert '3 images and masks added' in r.stdout and '1 masks edited' in r.stdout and 'backed up' in r.stdout
    assert len(find_pairs(data)) == 5 and accepted_rounds(data)[-1]['who'] == 'tester'
    r = run_cli('accept', rnd, data)
    assert r.returncode == 0 and 'already accepted' in r.stdout
    r = run_cli('round', model_world/'model', model_world/'pool', data, '--n', '10', '--out', tmp_path/'round2')
    assert r.returncode == 0 and read_round(tmp_path/'round2')['candidates'] == 5
    r = run_cli('round', model_world/'model', data, data, '--out', tmp_path/'round3')
    assert r.returncode == 2 and 'nothing left to annotate' in r.stderr

def test_round_strategies_from_the_command(model_world, tmp_path):
    "`--strategy` picks how a round chooses; a random draw records its seed and repeats with it; a wrong name is refused."
    import pandas as pd
    data = tmp_path/'data'; shutil.copytree(model_world/'data', data)
    r = run_cli('round', model_world/'model', model_world/'pool', data, '--n', '3', '--out', tmp_path/'r1')
    assert r.returncode == 0, r.stderr[-2000:]
    rec = read_round(tmp_path/'r1')
    assert rec['strategy'] == 'random' and isinstance(rec['seed'], int) and f"seed {rec['seed']}" in r.stdout
    r = run_cli('round', model_world/'model', model_world/'pool', data, '--n', '3', '--out', tmp_path/'r2', '--seed', str(rec['seed']))
    assert sorted(e['image'] for e in read_round(tmp_path/'r2')['images']) == sorted(e['image'] for e in rec['images'])
    r = run_cli('round', model_world/'model', model_world/'pool', data, '--n', '3', '--out', tmp_path/'r3', '--strategy', 'least-confident')
    assert r.returncode == 0 and 'the least confident' in r.stdout
    run_cli('rank', model_world/'model', model_world/'pool', '--out', tmp_path/'q.csv')
    queue = [s for s in pd.read_csv(tmp_path/'q.csv').image if s not in ('p0', 'p1')]
    assert [e['image'] for e in read_round(tmp_path/'r3')['images']] == queue[:3]      # the top of rank's queue
    r = run_cli('round', model_world/'model', model_world/'pool', data, '--n', '2', '--out', tmp_path/'r4', '--strategy', 'coverage')
    assert r.returncode == 0 and len(read_round(tmp_path/'r4')['images']) == 2 and read_round(tmp_path/'r4')['seed'] is None
    r = run_cli_process('round', model_world/'model', model_world/'pool', data, '--out', tmp_path/'r5', '--strategy', 'hardest')
    assert r.returncode == 2 and 'hardest' in r.stderr and not (tmp_path/'r5').exists()
