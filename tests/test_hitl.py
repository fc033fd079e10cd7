"Backups of a dataset folder (segment_lib.snapshots, also importable from segment_lib.hitl): snapshot, list, verify, restore, from Python and from the command line."
import hashlib, json, os, subprocess, sys
from pathlib import Path
import pytest
from segment_lib.data import DatasetError
from segment_lib.snapshots import backup, backups, backup_store, dataset_files, object_path, restore, verify
from conftest import ROOT, run_cli, run_cli_process

def test_old_import_path_and_command_table():
    "Code written before the split imports the snapshot functions from segment_lib.hitl; the command table names them there."
    import segment_lib.hitl as hitl, segment_lib.snapshots as snapshots
    from segment_lib.cli import COMMANDS, _load
    for name in ('BACKUP_DIR', 'MANIFEST', 'backup_store', 'dataset_files', 'file_sha256', 'object_path', 'store_object',
                 'backup', 'read_manifest', 'backups', 'verify', 'restore'):
        assert getattr(hitl, name) is getattr(snapshots, name) and name in hitl.__all__, name
    for command in ('backup', 'backups', 'verify', 'restore'):
        assert COMMANDS[command].func == f'segment_lib.hitl:{command}' and _load(COMMANDS[command].func) is getattr(snapshots, command)

@pytest.mark.parametrize('module', ['segment_lib.snapshots', 'segment_lib.hitl', 'segment_lib.active_learning', 'segment_lib.annotations'])
def test_loop_modules_import_no_torch(module):
    "Backing up, reading and writing rounds, accepting and importing start without PyTorch; only training and ranking load it."
    probe = f"import {module}, sys; print(sorted(m for m in ('torch', 'fastai') if m in sys.modules))"
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == '[]', r.stderr[-2000:]

def contents(folder):
    "relative path -> bytes of every dataset file."
    return {k: f.read_bytes() for k, f in dataset_files(folder).items()}

def objects(store):
    return sorted(p for p in (Path(store)/'objects').rglob('*') if p.is_file())

def entry(snapshot, path):
    m = json.loads((Path(snapshot)/'manifest.json').read_text())
    return next(e for e in m['entries'] if e['path'] == path)

