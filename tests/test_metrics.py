"Pixel and object scores (segment_lib.metrics): hand-worked cases, an independent brute-force matcher, and `segment-lib score`."
import json, subprocess, sys
import numpy as np, pytest
from segment_lib.data import DatasetError, save_mask
from segment_lib.metrics import (IOU_THRESHOLDS, confusion_matrix, mask_kind, match_objects, object_overlaps, object_scores,
                                 object_summary, pixel_scores, pixel_summary, score_folders, score_table, split_merge)
from conftest import ROOT, run_cli

def strips(width, *ranges):
    "A 3-row instance mask: object i covers the columns ranges[i-1] = (start, stop)."
    m = np.zeros((3, width), np.int32)
    for i, (a, b) in enumerate(ranges, 1): m[:, a:b] = i
    return m

def counts(truth, pred, threshold=0.5):
    m = match_objects(object_overlaps(truth, pred), threshold)
    return m.tp, m.fp, m.fn

ONE, TWO = strips(40, (0, 20)), strips(40, (0, 20), (20, 40))
NOTHING = np.zeros((3, 40), np.int32)

# ---------------------------------------------------------------- the matcher, by hand
def test_perfect_match_any_ids():
    assert counts(TWO, TWO * 7 + 1000) == (2, 0, 0)
    m = match_objects(object_overlaps(TWO, TWO))
    assert m.precision == m.recall == m.f1 == m.ap == m.mean_iou == 1.0

def test_split_into_two_predictions():
    halves = strips(40, (0, 10), (10, 20))                       # IoU 0.5 each: exactly at the threshold
    assert counts(ONE, halves) == (1, 1, 0)
    assert counts(ONE, halves, 0.51) == (0, 2, 1)
    sm = split_merge(object_overlaps(ONE, halves))
    assert (sm['splits'], sm['merges'], sm['split_ids']) == (1, 0, [1])
    assert split_merge(object_overlaps(ONE, strips(40, (0, 18), (18, 20))))['splits'] == 1   # 90/10 cut: still a split

def test_two_true_objects_merged():
    merged = strips(40, (0, 40))                                 # IoU 20/40 = 0.5 with each
    assert counts(TWO, merged) == (1, 0, 1)                      # one-to-one: one of them, never both
    assert counts(TWO, merged, 0.55) == (0, 1, 2)
    sm = split_merge(object_overlaps(TWO, merged))
    assert (sm['splits'], sm['merges'], sm['merge_ids']) == (0, 1, [1])
    assert split_merge(object_overlaps(TWO, strips(40, (15, 25))))['merges'] == 0   # a bridge over 25% of each: no merge

def test_optimal_beats_greedy():
    "Prediction A: IoU 0.4 with true 1 and 0.3125 with true 2; B: 0.35 with true 1 only. Greedy gets 1 TP, optimal 2."
    pred = strips(40, (8, 30), (0, 7))
    ov = object_overlaps(TWO, pred)
    np.testing.assert_allclose(ov.matrix(), [[12 / 30, 7 / 20], [10 / 32, 0]])
    used_t, used_p, greedy = set(), set(), 0
    for k in np.argsort(-ov.iou):
        (i, j), v = ov.pairs[k], ov.iou[k]
        if v >= 0.3 and i not in used_t and j not in used_p: used_t.add(i); used_p.add(j); greedy += 1
    assert greedy == 1
    m = match_objects(ov, 0.3)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert ov.true_ids[m.true_index].tolist() == [1, 2] and ov.pred_ids[m.pred_index].tolist() == [2, 1]

def test_ties_broken_by_total_iou():
    "One true object with two candidates at 0.3: the matching keeps the one with the larger IoU."
    truth = strips(40, (0, 20))
    pred = strips(40, (0, 14), (14, 20))                         # IoU 0.7 and 0.3 with the one true object
    m = match_objects(object_overlaps(truth, pred), 0.3)
    assert m.tp == 1 and m.iou.tolist() == [0.7]                 # the better of two candidates

