"Semantic <-> instance <-> three-class round trips, touching objects, folder conversion and real DSB2018 masks (`segment_lib.instances`)."

import numpy as np
import pytest
from PIL import Image
from skimage import measure

from segment_lib.data import DatasetError, read_codes, read_mask_array, save_mask
from segment_lib.check import check_dataset
from segment_lib.instances import (DEFAULT_MIN_SIZE, THREE_CLASS_CODES, convert_masks, count_touching, instances_to_semantic,
                                   instances_to_three_class, semantic_to_instances, split_touching,
                                   three_class_to_instances, touching_pairs, unet_weight_map)
from segment_lib.metrics import object_overlaps, object_scores, object_summary
from segment_lib.synthetic import make_cells, make_crystals

from conftest import run_cli

# ------------------------------------------------------------------ semantic <-> instance
def separated_objects(seed, n=8, size=96):
    "Instance ids of `n` random discs and rectangles at least 2 px apart."
    rng, ids = np.random.default_rng(seed), np.zeros((size, size), np.int32)
    k, tries = 0, 0
    while k < n and tries < 500:
        tries += 1
        r, c, rad = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(3, 8)
        yy, xx = np.ogrid[:size, :size]
        shape = (yy - r) ** 2 + (xx - c) ** 2 <= rad ** 2 if rng.random() < 0.5 else (abs(yy - r) <= rad) & (abs(xx - c) <= rad // 2 + 1)
        grown = np.zeros_like(shape); grown[max(0, r - rad - 3):r + rad + 4, max(0, c - rad - 3):c + rad + 4] = True
        if (ids[grown] > 0).any(): continue
        k += 1; ids[shape] = k
    return ids


@pytest.mark.parametrize('seed', range(5))
def test_instance_semantic_instance_round_trip(seed):
    ids = separated_objects(seed)
    assert count_touching(ids).touching == 0
    back = semantic_to_instances(instances_to_semantic(ids))
    assert back.max() == ids.max()
    assert (instances_to_semantic(back) == instances_to_semantic(ids)).all()
    three = instances_to_three_class(ids)
    assert measure.label(three == 1, connectivity=1).max() == ids.max()


def test_touching_objects_three_class_and_watershed():
    yy, xx = np.mgrid[:50, :80]
    ids = np.zeros((50, 80), np.int32)
    for i, cx in enumerate((15, 33, 51, 69), 1): ids[(yy - 25) ** 2 + (xx - cx) ** 2 <= 100] = i    # a chain of touching discs
    tc = count_touching(ids)
    assert (tc.objects, tc.touching, tc.pairs) == (4, 4, 3)
    assert touching_pairs(ids).tolist() == [[1, 2], [2, 3], [3, 4]]
    assert measure.label(instances_to_semantic(ids)).max() == 1                                  # semantic merges them
    assert measure.label(instances_to_three_class(ids) == 1, connectivity=1).max() == 4           # three-class keeps them
    assert split_touching(ids > 0, min_distance=5).max() == 4
    w = unet_weight_map(ids)
    assert ids[20, 24] == 0 and ids[2, 24] == 0
    assert w.dtype == np.float32 and w[20, 24] > w[2, 24] + 1                                     # the notch by a contact


def test_watershed_keeps_every_component():
    m = np.zeros((40, 40), bool); m[5, 5] = True; m[20:30, 20:23] = True; m[2:4, 30:38] = True
    ids = split_touching(m, min_distance=10)
    assert ids.max() >= 3 and ((ids > 0) == m).all()


# ------------------------------------------------------------------ folders, as the command line runs them
def test_convert_masks_every_target(tmp_path):
    ids = np.zeros((3, 40, 50), np.int32)
    for i in range(3):
        for k, (r, c) in enumerate([(5, 5), (5, 30), (25, 5), (25, 30)][:i + 2], 1): ids[i, r:r + 8, c:c + 10] = k
    yy, xx = np.mgrid[:40, :50]
    ids[0][(yy - 30) ** 2 + (xx - 15) ** 2 <= 25] = 90                                            # two touching discs
    ids[0][(yy - 30) ** 2 + (xx - 24) ** 2 <= 25] = 91
    (tmp_path/'data'/'instances').mkdir(parents=True); (tmp_path/'data'/'images').mkdir()
    for i in range(3):
        save_mask(ids[i], tmp_path/'data'/'instances'/f'im{i}.png', instances=True)
        Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path/'data'/'images'/f'im{i}.png')
    total = sum(len(np.unique(a)) - 1 for a in ids)
    assert total == 2 + 2 + 3 + 4
    s = convert_masks(tmp_path/'data'/'instances', 'semantic', tmp_path/'sem', progress=False)
    assert s['objects'] == total and s['touching_objects'] == 2 and s['classes'] == ['background', 'object']
    assert len(check_dataset(tmp_path/'sem').pairs) == 3 and (tmp_path/'sem'/'images'/'im0.png').exists()
    t = convert_masks(tmp_path/'data'/'instances', 'three-class', tmp_path/'three', boundary_width=2, progress=False)
    assert read_codes(tmp_path/'three'/'codes.txt').names == list(THREE_CLASS_CODES)
    assert set(np.unique(read_mask_array(tmp_path/'three'/'masks'/'im0.png'))) == {0, 1, 2}
    back = convert_masks(tmp_path/'sem'/'masks', 'instances', tmp_path/'ids', progress=False)
    assert back['objects'] == total - 1                                                           # the touching pair merges
    assert read_mask_array(tmp_path/'ids'/'masks'/'im1.png').dtype == np.uint16
    ws = convert_masks(tmp_path/'sem'/'masks', 'instances', tmp_path/'ws', method='watershed', min_distance=4, progress=False)
    assert ws['objects'] == total                                                                 # watershed splits them again
    with pytest.raises(DatasetError, match='already holds'):
        convert_masks(tmp_path/'data'/'instances', 'semantic', tmp_path/'sem', progress=False)
    with pytest.raises(DatasetError, match='never writes over'):
        convert_masks(tmp_path/'sem'/'masks', 'semantic', tmp_path/'sem', overwrite=True, progress=False)
    with pytest.raises(DatasetError, match='unknown conversion'):
        convert_masks(tmp_path/'sem'/'masks', 'polygons', tmp_path/'x', progress=False)


