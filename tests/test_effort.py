"The correction effort model on hand-worked cases, its invariants on random masks, the folder table, and no PyTorch."
import subprocess, sys
from dataclasses import FrozenInstanceError, replace
import numpy as np, pytest
from conftest import ROOT
from segment_lib.data import DatasetError, save_mask
from segment_lib.effort import (EffortCosts, as_objects, correction_effort, effort_folders, effort_totals,
                                outline_length)

C = EffortCosts()
SQUARE = C.new_object_s + C.outline_px_s * 16            # drawing a 4x4 square: 2 + 0.075 * 16 = 3.2 s

def box(r0, c0, h, w, id=1, shape=(10, 14)):
    a = np.zeros(shape, np.int64); a[r0:r0 + h, c0:c0 + w] = id
    return a

A, B = box(2, 2, 4, 4, 1), box(2, 7, 4, 4, 2)            # two 4x4 squares, one empty column apart
TOUCHING = box(2, 2, 4, 4, 1) + box(2, 6, 4, 4, 2)       # two 4x4 squares sharing an edge

def counts(e): return (e.drawn, e.redrawn, e.deleted, e.split, e.merged, e.boundary_px_changed)

def test_defaults_and_their_calibration():
    assert (C.new_object_s, C.outline_px_s, C.delete_s, C.split_s, C.merge_s) == (2.0, 0.075, 1.5, 3.0, 2.0)
    # the median nucleus of data/nuclei (86 sides) takes the published 8.4 s per hand-drawn nucleus
    assert abs(C.new_object_s + C.outline_px_s * 86 - 15 * 3600 / 6409) < 0.1
    assert SQUARE == pytest.approx(3.2)

def test_outline_length_in_pixel_sides():
    assert outline_length(A).tolist() == [16]
    assert outline_length(TOUCHING).tolist() == [16, 16]
    assert outline_length(box(0, 0, 1, 1)).tolist() == [4]
    assert outline_length(box(0, 0, 10, 14)).tolist() == [48]            # the image border counts

def test_perfect_prediction_costs_nothing():
    e = correction_effort(A + B, A + B)
    assert counts(e) == (0, 0, 0, 0, 0, 0) and e.effort == 0 and e.saved == 1
    assert (e.scratch_objects, e.scratch_boundary_px, e.scratch_effort) == (2, 32, pytest.approx(2 * SQUARE))

def test_empty_prediction_is_drawing_from_scratch():
    e = correction_effort(A + B, np.zeros_like(A))
    assert counts(e) == (2, 0, 0, 0, 0, 0)
    assert e.effort == e.scratch_effort == pytest.approx(2 * SQUARE) and e.saved == 0

def test_missed_object_is_drawn():
    e = correction_effort(A + B, A)
    assert counts(e) == (1, 0, 0, 0, 0, 0) and e.effort == pytest.approx(SQUARE)

def test_false_object_is_deleted():
    e = correction_effort(A + B, A + B + box(7, 10, 2, 3, 3))
    assert counts(e) == (0, 0, 1, 0, 0, 0) and e.effort == pytest.approx(C.delete_s)

def test_merge_of_two_is_one_cut():
    e = correction_effort(TOUCHING, box(2, 2, 4, 8))
    assert counts(e) == (0, 0, 0, 1, 0, 0) and e.effort == pytest.approx(C.split_s)
    gap = correction_effort(A + B, box(2, 2, 4, 9))       # the merge also fills the empty column: its two sides move
    assert counts(gap) == (0, 0, 0, 1, 0, 8) and gap.area_px_changed == 4
    assert gap.effort == pytest.approx(C.split_s + 8 * C.outline_px_s)

def test_split_of_one_is_one_join():
    e = correction_effort(box(2, 2, 4, 8), TOUCHING)
    assert counts(e) == (0, 0, 0, 0, 1, 0) and e.effort == pytest.approx(C.merge_s)
    assert e.scratch_boundary_px == 24
    three = correction_effort(box(2, 1, 4, 12), box(2, 1, 4, 4, 1) + box(2, 5, 4, 4, 2) + box(2, 9, 4, 4, 3))
    assert (three.merged, three.split) == (2, 0)          # three pieces: two joins

def test_shifted_boundary_counts_the_sides_to_move():
    e = correction_effort(A, box(2, 3, 4, 4))             # one column right: IoU 12/20, kept
    # wrong: the true left side (4), the true right side (4), the left end of the top and of the bottom row (1 + 1)
    assert counts(e) == (0, 0, 0, 0, 0, 10) and e.area_px_changed == 8
    assert e.effort == pytest.approx(10 * C.outline_px_s)
    assert correction_effort(A, box(2, 3, 4, 4), tolerance=1).boundary_px_changed == 0
    assert correction_effort(A, box(2, 2, 4, 5)).boundary_px_changed == 4          # only the right side moved
    assert correction_effort(A, box(3, 2, 4, 4)).boundary_px_changed == 10         # the same, shifted down

def test_poor_overlap_is_redrawn():
    e = correction_effort(A, box(2, 4, 4, 4))             # IoU 8/24 < 0.5
    assert counts(e) == (0, 1, 0, 0, 0, 0) and e.effort == pytest.approx(C.delete_s + SQUARE) and e.saved < 0
    kept = correction_effort(A, box(2, 4, 4, 4), threshold=0.3)
    assert counts(kept) == (0, 0, 0, 0, 0, 12)