@pytest.mark.parametrize('threshold', IOU_THRESHOLDS)
def test_iou_exactly_at_each_threshold_matches(threshold):
    "IoU = k/100 built exactly; >= means a pair at the threshold matches, and just above it does not."
    k = round(threshold * 100)
    truth = np.zeros((1, 100), np.int32); truth[0, :100] = 1
    pred = np.zeros((1, 100), np.int32); pred[0, :k] = 1         # IoU k/100
    assert counts(truth, pred, threshold) == (1, 0, 0)
    assert counts(truth, pred, threshold + 0.001) == (0, 1, 1)

def test_empty_truth_and_prediction_policy():
    def s(m): return (m.tp, m.fp, m.fn, m.precision, m.recall, m.f1, m.ap, m.mean_iou)
    assert s(match_objects(object_overlaps(NOTHING, NOTHING))) == (0, 0, 0, None, None, None, None, None)
    assert s(match_objects(object_overlaps(NOTHING, TWO))) == (0, 2, 0, 0.0, None, 0.0, 0.0, None)
    assert s(match_objects(object_overlaps(TWO, NOTHING))) == (0, 0, 2, None, 0.0, 0.0, 0.0, None)
    blank = object_scores(NOTHING, NOTHING)
    assert blank['mean_ap'] is None and all(v is None for v in blank['ap'].values())
    summary = object_summary([blank, object_scores(TWO, TWO), object_scores(NOTHING, TWO)])
    assert summary['image_mean']['images'] == dict(precision=2, recall=1, f1=2, mean_matched_iou=1, mean_ap=2, ap=2)
    assert summary['image_mean']['f1'] == pytest.approx(0.5)     # (1 + 0) / 2: the empty image is left out, not a 1
    assert summary['f1'] == pytest.approx(4 / 6)                 # pooled: TP 2, FP 2, FN 0

def test_object_scores_by_hand():
    r = object_scores(TWO, strips(40, (0, 20), (20, 36), (37, 40)))
    assert (r['tp'], r['fp'], r['fn'], r['count_error'], r['splits'], r['merges']) == (2, 1, 0, 1, 1, 0)
    assert r['f1'] == pytest.approx(0.8) and r['mean_matched_iou'] == pytest.approx(0.9)
    assert r['ap']['0.80'] == pytest.approx(2 / 3) and r['ap']['0.85'] == pytest.approx(1 / 4)
    assert r['mean_ap'] == pytest.approx((7 * 2 / 3 + 3 / 4) / 10)

# ---------------------------------------------------------------- against an independent matcher
def brute_force(truth, pred, threshold):
    "TP, FP, FN from the IoU of every pair of boolean masks and a maximum bipartite matching by augmenting paths."
    t_ids, p_ids = [i for i in np.unique(truth) if i], [j for j in np.unique(pred) if j]
    ok = {(a, b) for a, i in enumerate(t_ids) for b, j in enumerate(p_ids)
          if ((truth == i) & (pred == j)).sum() >= threshold * ((truth == i) | (pred == j)).sum() > 0}
    owner = {}
    def augment(a, seen):
        for b in range(len(p_ids)):
            if (a, b) in ok and b not in seen:
                seen.add(b)
                if b not in owner or augment(owner[b], seen): owner[b] = a; return True
        return False
    tp = sum(augment(a, set()) for a in range(len(t_ids)))
    return tp, len(p_ids) - tp, len(t_ids) - tp

def random_instances(rng, n, size=24, step=1):
    m = np.zeros((size, size), np.int64)
    for k in range(1, n + 1):
        r, c = rng.integers(0, size - 2, 2); h, w = rng.integers(2, 9, 2)
        m[r:r + h, c:c + w] = k * step
    return m

@pytest.mark.parametrize('seed', range(20))
def test_matcher_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    truth, pred = random_instances(rng, int(rng.integers(0, 9))), random_instances(rng, int(rng.integers(0, 10)), step=5)
    ov = object_overlaps(truth, pred)
    for i, j in ov.pairs:                                       # the histogram's IoU is the masks' IoU
        a, b = truth == ov.true_ids[i], pred == ov.pred_ids[j]
        assert ov.iou[(ov.pairs == (i, j)).all(1)][0] == pytest.approx((a & b).sum() / (a | b).sum())
    for th in (0.1, 0.25, 0.3, 0.5, 0.6, 0.9):
        assert counts(truth, pred, th) == brute_force(truth, pred, th), (seed, th)