def test_convert_bare_folder_of_8bit_ids(tmp_path):
    (tmp_path/'labels').mkdir()
    ids = measure.label(separated_objects(3, n=6, size=40) > 0).astype(np.uint8)
    Image.fromarray(ids).save(tmp_path/'labels'/'a.png')
    s = convert_masks(tmp_path/'labels', 'three-class', tmp_path/'out', progress=False)          # napari-style 8-bit ids
    assert ids.max() >= 3 and s['objects'] == ids.max() and not (tmp_path/'out'/'images').exists()


def test_three_class_small_objects_keep_an_interior(tmp_path):
    "With 2-px boundaries a small nucleus loses only its first layer (MIN_INTERIOR); large ones, huge ids and the CLI agree."
    yy, xx = np.mgrid[:30, :44]
    ids = np.zeros((30, 44), np.int64)
    ids[(yy - 15) ** 2 + (xx - 12) ** 2 <= 100] = 70_000                                          # a large nucleus, a 17-bit id
    ids[(yy - 15) ** 2 + (xx - 25.5) ** 2 <= 12] = 3                                              # a small one touching it
    assert count_touching(ids).pairs == 1
    every, kept = instances_to_three_class(ids, 2, min_interior=0), instances_to_three_class(ids, 2)
    assert (every[ids == 70_000] == kept[ids == 70_000]).all()                                    # the large one: both layers
    small = (ids == 3).sum()
    assert (every[ids == 3] == 1).sum() < small / 3 <= (kept[ids == 3] == 1).sum()                # the small one keeps a third
    assert measure.label(kept == 1, connectivity=2).max() == 2                                    # interiors still apart
    (tmp_path/'ids').mkdir(); Image.fromarray(ids.astype(np.int32)).save(tmp_path/'ids'/'a.tif')
    for extra, expect in (([], kept), (['--min-interior', '0'], every)):
        r = run_cli('convert', tmp_path/'ids', '--to', 'three-class', '--boundary-width', '2', '--out', tmp_path/f'out{len(extra)}', *extra)
        assert r.returncode == 0, r.stderr
        assert (read_mask_array(tmp_path/f'out{len(extra)}'/'masks'/'a.png') == expect).all()



