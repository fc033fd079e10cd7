"""Correcting a round in napari: the install message without napari, the file logic without Qt (in place, atomic, in the
masks' own encoding, only inside the round), and, where napari is installed, napari itself driven headless."""
import json, os, subprocess, sys, uuid
from pathlib import Path
import numpy as np, pytest
from conftest import ROOT
from segment_lib.data import (Codes, DatasetError, UserError, class_palette, copy_image, dataset_codes, is_palette,
                              read_mask, read_mask_array, save_image, save_mask, write_codes)
from segment_lib.snapshots import file_sha256
from segment_lib.correct import (NAPARI_INSTALL, RoundEdits, correct_round, import_napari, open_round, read_labels,
                                 round_images, write_labels)

CELLS = ROOT/'data'/'cells'

def make_round(tmp_path, n=3, name='round'):
    "A round folder as `make_round` lays it out (palette masks, codes.txt, round.json), beside a DATA folder it names."
    out, data = tmp_path/name, tmp_path/'DATA'
    codes = dataset_codes(CELLS)
    entries = []
    for f in sorted((CELLS/'images').iterdir())[:n]:
        copy_image(f, out/'images'/f.name)
        mask = read_mask(CELLS/'masks'/f.name, codes)
        mask[read_mask_array(CELLS/'instances'/f.name) == 1] = 0                   # the model missed cell 1
        saved = save_mask(mask, out/'masks'/f.name, palette=class_palette(codes))
        entries.append(dict(image=f.stem, file=f.name, start_mask_sha256=file_sha256(saved)))
    write_codes(codes, out/'codes.txt')
    save_image(np.zeros((8, 8), np.uint8), out/'confidence'/'cells_000.png')
    (out/'round.json').write_text(json.dumps(dict(format=1, id=uuid.uuid4().hex, data=str(data), images=entries)))
    data.mkdir(exist_ok=True)
    return out

def truth(stem): return read_mask(CELLS/'masks'/f'{stem}.png', dataset_codes(CELLS))

def tree(folder):
    "relative path -> bytes of every file under `folder`."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob('*')) if p.is_file()}

# --- (a) without napari ---------------------------------------------------------------------------------------------

def test_without_napari_every_entry_point_says_how_to_install(tmp_path, monkeypatch):
    r = make_round(tmp_path)
    monkeypatch.setitem(sys.modules, 'napari', None)                    # `import napari` fails, as without the extra
    for call in (import_napari, lambda: correct_round(r), lambda: open_round(r)):
        with pytest.raises(UserError) as e: call()
        msg = str(e.value)
        assert 'pip install "segment-lib[napari]"' in msg and 'segment-lib accept' in msg
    assert NAPARI_INSTALL == 'pip install "segment-lib[napari]"'

def test_the_extra_is_declared():
    text = (ROOT/'pyproject.toml').read_text()
    assert 'napari = ["napari[pyqt5]>=0.5"]' in text