def best_by_permutations(truth, pred, threshold):
    "(TP, total IoU) of the best one-to-one matching, by trying every assignment: most pairs, then the largest IoU sum."
    import itertools
    t_ids, p_ids = [i for i in np.unique(truth) if i], [j for j in np.unique(pred) if j]
    iou = np.array([[((truth == i) & (pred == j)).sum() / ((truth == i) | (pred == j)).sum() for j in p_ids] for i in t_ids]).reshape(len(t_ids), len(p_ids))
    best = (0, 0.0)
    slots = list(range(len(p_ids))) + [None] * len(t_ids)          # each true object: one predicted object, or none
    for choice in itertools.permutations(slots, len(t_ids)):
        pairs = [(a, b) for a, b in enumerate(choice) if b is not None and iou[a, b] >= threshold]
        best = max(best, (len(pairs), sum(iou[a, b] for a, b in pairs)), key=lambda x: (x[0], round(x[1], 9)))
    return best


@pytest.mark.parametrize('seed', range(12))
def test_matcher_is_optimal_by_permutations_on_tiny_cases(seed):
    "Up to 4 true and 4 predicted objects: the matching has the most pairs, and among those the largest total IoU."
    rng = np.random.default_rng(100 + seed)
    truth = random_instances(rng, int(rng.integers(1, 5)), size=14)
    pred = random_instances(rng, int(rng.integers(1, 5)), size=14, step=3)
    ov = object_overlaps(truth, pred)
    for th in (0.05, 0.2, 0.4, 0.5):
        m = match_objects(ov, th)
        tp, total = best_by_permutations(truth, pred, th)
        assert m.tp == tp, (seed, th)
        assert float(m.iou.sum()) == pytest.approx(total), (seed, th)


def greedy(ov, threshold):
    "Greedy matching after sorting the pairs by IoU, best first, each object used once: a set of (true, pred) pairs."
    used_t, used_p, pairs = set(), set(), set()
    for k in np.argsort(-ov.iou, kind='stable'):
        (i, j), v = ov.pairs[k], ov.iou[k]
        if v >= threshold and i not in used_t and j not in used_p: used_t.add(i); used_p.add(j); pairs.add((int(i), int(j)))
    return pairs


@pytest.mark.parametrize('seed', range(20))
def test_greedy_and_linear_sum_assignment_agree_above_one_half(seed):
    "Above IoU 0.5 an object has at most one partner, so greedy, SciPy's assignment and match_objects must give the same pairs."
    from scipy.optimize import linear_sum_assignment
    rng = np.random.default_rng(200 + seed)
    truth = random_instances(rng, int(rng.integers(1, 10)))
    pred = truth.copy()
    for k in rng.choice(np.unique(truth)[1:], size=min(3, int(truth.max())), replace=False):   # nudge a few objects
        pred[np.roll(truth == k, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))] = k
    pred = np.where(pred > 0, pred * 11 + 3, 0)
    ov = object_overlaps(truth, pred)
    for th in (0.51, 0.6, 0.75, 0.9):
        dense = ov.matrix()
        rows, cols = linear_sum_assignment(-np.where(dense >= th, dense, 0))
        lsa = {(int(r), int(c)) for r, c in zip(rows, cols) if dense[r, c] >= th}
        m = match_objects(ov, th)
        ours = {(int(t), int(p)) for t, p in zip(m.true_index, m.pred_index)}
        assert ours == lsa == greedy(ov, th), (seed, th)


def test_iou_at_the_threshold_in_both_directions():
    "A prediction twice the true object (IoU 0.5) and half of it (IoU 0.5) both match at 0.5, and neither at 0.5 + 1e-9."
    truth = strips(40, (0, 10))
    for pred in (strips(40, (0, 20)), strips(40, (0, 5))):
        assert counts(truth, pred, 0.5) == (1, 0, 0)
        assert counts(truth, pred, 0.5 + 1e-9) == (0, 1, 1)
        r = object_scores(truth, pred)
        assert r['tp_at']['0.50'] == 1 and r['tp_at']['0.55'] == 0