def test_costs_are_overridable():
    slow = replace(C, outline_px_s=0.2, split_s=10.0)
    assert correction_effort(TOUCHING, box(2, 2, 4, 8), slow).effort == 10.0
    assert correction_effort(A, np.zeros_like(A), slow).effort == pytest.approx(2 + 0.2 * 16)
    with pytest.raises(FrozenInstanceError, match="delete_s"): C.delete_s = 0              # frozen defaults

def test_class_masks_are_labelled_by_connected_components():
    assert np.unique(as_objects(TOUCHING > 0)).tolist() == [0, 1]                  # one component
    assert np.unique(as_objects(TOUCHING, 'semantic')).tolist() == [0, 1, 2]       # classes stay apart
    e = correction_effort(TOUCHING, (TOUCHING > 0).astype(np.uint8))
    assert (e.split, e.scratch_objects, e.effort) == (1, 2, C.split_s)
    e = correction_effort((A + B > 0).astype(np.uint8), (A + B > 0).astype(np.uint8) * 255)   # 0/1 vs 0/255
    assert e.effort == 0 and e.scratch_objects == 2

def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r'truth is \(10, 14\) but prediction is \(5, 14\)'): correction_effort(A, A[:5])
    with pytest.raises(ValueError, match='tolerance must be >= 0'): correction_effort(A, A, tolerance=-1)
    with pytest.raises(ValueError, match="unknown mask kind 'ids'"): correction_effort(A, A, truth_kind='ids')

@pytest.mark.parametrize('seed', range(6))
def test_invariants_on_random_masks(seed):
    "Perfect is free, empty is from scratch, a tolerance never adds work, every true object is accounted for once."
    rng = np.random.default_rng(seed)
    def blobs(n):
        a = np.zeros((48, 48), np.int64)
        for i in range(1, n + 1):
            r, c, h, w = rng.integers(0, 40), rng.integers(0, 40), rng.integers(2, 9), rng.integers(2, 9)
            a[r:r + h, c:c + w] = i
        return a
    truth, pred = blobs(8), blobs(9)
    assert correction_effort(truth, truth).effort == 0
    empty = correction_effort(truth, np.zeros_like(truth))
    assert empty.effort == pytest.approx(empty.scratch_effort)
    e, loose = correction_effort(truth, pred), correction_effort(truth, pred, tolerance=2)
    assert loose.boundary_px_changed <= e.boundary_px_changed and loose.effort <= e.effort
    assert e.drawn + e.redrawn <= e.scratch_objects and e.effort >= 0
    flipped = correction_effort(truth[:, ::-1], pred[:, ::-1])                    # a mirror changes nothing
    assert counts(flipped) == counts(e) and flipped.effort == pytest.approx(e.effort)

def test_folders_pair_by_stem(tmp_path):
    for i in range(3):
        save_mask((A + B).astype(np.uint16), tmp_path/'truth'/f'm{i}.png', instances=True)
    save_mask((A + B).astype(np.uint16), tmp_path/'pred'/'m0.png', instances=True)               # perfect
    save_mask(A.astype(np.uint16), tmp_path/'pred'/'m1.png', instances=True)                     # one missed
    save_mask(((A + B) > 0).astype(np.uint8), tmp_path/'pred'/'m2.png')                          # a 0/1 class mask
    table = effort_folders(tmp_path/'pred', tmp_path/'truth')
    assert table.index.tolist() == ['m0', 'm1', 'm2']
    assert table.drawn.tolist() == [0, 1, 0] and table.effort.tolist() == [0, pytest.approx(SQUARE), 0]
    total = effort_totals(table)
    assert (total['images'], total['scratch_objects']) == (3, 6)
    assert total['saved'] == pytest.approx(1 - SQUARE / (6 * SQUARE))

def test_folders_refuse_unpaired_and_mismatched(tmp_path):
    for i in range(2): save_mask(A.astype(np.uint16), tmp_path/'truth'/f'm{i}.png', instances=True)
    save_mask(A.astype(np.uint16), tmp_path/'pred'/'m0.png', instances=True)
    with pytest.raises(DatasetError, match='1 true mask without a prediction: m1'): effort_folders(tmp_path/'pred', tmp_path/'truth')
    assert len(effort_folders(tmp_path/'pred', tmp_path/'truth', partial=True)) == 1
    save_mask(np.zeros((8, 8), np.uint8), tmp_path/'pred'/'m1.png')
    with pytest.raises(DatasetError, match='m1.png: the predicted mask is 8x8'): effort_folders(tmp_path/'pred', tmp_path/'truth')

def test_cells_class_masks_need_only_cuts():
    "data/cells: class masks right at every pixel; their 136 components hold the 402 cells: 266 cuts, nothing else."
    cells = ROOT/'data'/'cells'
    table = effort_folders(cells/'masks', cells/'instances')
    total = effort_totals(table)
    assert (total['images'], total['scratch_objects'], total['split']) == (40, 402, 266)
    assert total[['drawn', 'redrawn', 'deleted', 'merged', 'boundary_px_changed']].sum() == 0
    assert total['effort'] == pytest.approx(266 * C.split_s)

def test_effort_imports_no_torch():
    probe = "import segment_lib.effort, sys; print(sorted(m for m in ('torch', 'fastai') if m in sys.modules))"
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == '[]'