def test_correct_imports_neither_torch_nor_napari():
    probe = ("import segment_lib.correct, sys; "
             "print(sorted(m for m in ('torch', 'fastai', 'napari', 'qtpy', 'magicgui') if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == '[]'

# --- (b) the file logic, without Qt ---------------------------------------------------------------------------------

def test_round_images_in_round_order_and_bad_rounds(tmp_path):
    r = make_round(tmp_path)
    rec = json.loads((r/'round.json').read_text()); rec['images'] = rec['images'][::-1]
    (r/'round.json').write_text(json.dumps(rec))
    assert [i.stem for i in round_images(r)] == ['cells_002', 'cells_001', 'cells_000']
    with pytest.raises(DatasetError, match='not a round folder'): round_images(CELLS)
    (r/'masks'/'cells_001.png').unlink()
    with pytest.raises(DatasetError, match=r'no mask for 1 image\(s\) of the round \(cells_001\)'): round_images(r)

def test_masks_folder_linked_outside_is_refused(tmp_path):
    r = make_round(tmp_path)
    outside = tmp_path/'elsewhere'
    (r/'masks').rename(outside); (r/'masks').symlink_to(outside)
    with pytest.raises(DatasetError, match='a link to a folder outside the round'): RoundEdits(r)

def test_session_saves_changed_masks_in_place_and_nothing_else(tmp_path):
    r = make_round(tmp_path)
    (tmp_path/'DATA'/'keep.txt').write_text('DATA is never touched')
    before = tree(tmp_path)
    edits = RoundEdits(r)
    edits.edit('cells_000')[...] = truth('cells_000')                   # the person draws the missed cell back
    edits.edit('cells_001')                                             # looks at this one, changes nothing
    assert edits.save() == ['cells_000'] and edits.save() == []
    after = tree(tmp_path)
    assert {k for k in set(before) | set(after) if before.get(k) != after.get(k)} == {'round/masks/cells_000.png'}
    assert (read_mask(r/'masks'/'cells_000.png', edits.codes) == truth('cells_000')).all()
    assert is_palette(r/'masks'/'cells_000.png')                        # the encoding the round uses
    from PIL import Image
    with Image.open(r/'masks'/'cells_000.png') as im: assert im.getpalette()[:6] == [0, 0, 0, 255, 255, 255]

def test_saved_round_is_ready_for_accept(tmp_path):
    from segment_lib.hitl import accept
    r = make_round(tmp_path)
    edits = RoundEdits(r)
    for stem in ('cells_000', 'cells_002'): edits.edit(stem)[...] = truth(stem)
    edits.save()
    res = accept(r, tmp_path/'DATA', who='test')
    assert (res['added'], res['edited']) == (3, 2)
    line = json.loads((tmp_path/'DATA'/'history.jsonl').read_text().splitlines()[-1])
    assert {i['image']: i['edited'] for i in line['images']} == {'cells_000': True, 'cells_001': False, 'cells_002': True}
    assert (read_mask(tmp_path/'DATA'/'masks'/'cells_002.png') == truth('cells_002')).all()

def test_labels_outside_the_classes_are_refused_the_rest_saved(tmp_path):
    r = make_round(tmp_path)
    edits = RoundEdits(r)
    old = (r/'masks'/'cells_001.png').read_bytes()
    edits.edit('cells_000')[...] = truth('cells_000')
    edits.edit('cells_001')[:3, :3] = 2                                 # napari's "new label" in a two-class round
    with pytest.raises(UserError, match=r"(?s)1 mask\(s\) not saved \(1 other\(s\) saved\).*cells_001.png: label 2 painted, "
                                        r"but the round's classes are 0 background, 1 object"):
        edits.save()
    assert edits.saved == {'cells_000'} and (r/'masks'/'cells_001.png').read_bytes() == old
    with pytest.raises(UserError, match='the edited labels are 4x4 but the mask is 128x128'):
        write_labels(np.zeros((4, 4), np.uint8), r/'masks'/'cells_001.png', edits.codes)

@pytest.mark.parametrize('name,encoding', [('a.png', '0/255'), ('b.tif', 'index'), ('c.png', 'index'), ('d.png', 'rgb'),
                                           ('e.png', 'palette')])
def test_every_encoding_is_kept(tmp_path, name, encoding):
    codes = Codes(['background', 'object'], [(0, 0, 0), (0, 200, 0)]) if encoding == 'rgb' else Codes(['background', 'object'])
    m = truth('cells_000')
    path = tmp_path/name
    if encoding == '0/255': save_mask(m * 255, path)
    elif name == 'b.tif': save_mask(m.astype(np.uint16), path)
    elif encoding == 'index': save_mask(m, path)
    elif encoding == 'rgb': save_image(np.asarray(codes.colors, np.uint8)[m], path)
    else: save_mask(m, path, palette=[(0, 0, 0), (10, 20, 30)])
    dtype = read_mask_array(path).dtype
    assert read_labels(path, codes)[1] == encoding
    edited = m.copy(); edited[:5, :5] = 1
    assert write_labels(edited, path, codes) is True
    labels, enc = read_labels(path, codes)
    assert enc == encoding and (labels == edited).all() and read_mask_array(path).dtype == dtype
    if encoding == 'palette':
        from PIL import Image
        with Image.open(path) as im: assert im.getpalette()[:6] == [0, 0, 0, 10, 20, 30]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]         # no temporary file left

def test_a_crash_while_writing_leaves_the_old_mask(tmp_path, monkeypatch):
    r = make_round(tmp_path)
    mask = r/'masks'/'cells_000.png'
    old = mask.read_bytes()
    from PIL import Image
    def crash(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b'half a PNG'); raise OSError('disk full')
    monkeypatch.setattr(Image.Image, 'save', crash)
    with pytest.raises(OSError, match='disk full'): write_labels(truth('cells_000'), mask, dataset_codes(r))
    assert mask.read_bytes() == old and sorted(p.name for p in (r/'masks').iterdir()) == ['cells_000.png', 'cells_001.png', 'cells_002.png']

def test_a_mask_linked_elsewhere_is_replaced_not_its_target(tmp_path):
    r = make_round(tmp_path)
    target = tmp_path/'outside.png'
    (r/'masks'/'cells_000.png').rename(target); (r/'masks'/'cells_000.png').symlink_to(target)
    old = target.read_bytes()
    edits = RoundEdits(r)
    edits.edit('cells_000')[...] = truth('cells_000')
    edits.save()
    assert target.read_bytes() == old and not (r/'masks'/'cells_000.png').is_symlink()

# --- (c) napari itself, headless --------------------------------------------------------------------------------------
# Qt's offscreen platform gives napari no OpenGL context, so its window (a vispy canvas) cannot be drawn without a
# display. These tests drive napari's own viewer model (`napari.components.ViewerModel`: the layers, the Labels
# layer's painting, the key bindings) and the real Qt widgets of the dock (magicgui, offscreen).

def _napari():
    os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')
    return pytest.importorskip('napari', reason='napari is an optional extra (pip install "segment-lib[napari]"); '
                                                'CI installs only the dev extra')