def test_empty_image_policy_in_folder_scores(tmp_path):
    "An image with no true and no predicted object is left out of the image means, never counted as a perfect 1 or a 0."
    empty, box = np.zeros((20, 20), np.uint16), np.zeros((20, 20), np.uint16)
    box[2:10, 2:10] = 1
    for name, t, p in (('blank', empty, empty), ('hit', box, box), ('missed', box, empty), ('invented', empty, box)):
        save_mask(t, tmp_path/'truth'/f'{name}.png', instances=True)
        save_mask(p, tmp_path/'pred'/f'{name}.png', instances=True)
    res = score_folders(tmp_path/'pred', tmp_path/'truth', progress=False)
    ob, per = res['objects'], {r['name']: r['objects'] for r in res['per_image']}
    assert per['blank']['f1'] is None and per['missed']['f1'] == 0 and per['invented']['f1'] == 0 and per['hit']['f1'] == 1
    assert per['missed']['precision'] is None and per['invented']['recall'] is None
    assert ob['image_mean']['images']['f1'] == 3 and ob['image_mean']['f1'] == pytest.approx(1 / 3, abs=1e-4)   # rounded to 4 digits in JSON
    assert (ob['tp'], ob['fp'], ob['fn']) == (1, 1, 1) and ob['f1'] == pytest.approx(0.5)


def test_score_folders_default_min_size_drops_predicted_specks(tmp_path):
    from segment_lib.instances import DEFAULT_MIN_SIZE
    truth = np.zeros((30, 30), np.uint16); truth[2:12, 2:12] = 1
    pred = (truth > 0).astype(np.uint8); pred[20:23, 20:23] = 1; pred[25:29, 25:29] = 1     # a 9-px and a 16-px speck
    save_mask(truth, tmp_path/'truth'/'a.png', instances=True); save_mask(pred, tmp_path/'pred'/'a.png')
    res = score_folders(tmp_path/'pred', tmp_path/'truth', progress=False)
    assert DEFAULT_MIN_SIZE == 16 and res['settings']['min_size'] == 16
    assert (res['objects']['pred'], res['objects']['fp']) == (2, 1)                      # the 9-px speck is not an object
    assert score_folders(tmp_path/'pred', tmp_path/'truth', min_size=0, progress=False)['objects']['pred'] == 3


def test_score_folders_prefers_instances_of_a_prediction_folder(tmp_path):
    "A three-class model's OUT holds masks/ (classes 0/1/2) and instances/ (ids): the objects are scored from instances/."
    from segment_lib.data import write_codes
    truth = np.zeros((30, 30), np.uint16); truth[2:12, 2:12] = 1; truth[2:12, 12:22] = 2
    save_mask(truth, tmp_path/'truth'/'a.png', instances=True)
    out = tmp_path/'out'
    save_mask(np.where(truth > 0, 1, 0).astype(np.uint8), out/'masks'/'a.png')
    write_codes(['background', 'interior', 'boundary'], out/'codes.txt')
    save_mask(truth, out/'instances'/'a.png', instances=True)
    res = score_folders(out, tmp_path/'truth', progress=False)
    assert res['pred'].endswith('instances') and res['objects']['tp'] == 2


def test_many_objects_and_huge_ids_use_the_sparse_path():
    truth = np.arange(1, 1601, dtype=np.int64).reshape(40, 40)                   # 1600 one-pixel objects
    pred = np.roll(truth, 1, axis=1) * 100_000                                   # ids beyond 2**24, shifted by a column
    pred[:, 0] = 0
    ov = object_overlaps(truth, pred)
    assert len(ov.true_ids) == 1600 and len(ov.pred_ids) == 1560 and (ov.iou == 1).all()
    assert counts(truth, pred) == (1560, 0, 40)
    assert counts(truth.astype(np.float32), pred) == (1560, 0, 40)             # float label images with whole values
    with pytest.raises(ValueError, match='whole numbers'): object_overlaps(truth + 0.5, pred)