# ------------------------------------------------------------------ real data: the bundled DSB2018 nuclei (data/nuclei)
def test_dsb2018_converts_to_semantic_and_three_class(tmp_path):
    "The 39 bundled DSB2018 images (16-bit ids, RGBA images of many sizes) convert, and the three-class interiors keep touching nuclei apart."
    from conftest import ROOT
    root = ROOT/'data'/'nuclei'
    files = sorted((root/'masks').glob('*.png'))
    sem = convert_masks(root, 'semantic', tmp_path/'sem', progress=False)               # the dataset folder: masks/ + images/
    three = convert_masks(root/'masks', 'three-class', tmp_path/'three', progress=False)
    assert sem['masks'] == three['masks'] == len(files) == 39
    assert (sem['objects'], three['objects'], three['touching_objects']) == (1771, 1771, 629)
    assert len(check_dataset(tmp_path/'three').pairs) == 39
    interiors = components = 0
    for f in files:
        ids = read_mask_array(f)
        assert (read_mask_array(tmp_path/'sem'/'masks'/f.name) == (ids > 0)).all()
        tc = read_mask_array(tmp_path/'three'/'masks'/f.name)
        assert ((tc > 0) == (ids > 0)).all()
        interiors += measure.label(tc == 1, connectivity=2).max()
        components += measure.label(ids > 0, connectivity=2).max()
    assert components == 1364                                                                   # the semantic masks merge 407 nuclei
    assert abs(interiors - 1771) < abs(components - 1771) / 10                                  # the interiors keep them apart


# ------------------------------------------------------------------ three-class -> instances
def touching_discs():
    yy, xx = np.mgrid[:40, :60]
    ids = np.zeros((40, 60), np.int32)
    ids[(yy - 20) ** 2 + (xx - 18) ** 2 <= 100] = 1; ids[(yy - 20) ** 2 + (xx - 36) ** 2 <= 100] = 2
    return ids


def one_hot(classes): return np.eye(3, dtype=np.float32)[classes].transpose(2, 0, 1)


@pytest.mark.parametrize('as_probs', [False, True])
def test_three_class_round_trip_separates_touching_discs(as_probs):
    ids = touching_discs()
    three = instances_to_three_class(ids)
    back = three_class_to_instances(one_hot(three) if as_probs else three)
    assert back.max() == 2 and back.dtype == np.int32
    iou = object_overlaps(ids, back).matrix()
    assert (iou.max(1) > 0.9).all() and sorted(iou.argmax(1).tolist()) == [0, 1]
    assert ((back > 0) == (ids > 0)).all()                                  # every foreground pixel goes to an object


def test_boundary_probability_decides_the_contact_line():
    "Two squares whose shared boundary band is 4 px wide: the flood puts the line where the boundary probability peaks."
    classes = np.zeros((20, 30), np.int64); classes[5:15, 2:28] = 2; classes[7:13, 4:11] = 1; classes[7:13, 19:26] = 1
    probs = one_hot(classes)
    probs[:, 5:15, 11:19] = np.array([0, 0.1, 0.9], np.float32)[:, None, None]   # the band between the interiors: boundary
    probs[:, 5:15, 17] = np.array([0, 0, 1], np.float32)[:, None]                 # most boundary-like at column 17
    ids = three_class_to_instances(probs, min_size=0)
    assert ids.max() == 2
    left, right = ids[10, 4], ids[10, 20]
    assert (ids[10, 11:17] == left).all() and (ids[10, 18:19] == right).all()    # the line follows the probabilities
    by_distance = three_class_to_instances(classes, min_size=0)                  # class map only: the nearest seed
    assert (by_distance[10, 11:15] == by_distance[10, 4]).all() and (by_distance[10, 15:19] == by_distance[10, 20]).all()