def press(viewer, key):
    "Run what napari runs when `key` (napari's name, e.g. 'Shift-S') is pressed in the viewer."
    for k, func in viewer.keymap.items():
        if str(k) == key.replace('-', '+'): return func(viewer)
    raise KeyError(f'{key} is not bound')

def test_napari_headless_edit_save_and_close(tmp_path, monkeypatch):
    napari = _napari()
    from napari.components import ViewerModel
    r = make_round(tmp_path)
    view = open_round(r, viewer=ViewerModel())
    assert view.stem == 'cells_000' and [l.name for l in view.viewer.layers] == ['image', 'mask']
    layer = view.labels_layer
    assert type(layer).__name__ == 'Labels' and (layer.data == read_mask(r/'masks'/'cells_000.png')).all()
    missing = (read_mask_array(CELLS/'instances'/'cells_000.png') == 1)
    y, x = np.argwhere(missing)[len(np.argwhere(missing)) // 2]
    layer.fill((y, x), 1)                                               # napari's fill bucket: the missed cell back
    assert layer.data[y, x] == 1
    press(view.viewer, 'Shift-S')                                       # save
    on_disk = read_mask(r/'masks'/'cells_000.png')
    assert on_disk[y, x] == 1 and (on_disk == layer.data).all() and is_palette(r/'masks'/'cells_000.png')
    assert view.status.value == 'saved 1 mask'

    press(view.viewer, 'PageDown')                                      # next image; edits kept per image
    assert view.stem == 'cells_001' and view.choice.value == 'cells_001'
    view.labels_layer.paint((5, 5), 1)                                  # napari's brush
    painted = view.labels_layer.data.copy()
    press(view.viewer, 'PageUp'); press(view.viewer, 'PageDown')
    assert (view.labels_layer.data == painted).all()
    view.save_button.native.click()                                     # the dock's Qt button
    assert (read_mask(r/'masks'/'cells_001.png') == painted).all()

    view.choice.value = 'cells_002'                                     # the dock's list
    view.labels_layer.paint((5, 5), 7)                                  # a label that is no class of the round
    old = (r/'masks'/'cells_002.png').read_bytes()
    assert view.save() == [] and view.status.value == 'not saved: see the message'
    assert (r/'masks'/'cells_002.png').read_bytes() == old

def test_napari_correct_round_saves_on_close(tmp_path, monkeypatch):
    "The command's path: the window opens, the person paints and closes it (`napari.run` returns), the masks are saved."
    napari = _napari()
    from napari.components import ViewerModel
    r = make_round(tmp_path)
    opened = []
    class Window(ViewerModel):                                          # the window, without its OpenGL canvas
        def __init__(self, title='napari'): super().__init__(title=title); opened.append(self)
    def person():                                                       # the event loop: paint, then close the window
        layer = opened[0].layers['mask']
        layer.data[...] = truth('cells_001')
    monkeypatch.setattr(napari, 'Viewer', Window)
    monkeypatch.setattr(napari, 'run', person)
    monkeypatch.setenv('QT_QPA_PLATFORM', 'offscreen')
    res = correct_round(r, start='cells_001')
    assert res['saved'] == ['cells_001'] and res['images'] == 3
    assert (read_mask(r/'masks'/'cells_001.png') == truth('cells_001')).all()
    assert opened[0].title.endswith('cells_001 (2/3)')
    with pytest.raises(UserError, match="'nope' is not an image of this round"): correct_round(r, start='nope')
    for k in ('DISPLAY', 'WAYLAND_DISPLAY', 'QT_QPA_PLATFORM'): monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(sys, 'platform', 'linux')                       # a Linux machine without a display
    with pytest.raises(UserError, match='no display to open napari on'): correct_round(r)
    assert len(opened) == 2                                             # no window was opened for it

def test_napari_headless_instance_round_new_object(tmp_path):
    "A round of objects (a three-class model's): the Labels layer holds ids; napari's new label draws a new object."
    napari = _napari()
    from napari.components import ViewerModel
    out = tmp_path/'round'
    f = sorted((CELLS/'images').iterdir())[0]
    copy_image(f, out/'images'/f.name)
    ids = read_mask_array(CELLS/'instances'/f.name).astype(np.int32)
    start = ids.copy(); start[ids == 1] = 0                             # the model missed cell 1
    save_mask(start, out/'masks'/f.name, instances=True)
    (out/'round.json').write_text(json.dumps(dict(format=1, id=uuid.uuid4().hex, masks='instances', images=[dict(image=f.stem)])))
    view = open_round(out, viewer=ViewerModel())
    layer = view.labels_layer
    assert (layer.data == start).all() and layer.data.max() == start.max()          # ids, not classes
    new = int(layer.data.max()) + 1
    layer.brush_size = 1
    for y, x in np.argwhere(ids == 1): layer.paint((y, x), new)        # napari's brush: the missed cell, a new object
    press(view.viewer, 'Shift-S')
    back = read_mask_array(out/'masks'/f.name)
    assert back.dtype == np.uint16 and (back == new).sum() == (ids == 1).sum()
    assert len(np.unique(back)) == len(np.unique(ids))                # every object, each its own id