# ---------------------------------------------------------------- pixel scores
TRUTH = np.array([[0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
PRED = np.array([[0, 1, 1, 1], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])

def test_pixel_scores_by_hand():
    cm = confusion_matrix(PRED, TRUTH, 2)
    assert cm.tolist() == [[9, 1], [2, 4]]
    s = pixel_scores(cm)
    o = s['per_class']['object']
    assert (o['dice'], o['iou'], o['precision'], o['recall']) == pytest.approx((8 / 11, 4 / 7, 4 / 5, 4 / 6))
    assert s['pixel_accuracy'] == pytest.approx(13 / 16) and s['micro'] == s['macro']

def test_micro_macro_and_per_image_differ_as_defined():
    "3 classes. Image 1: class 1 right on 4 of 4 pixels, class 2 predicted on 1 of its 4 pixels. Image 2: only background."
    t1 = np.array([[1, 1, 2, 2], [1, 1, 2, 2]]); p1 = np.array([[1, 1, 2, 0], [1, 1, 0, 0]])
    t2 = np.zeros((2, 4), int); p2 = t2.copy()
    cms = [confusion_matrix(p1, t1, 3), confusion_matrix(p2, t2, 3)]
    s = pixel_summary(cms, ['background', 'cell', 'debris'])
    assert s['per_class']['cell']['dice'] == 1.0 and s['per_class']['debris']['dice'] == pytest.approx(2 / 5)
    assert s['micro']['dice'] == pytest.approx(2 * 5 / (2 * 5 + 0 + 3))     # pooled over cell + debris: TP 5, FP 0, FN 3
    assert s['macro']['dice'] == pytest.approx((1 + 2 / 5) / 2)
    assert s['image_mean']['dice'] == pytest.approx((1 + 2 / 5) / 2)        # image 2 defines no foreground class: left out
    assert s['image_mean']['images']['dice'] == 1 and s['image_mean']['images']['pixel_accuracy'] == 2
    assert s['image_mean']['pixel_accuracy'] == pytest.approx((5 / 8 + 1) / 2)
    assert s['per_class']['debris']['precision'] == 1.0 and s['per_class']['debris']['recall'] == pytest.approx(1 / 4)

def test_empty_class_policy_pixels():
    empty, specks = np.zeros((4, 4), int), np.zeros((4, 4), int)
    specks[0, 0] = 1
    both_empty = pixel_scores(confusion_matrix(empty, empty, 2))['per_class']['object']
    assert [both_empty[k] for k in ('dice', 'iou', 'precision', 'recall')] == [None] * 4
    fp_only = pixel_scores(confusion_matrix(specks, empty, 2))['per_class']['object']
    assert (fp_only['dice'], fp_only['iou'], fp_only['precision'], fp_only['recall']) == (0.0, 0.0, 0.0, None)
    fn_only = pixel_scores(confusion_matrix(empty, specks, 2))['per_class']['object']
    assert (fn_only['dice'], fn_only['precision'], fn_only['recall']) == (0.0, None, 0.0)

def test_mask_kind_rule():
    ids = np.zeros((8, 8), np.uint16); ids[:2, :2] = 1; ids[5:, 5:] = 2
    assert mask_kind(ids) == 'instances'
    assert mask_kind((ids > 0).astype(np.uint8) * 255) == 'semantic'
    assert mask_kind((ids > 0).astype(np.uint16) * 65535) == 'semantic'
    assert mask_kind(np.array([[0, 1, 2, 3]], np.uint8)) == 'instances'
    from segment_lib.data import Codes
    assert mask_kind(np.array([[0, 1, 2]], np.uint8), Codes(['a', 'b', 'c'])) == 'semantic'

# ---------------------------------------------------------------- folders and the command
def write_set(tmp_path):
    "Predictions as 8-bit 0/255 semantic PNGs (touching squares merge), truth as 16-bit instance PNGs."
    a = np.zeros((32, 32), np.uint16); a[4:12, 4:12] = 1; a[4:12, 12:20] = 2; a[20:28, 20:28] = 3
    b = np.zeros((32, 32), np.uint16); b[8:16, 8:16] = 700; b[20:24, 2:6] = 900
    for name, ids in (('a', a), ('b', b)):
        save_mask(ids, tmp_path/'truth'/f'{name}.png', instances=True)
        save_mask(((ids > 0) * 255).astype(np.uint8), tmp_path/'pred'/f'{name}.png')
    return tmp_path/'pred', tmp_path/'truth'

def test_score_command_end_to_end(tmp_path):
    pred, truth = write_set(tmp_path)
    r = run_cli('score', pred, truth, '--out', tmp_path/'scores.json')
    assert r.returncode == 0, r.stderr
    assert '2 images: 5 true objects, 4 predicted, 4 matched, 0 split, 1 merged' in r.stdout
    assert 'object F1 @0.50' in r.stdout and 'mean AP @0.50:0.95' in r.stdout
    res = json.loads((tmp_path/'scores.json').read_text())
    json.dumps(res, allow_nan=False)                                          # no NaN anywhere
    assert res['masks'] == dict(pred=dict(semantic=2, instances=0), truth=dict(semantic=0, instances=2))
    assert res['pixel']['micro']['dice'] == 1.0 and res['pixel']['compared'] == 'object vs background'
    ob = res['objects']
    assert (ob['true'], ob['pred'], ob['tp'], ob['fp'], ob['fn'], ob['merges']) == (5, 4, 4, 0, 1, 1)
    assert ob['f1'] == round(8 / 9, 4) and ob['image_mean']['f1'] == round((4 / 5 + 1) / 2, 4)
    assert [p['name'] for p in res['per_image']] == ['a', 'b']
    assert score_table(res).loc['object F1 @0.50', 'images'] == 2
    r = run_cli('score', pred, truth, '--out', tmp_path/'scores.json')        # never replaced without --overwrite
    assert r.returncode == 2 and 'already exists' in r.stderr
    r = run_cli('score', pred, truth, '--out', tmp_path/'scores.json', '--overwrite', '--threshold', '0.45')
    assert r.returncode == 0 and json.loads((tmp_path/'scores.json').read_text())['settings']['threshold'] == 0.45

def test_score_unpaired_stems_exit_2_naming_them(tmp_path):
    pred, truth = write_set(tmp_path)
    (pred/'b.png').rename(pred/'b_pred.png')
    r = run_cli('score', pred, truth)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert 'predicted mask without a true mask: b_pred' in r.stderr and 'true mask without a prediction: b' in r.stderr
    assert '--partial' in r.stderr
    r = run_cli('score', pred, truth, '--partial')
    assert r.returncode == 0 and '1 image: 3 true objects' in r.stdout

def test_size_mismatch_names_the_file(tmp_path):
    pred, truth = write_set(tmp_path)
    save_mask(np.zeros((30, 32), np.uint8), pred/'b.png', overwrite=True)
    r = run_cli('score', pred, truth)
    assert r.returncode == 2 and 'b.png: the predicted mask is 30x32 (HxW) but its true mask b.png is 32x32' in r.stderr

def test_dataset_folders_palette_and_classes(tmp_path):
    "A dataset folder as truth (instances/ preferred), a prediction folder with codes.txt and palette PNGs; classes compared."
    data = tmp_path/'data'
    ids = np.zeros((16, 16), np.uint16); ids[2:6, 2:6] = 1; ids[8:12, 8:12] = 2
    cls = np.zeros((16, 16), np.uint8); cls[2:6, 2:6] = 1; cls[8:12, 8:12] = 2
    save_mask(ids, data/'instances'/'x.png', instances=True); save_mask(cls, data/'masks'/'x.png')
    (data/'codes.txt').write_text('background\ncell\ndebris\n')
    save_mask(cls, tmp_path/'out'/'masks'/'x.png', palette=[(0, 0, 0), (255, 0, 0), (0, 255, 0)])
    (tmp_path/'out'/'codes.txt').write_text('background\ncell\ndebris\n')
    res = score_folders(tmp_path/'out', data, progress=False)
    assert res['truth'].endswith('instances') and res['objects']['tp'] == 2
    assert res['pixel']['compared'] == 'object vs background'                  # instance truth: no classes to compare
    res = score_folders(tmp_path/'out', data/'masks', progress=False)
    assert res['pixel']['compared'] == 'classes' and res['pixel']['classes'] == ['background', 'cell', 'debris']
    assert res['pixel']['per_class']['debris']['dice'] == 1.0 and res['objects']['f1'] == 1.0
    (tmp_path/'out'/'codes.txt').write_text('background\ncell\nnucleus\n')
    with pytest.raises(DatasetError, match='classes'): score_folders(tmp_path/'out', data/'masks', progress=False)

def test_score_on_the_cells_course_data():
    res = score_folders(ROOT/'data'/'cells'/'masks', ROOT/'data'/'cells', split=True, min_distance=4, progress=False)
    assert res['images'] == 40 and res['pixel']['micro']['dice'] == 1.0
    assert (res['objects']['true'], res['objects']['tp'], res['objects']['splits'], res['objects']['merges']) == (402, 333, 3, 29)

def test_score_command_imports_no_torch(tmp_path):
    pred, truth = write_set(tmp_path)
    code = (f"from segment_lib.cli import main\ncode = main(['score', {str(pred)!r}, {str(truth)!r}])\n"
            "import sys; assert code == 0, code; assert 'torch' not in sys.modules and 'fastai' not in sys.modules; print('light')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith('light')


# ---------------------------------------------------------------- void: not scored

VOID_NAMES = ['background', 'cytoplasm', 'nucleus', 'void']

def _three_class_truth(seed=0):
    from segment_lib.synthetic import cell_class_mask, make_cells
    return cell_class_mask(make_cells(seed=seed))

def test_a_prediction_wrong_only_on_void_scores_perfectly():
    truth = _three_class_truth()
    rng = np.random.default_rng(0)
    pred = np.where(truth == 3, rng.integers(0, 3, truth.shape), truth)      # anything at all where the truth is void
    s = pixel_scores(confusion_matrix(pred, truth, 4), VOID_NAMES)
    assert s['pixel_accuracy'] == 1.0 and list(s['per_class']) == VOID_NAMES[:3]
    assert all(v[k] == 1.0 for v in s['per_class'].values() for k in ('dice', 'iou', 'precision', 'recall'))
    assert s['micro']['dice'] == s['macro']['dice'] == 1.0
    summary = pixel_summary([confusion_matrix(pred, truth, 4)] * 2, VOID_NAMES)
    assert summary['image_mean']['dice'] == 1.0 and 'void' not in summary['per_class']

def test_void_predicted_on_a_known_pixel_is_a_miss():
    truth = np.array([[0, 1, 1, 2]]); pred = np.array([[0, 3, 1, 2]])
    s = pixel_scores(confusion_matrix(pred, truth, 4), VOID_NAMES)
    assert s['pixel_accuracy'] == 0.75 and s['per_class']['cytoplasm']['recall'] == 0.5
    assert s['per_class']['cytoplasm']['precision'] == 1.0                  # the miss is no false positive of another class

def test_no_void_class_changes_nothing():
    truth, pred = _three_class_truth(), np.roll(_three_class_truth(), 2, axis=1)
    names = ['background', 'cytoplasm', 'nucleus', 'edge']               # the same values, but class 3 is a real class
    s = pixel_scores(confusion_matrix(pred, truth, 4), names)
    assert 'edge' in s['per_class'] and s['pixel_accuracy'] == (pred == truth).mean()

def test_show_confusion_drops_the_void_row(tmp_path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from segment_lib.metrics import show_confusion
    cm = np.array([[5, 1, 0, 0], [1, 5, 0, 0], [0, 0, 3, 0], [2, 2, 2, 0]])
    ax = show_confusion(cm, VOID_NAMES)
    assert [t.get_text() for t in ax.get_yticklabels()] == VOID_NAMES[:3] and len(ax.get_xticklabels()) == 3
    assert [t.get_text() for t in ax.texts][:3] == ['0.83', '0.17', '0.00']   # rows normalised over the known classes
    plt.close('all')

def test_score_folders_with_void(tmp_path):
    "A folder of void-labelled truth scored against predictions that differ only on void: perfect, pixels and objects."
    from segment_lib.metrics import fill_void
    for i in range(3):
        truth = _three_class_truth(i)
        save_mask(truth, tmp_path/'truth'/'masks'/f'{i}.png')
        save_mask(fill_void(truth, 3), tmp_path/'pred'/'masks'/f'{i}.png')
    for d in ('truth', 'pred'): (tmp_path/d/'codes.txt').write_text('\n'.join(VOID_NAMES) + '\n')
    res = score_folders(tmp_path/'pred', tmp_path/'truth', progress=False)
    assert res['pixel']['pixel_accuracy'] == 1.0 and res['objects']['f1'] == 1.0 and res['objects']['mean_matched_iou'] == 1.0
    assert res['pixel']['classes'] == VOID_NAMES and 'void' not in res['pixel']['per_class']