def test_three_class_seedless_objects_specks_and_bad_input():
    three = np.zeros((20, 20), np.uint8)
    three[2, 2:18] = 2                                                       # a thin line: boundary only, no interior
    three[10:12, 10:12] = 1                                                  # a 4-px speck
    ids = three_class_to_instances(three)
    assert ids.max() == 1 and (ids == 1).sum() == 16
    assert three_class_to_instances(three, min_size=0).max() == 2
    assert three_class_to_instances(three, min_size=0, min_seed_size=5).max() == 2    # seeds nothing, still foreground
    blob = instances_to_three_class(np.pad(np.ones((10, 10), np.int32), 3), 2); blob[3, 8] = 1  # a 1-px interior bit on the 2-px rim
    assert three_class_to_instances(blob, min_size=0).max() == 2                      # a seed of its own: a second object
    assert three_class_to_instances(blob, min_size=0, min_seed_size=2).max() == 1     # too small to seed: joins the blob
    assert three_class_to_instances(np.zeros((4, 4), np.uint8)).max() == 0
    with pytest.raises(ValueError, match='3 x H x W'): three_class_to_instances(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match='class indices'): three_class_to_instances(np.full((4, 4), 7))
    with pytest.raises(ValueError, match='class indices'): three_class_to_instances(np.full((4, 4), 0.5))


@pytest.mark.parametrize('make', [make_cells, make_crystals])
def test_three_class_round_trip_on_generated_truth(make):
    "Exact truth from the course generators, made three-class and back, against the semantic baseline (connected components)."
    truths = [s.instances.astype(np.int64) for s in (make(size=128, seed=seed) for seed in range(100, 110))]
    s = object_summary([object_scores(t, three_class_to_instances(instances_to_three_class(t))) for t in truths])
    baseline = object_summary([object_scores(t, measure.label(t > 0, connectivity=2)) for t in truths])
    assert s['f1'] > baseline['f1'] + 0.15, (s['f1'], baseline['f1'])
    assert s['merges'] < baseline['merges'] and s['mean_matched_iou'] > 0.95


def test_three_class_round_trip_on_course_cells():
    from conftest import ROOT
    files = sorted((ROOT/'data'/'cells'/'instances').glob('*.png'))
    rows = [object_scores(read_mask_array(f).astype(np.int64), three_class_to_instances(instances_to_three_class(read_mask_array(f))))
            for f in files]
    s = object_summary(rows)
    assert len(files) == 40 and s['true'] == s['pred'] == s['tp'] == 402 and s['f1'] == 1.0


def test_three_class_round_trip_on_dsb2018():
    "The bundled DSB2018 nuclei, made three-class and back: far above the semantic baseline and the watershed split."
    from conftest import ROOT
    from segment_lib.instances import label_objects
    from segment_lib.measure import measure_objects
    files = sorted((ROOT/'data'/'nuclei'/'masks').glob('*.png'))
    truths = [read_mask_array(f).astype(np.int64) for f in files]
    small = [t for t in (measure_objects(x) for x in truths) for t in [t[t.area_px < DEFAULT_MIN_SIZE]] if len(t)]
    assert len(small) == 1 and small[0].touches_border.all()                  # only a sliver cut by a crop edge is under 16 px
    s = object_summary([object_scores(t, three_class_to_instances(instances_to_three_class(t))) for t in truths])
    f1 = {split: object_summary([object_scores(t, label_objects(t > 0, split=split)) for t in truths])['f1'] for split in (False, True)}
    assert s['f1'] > max(f1.values()) + 0.05, (s['f1'], f1)
    assert s['true'] == 1771 and abs(s['pred'] - s['true']) <= 5