def tamper(store, sha):
    "Flip one byte of a stored object (objects are read-only: make it writable first)."
    obj = object_path(store, sha); os.chmod(obj, 0o644)
    b = bytearray(obj.read_bytes()); b[len(b) // 2] ^= 0xFF; obj.write_bytes(bytes(b))

def change(data):
    "A day's work gone wrong: a mask edited, an image deleted, a file added."
    masks = sorted((data/'masks').iterdir())
    masks[0].write_bytes(masks[1].read_bytes())
    sorted((data/'images').iterdir())[2].unlink()
    (data/'masks'/'extra.txt').write_text('added')
    (data/'new'/'deep').mkdir(parents=True); (data/'new'/'deep'/'f.txt').write_text('x')

def test_backup_change_restore_is_byte_identical(cells):
    original = contents(cells)
    snap = backup(cells, note='first')
    m = json.loads((snap/'manifest.json').read_text())
    assert m['files'] == len(original) and m['note'] == 'first'
    assert snap.parent.parent == cells.parent/'.segment-lib-backups'/'cells'        # a sibling of DATA, not inside it
    e = m['entries'][0]
    assert e['sha256'] == hashlib.sha256((cells/e['path']).read_bytes()).hexdigest() and e['size'] == len(original[e['path']])
    change(cells)
    assert contents(cells) != original
    res = restore(snap, cells, force=True)
    assert contents(cells) == original                       # byte for byte, and exactly the same set of files
    assert not (cells/'new').exists()                        # folders left empty by removed files go too
    assert res['removed'] == 2 and res['written'] == 2
    assert verify(snap)['ok'] and verify(res['backup_before'])['ok']
    mt = {k: f.stat().st_mtime for k, f in dataset_files(cells).items()}
    assert all(abs(mt[x['path']] - x['mtime']) < 1e-3 for x in m['entries'])       # modification times come back too

def test_restore_into_new_folder(cells, tmp_path):
    snap = backup(cells)
    res = restore(snap, tmp_path/'fresh')
    assert contents(tmp_path/'fresh') == contents(cells) and res['backup_before'] is None
    (tmp_path/'empty').mkdir()
    restore(snap, tmp_path/'empty')
    assert contents(tmp_path/'empty') == contents(cells)

def test_deduplication(tmp_path):
    data = tmp_path/'ten'; data.mkdir()
    for i in range(10): (data/f'{i}.bin').write_bytes(os.urandom(1000 + i))
    (data/'same.bin').write_bytes((data/'0.bin').read_bytes())                     # identical content inside one snapshot
    s1 = backup(data); store = backup_store(data)
    assert len(objects(store)) == 10
    s2 = backup(data)
    assert len(objects(store)) == 10 and s1 != s2                                  # each content stored once
    assert sum(p.stat().st_size for p in objects(store)) == sum(1000 + i for i in range(10))
    assert json.loads((s2/'manifest.json').read_text())['new_bytes'] == 0
    (data/'3.bin').write_bytes(b'edited')
    backup(data)
    assert len(objects(store)) == 11                                               # only the edit costs space
    assert list(backups(data).name) == [s1.name, s2.name, backups(data).name.iloc[-1]]
    assert list(backups(data).columns[:5]) == ['name', 'time', 'files', 'bytes', 'note']

def test_skips_store_and_temporary_files(cells, tmp_path):
    (cells/'masks'/'.cells_000.k3j_9x2a.png').write_bytes(b'half-written')        # an atomic_write in progress
    (cells/'.keep').write_text('kept')
    snap = backup(cells, to=cells/'backups')                                       # a store inside DATA is skipped
    paths = {e['path'] for e in json.loads((snap/'manifest.json').read_text())['entries']}
    assert '.keep' in paths and 'masks/.cells_000.k3j_9x2a.png' not in paths
    assert not any(p.startswith('backups/') for p in paths)
    backup(cells, to=cells/'backups')
    assert len(backups(cells, to=cells/'backups')) == 2 and len(backups(cells)) == 0

def test_unfinished_snapshot_is_not_listed(cells):
    snap = backup(cells)
    (snap.parent/'19990101T000000Z').mkdir()                                       # no manifest: cut short
    assert list(backups(cells).name) == [snap.name]
    with pytest.raises(DatasetError, match='not a finished snapshot'): verify(snap.parent/'19990101T000000Z')

def test_verify_names_tampered_and_missing(cells):
    snap = backup(cells); store = backup_store(cells)
    mask = sorted((cells/'masks').iterdir())[0].name
    bad, gone = entry(snap, f'masks/{mask}'), entry(snap, 'codes.txt')
    tamper(store, bad['sha256']); object_path(store, gone['sha256']).unlink()
    with pytest.raises(DatasetError) as e: verify(snap)
    msg = str(e.value)
    assert f'masks/{mask}: its stored copy' in msg and 'has changed' in msg
    assert 'codes.txt: its stored copy' in msg and 'is missing' in msg
    assert '2 of' in msg and msg.count('\n  ') == 2

def test_restore_refuses_damaged_snapshot_before_writing(cells, tmp_path):
    snap = backup(cells); tamper(backup_store(cells), entry(snap, 'codes.txt')['sha256'])
    with pytest.raises(DatasetError, match='codes.txt'): restore(snap, tmp_path/'out')
    assert not (tmp_path/'out').exists()
    (cells/'codes.txt').write_text('changed\nclasses\n'); before = contents(cells)
    with pytest.raises(DatasetError, match='codes.txt'): restore(snap, cells, force=True)
    assert contents(cells) == before and len(backups(cells)) == 1                 # nothing written, not even a backup

def test_restore_without_force_changes_nothing(cells):
    snap = backup(cells); change(cells); before = contents(cells)
    with pytest.raises(DatasetError, match='not empty.*nothing was changed.*--force'): restore(snap, cells)
    assert contents(cells) == before and len(backups(cells)) == 1

def test_restore_with_force_backs_up_first_and_is_undoable(cells):
    snap = backup(cells); change(cells); changed = contents(cells)
    res = restore(snap, cells, force=True)
    listed = backups(cells)
    assert len(listed) == 2 and listed.name.iloc[-1] == Path(res['backup_before']).name
    assert listed.note.iloc[-1] == f'before restoring {snap.name}'
    restore(res['backup_before'], cells, force=True)                               # undo the restore
    assert contents(cells) == changed and len(backups(cells)) == 3

def test_cli_end_to_end(cells, tmp_path):
    usb = tmp_path/'usb'
    r = run_cli_process('backup', cells, '--to', usb, '--note', 'round 1')
    assert r.returncode == 0, r.stderr
    snap = next((usb/'cells'/'snapshots').iterdir())
    assert str(snap) in r.stdout and json.loads((snap/'manifest.json').read_text())['note'] == 'round 1'
    r = run_cli('backups', cells, '--to', usb)
    assert r.returncode == 0 and snap.name in r.stdout and 'round 1' in r.stdout
    r = run_cli('verify', snap)
    assert r.returncode == 0 and 'OK: all' in r.stdout
    original = contents(cells); change(cells)
    r = run_cli('restore', snap, cells)
    assert r.returncode == 2 and 'not empty' in r.stderr and 'Traceback' not in r.stderr
    r = run_cli('restore', snap, cells, '--force')
    assert r.returncode == 0, r.stderr
    assert contents(cells) == original and 'backed up first' in r.stdout
    mask = sorted((cells/'masks').iterdir())[3].name
    tamper(usb/'cells', entry(snap, f'masks/{mask}')['sha256'])
    r = run_cli_process('verify', snap)
    assert r.returncode == 2 and f'masks/{mask}' in r.stderr and 'Traceback' not in r.stderr
    r = run_cli('restore', snap, tmp_path/'elsewhere')
    assert r.returncode == 2 and f'masks/{mask}' in r.stderr and not (tmp_path/'elsewhere').exists()
    r = run_cli('backups', tmp_path/'nothing-here')
    assert r.returncode == 0 and 'no snapshots' in r.stdout
