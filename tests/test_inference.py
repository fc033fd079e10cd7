"Folders in and out, bad inputs, interrupted runs and real images for `segment_lib.inference`."
import os, warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segment_lib.data import DatasetError, read_image, read_mask_array, save_image, save_mask
import segment_lib.inference as inference
from segment_lib.inference import (Prediction, predict_image, predict_folder, show_predictions, read_confidence,
                                   confidence_to_uint8)
from conftest import tiny_learner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def learn(tmp_path_factory):
    "A tiny, untrained U-Net on a 4-image dataset: enough to test files in and out."
    return tiny_learner(tmp_path_factory.mktemp('ds'))


@pytest.fixture(scope='module')
def model_path(learn, tmp_path_factory):
    from segment_lib.learner import export_learner
    return export_learner(learn, tmp_path_factory.mktemp('model')/'model.pkl')


def _images(folder, **arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items(): save_image(arr, folder/name)
    return folder


def test_any_image_type_and_size(learn, tmp_path):
    rng = np.random.default_rng(1)
    cases = {'grey16.tif': rng.integers(0, 4096, (45, 61), dtype=np.uint16),
             'rgba.png': rng.integers(0, 256, (33, 70, 4), dtype=np.uint8),
             'grey.jpg': rng.integers(0, 256, (64, 31), dtype=np.uint8),
             'tiny.png': rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)}
    for name, arr in cases.items():
        save_image(arr, tmp_path/name)
        p = predict_image(learn, tmp_path/name)
        h, w = arr.shape[:2]
        assert p.mask.shape == (h, w) and p.probs.shape == (2, h, w) and p.confidence.shape == (h, w), name
        assert p.mask.dtype == np.uint8 and p.probs.dtype == np.float32 and p.confidence.dtype == np.float32
        assert np.allclose(p.probs.sum(0), 1, atol=1e-4) and (p.confidence >= 0.5 - 1e-6).all()


def test_folder_from_model_file(model_path, tmp_path):
    rng = np.random.default_rng(2)
    imgs = tmp_path/'imgs'; imgs.mkdir()
    save_image(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), imgs/'a.png')
    save_image(rng.integers(0, 65535, (30, 20), dtype=np.uint16), imgs/'b.tif')
    (imgs/'.hidden.png').write_bytes(b'junk'); (imgs/'notes.txt').write_text('not an image')
    (imgs/'sub').mkdir(); save_image(np.zeros((8, 8), np.uint8), imgs/'sub'/'c.png')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        written = predict_folder(str(model_path), imgs, tmp_path/'out', progress=False)
    assert [p.name for p in written] == ['a.png', 'b.png']
    assert read_mask_array(tmp_path/'out'/'masks'/'b.png').shape == (30, 20)
    conf = read_confidence(tmp_path/'out'/'confidence'/'a.png')
    assert conf.shape == (40, 50) and conf.min() >= 0.5 - 1 / 255 and conf.max() <= 1
    assert set(np.unique(read_mask_array(tmp_path/'out'/'masks'/'a.png'))) <= {0, 1}


def test_no_confidence_when_not_asked(learn, tmp_path):
    imgs = _images(tmp_path/'imgs', **{'a.png': np.zeros((16, 16), np.uint8)})
    predict_folder(learn, imgs, tmp_path/'out', confidence=False, progress=False)
    assert not (tmp_path/'out'/'confidence').exists() and (tmp_path/'out'/'masks'/'a.png').exists()


def test_corrected_masks_survive_a_second_run(learn, tmp_path):
    imgs = _images(tmp_path/'imgs', **{'a.png': np.zeros((16, 16), np.uint8), 'b.png': np.full((16, 16), 200, np.uint8)})
    predict_folder(learn, imgs, tmp_path/'out', progress=False)
    corrected = tmp_path/'out'/'masks'/'a.png'
    save_mask(np.eye(16, dtype=np.uint8), corrected, overwrite=True)
    before = corrected.read_bytes()
    with pytest.warns(UserWarning, match='2 masks already there'):
        assert predict_folder(learn, imgs, tmp_path/'out', progress=False) == []
    assert corrected.read_bytes() == before
    assert len(predict_folder(learn, imgs, tmp_path/'out', overwrite=True, progress=False)) == 2
    assert corrected.read_bytes() != before


def test_interrupted_run_resumes(learn, tmp_path, monkeypatch):
    imgs = _images(tmp_path/'imgs', **{f'{i}.png': np.full((16, 16), 40 * i, np.uint8) for i in range(3)})
    real_save_mask, calls = inference.save_mask, []
    def crash_on_second(mask, path, overwrite=False, **kwargs):
        calls.append(path)
        if len(calls) == 2: raise KeyboardInterrupt   # the user pressed Ctrl-C, or the machine went down
        return real_save_mask(mask, path, overwrite, **kwargs)
    monkeypatch.setattr(inference, 'save_mask', crash_on_second)
    with pytest.raises(KeyboardInterrupt): predict_folder(learn, imgs, tmp_path/'out', progress=False)
    monkeypatch.setattr(inference, 'save_mask', real_save_mask)
    assert sorted(p.name for p in (tmp_path/'out'/'masks').iterdir()) == ['0.png']
    with pytest.warns(UserWarning, match='1 mask already there'):
        resumed = predict_folder(learn, imgs, tmp_path/'out', progress=False)
    assert [p.name for p in resumed] == ['1.png', '2.png']
    assert sorted(p.name for p in (tmp_path/'out'/'masks').iterdir()) == ['0.png', '1.png', '2.png']   # no temporary files left
    assert sorted(p.name for p in (tmp_path/'out'/'confidence').iterdir()) == ['0.png', '0.tif', '1.png', '1.tif', '2.png', '2.tif']


def test_bad_folders_name_the_problem(learn, tmp_path):
    with pytest.raises(DatasetError, match='not a folder'): predict_folder(learn, tmp_path/'missing', tmp_path/'out')
    (tmp_path/'empty').mkdir(); (tmp_path/'empty'/'.DS_Store').write_bytes(b'x')
    with pytest.raises(DatasetError, match='no image files'): predict_folder(learn, tmp_path/'empty', tmp_path/'out')
    dup = _images(tmp_path/'dup', **{'s.png': np.zeros((8, 8), np.uint8), 's.tif': np.zeros((8, 8), np.uint8)})
    with pytest.raises(DatasetError, match='s.png, s.tif'): predict_folder(learn, dup, tmp_path/'out')
    bad = _images(tmp_path/'bad', **{'good.png': np.zeros((8, 8), np.uint8)})
    (bad/'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)
    with pytest.raises(DatasetError, match=r'broken\.png: could not be read'):
        predict_folder(learn, bad, tmp_path/'out', progress=False)
    with pytest.raises(FileNotFoundError, match='no model here'):
        predict_folder(tmp_path/'nomodel.pkl', bad, tmp_path/'out')
    assert not (tmp_path/'out'/'masks'/'broken.png').exists()


def test_confidence_encoding():
    assert confidence_to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]


def test_show_predictions_shapes(learn, tmp_path):
    import matplotlib.pyplot as plt
    img = np.zeros((20, 30, 3), np.uint8)
    pred = predict_image(learn, img)
    fig = show_predictions([img, img], [np.zeros((20, 30), np.uint8), None], [pred, pred], names=['a', 'b'])
    assert len(fig.axes) == 2 * 4 + 1
    three = Prediction(np.zeros((20, 30), np.uint8), np.full((3, 20, 30), 1 / 3, np.float32), np.full((20, 30), 1 / 3, np.float32))
    fig = show_predictions([img], None, [three])
    assert len(fig.axes) == 3 + 1 and fig.axes[-2].images[0].get_clim() == pytest.approx((1 / 3, 1))
    with pytest.raises(ValueError, match='got 2 images, 1 predictions and 2 truths'):
        show_predictions([img, img], [None, None], [pred])
    plt.close('all')


def test_real_nuclei_images_of_many_sizes(learn, tmp_path):
    "The bundled DSB2018 nuclei: RGBA PNGs of different sizes come back as masks and confidence maps of their own size."
    src = sorted((ROOT/'data'/'nuclei'/'images').glob('*.png'))
    by_size = {}
    for p in src:
        with Image.open(p) as im:
            assert im.mode == 'RGBA', p.name
            by_size.setdefault(im.size, p)
    assert len(by_size) == 8
    imgs = tmp_path/'imgs'; imgs.mkdir()
    for p in list(by_size.values())[:4]: os.symlink(p, imgs/p.name)
    written = predict_folder(learn, imgs, tmp_path/'out', progress=False)
    assert len(written) == 4
    for p in imgs.iterdir():
        h, w = read_image(p).shape[:2]
        assert read_mask_array(tmp_path/'out'/'masks'/p.name).shape == (h, w) and read_confidence(tmp_path/'out'/'confidence'/p.name).shape == (h, w)


def test_evaluate_and_predict_give_the_same_masks(learn, tmp_path):
    "One prediction path: the masks `predict_folder` writes are the ones `evaluate` scores."
    from segment_lib.learner import evaluate, scores_from_confusion
    from segment_lib.metrics import confusion_matrix
    from segment_lib.data import is_palette
    _images(tmp_path/'data'/'images', **{f'{i}.png': np.random.default_rng(i).integers(0, 255, (24, 40), dtype=np.uint8) for i in range(3)})
    for i in range(3): save_mask((np.arange(24 * 40).reshape(24, 40) % (i + 2) == 0).astype(np.uint8), tmp_path/'data'/'masks'/f'{i}.png')
    written = predict_folder(learn, tmp_path/'data', tmp_path/'out', progress=False)           # the dataset folder works too
    assert all(is_palette(p) for p in written)                                                   # viewable palette PNGs
    cm = sum(confusion_matrix(read_mask_array(tmp_path/'out'/'masks'/f'{i}.png'), read_mask_array(tmp_path/'data'/'masks'/f'{i}.png'), 2)
             for i in range(3))
    assert evaluate(learn, tmp_path/'data', progress=False) == {**scores_from_confusion(cm, ['background', 'object']), 'images': 3}


def test_lean_prediction_is_the_full_one_without_probabilities(learn):
    "`keep_probs=False` fills mask and confidence strip by strip: the same values, no C x H x W array."
    rng = np.random.default_rng(3)
    for image, kw in [(rng.integers(0, 4096, (300, 70), dtype=np.uint16), dict(tile=64)),
                      (rng.integers(0, 256, (33, 70, 4), dtype=np.uint8), dict(tta='all')),
                      (rng.integers(0, 256, (200, 150, 3), dtype=np.uint8), dict(tile=64, tta='flips', overlap=0.5))]:
        full, lean = predict_image(learn, image, **kw), predict_image(learn, image, keep_probs=False, **kw)
        assert lean.probs is None and lean.confidence.dtype == np.float16                # half the memory of float32
        assert np.array_equal(lean.mask, full.mask) and np.abs(lean.confidence - full.confidence).max() <= 5e-4


def test_strips_are_never_higher_than_a_tile(learn, monkeypatch):
    "The prepared rows asked for at any time are one tile high: memory follows the strip, not the image."
    asked = []
    real = inference._normalise
    monkeypatch.setattr(inference, '_normalise', lambda rgb, info: asked.append(rgb.shape) or real(rgb, info))
    pred = predict_image(learn, np.zeros((1000, 90, 3), np.uint8), keep_probs=False, tile=64)
    assert pred.mask.shape == (1000, 90) and max(s[0] for s in asked) == 64 and len(asked) == len(inference.tile_starts(1000, 64))


def test_scores_csv_ranks_least_confident_first_and_survives_a_rerun(learn, tmp_path):
    import pandas as pd
    from segment_lib.confidence import DEFAULT_SCORE
    imgs = _images(tmp_path/'imgs', **{f'{i}.png': np.random.default_rng(i).integers(0, 255, (20, 24), dtype=np.uint8) for i in range(3)})
    predict_folder(learn, imgs, tmp_path/'out', progress=False)
    scores = pd.read_csv(tmp_path/'out'/'scores.csv')
    assert sorted(scores.image.astype(str)) == ['0', '1', '2'] and scores[DEFAULT_SCORE].is_monotonic_decreasing
    (tmp_path/'out'/'masks'/'1.png').unlink()
    with pytest.warns(UserWarning, match='2 masks already there'): predict_folder(learn, imgs, tmp_path/'out', progress=False)
    again = pd.read_csv(tmp_path/'out'/'scores.csv')
    assert sorted(again.image.astype(str)) == ['0', '1', '2']                     # earlier rows kept, image 1 scored anew
    pd.testing.assert_frame_equal(again.sort_values('image').reset_index(drop=True), scores.sort_values('image').reset_index(drop=True))


@pytest.mark.parametrize('shape', [(37, 53), (70, 130)])
def test_full_tta_is_exactly_equivariant(learn, shape):
    "With tta='all' the prediction of a flipped or turned image is the flipped or turned prediction (tiles included)."
    from segment_lib.inference import predict_probs
    img = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    p = predict_probs(learn, img, tta='all', tile=32)
    np.testing.assert_allclose(predict_probs(learn, img[:, ::-1], tta='all', tile=32), p[:, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(predict_probs(learn, img[::-1], tta='all', tile=32), p[:, ::-1], atol=1e-5)
    np.testing.assert_allclose(predict_probs(learn, np.rot90(img), tta='all', tile=32), np.rot90(p, axes=(1, 2)), atol=1e-5)
    flips = predict_probs(learn, img, tta='flips', tile=32)                # the flips group: equivariant to flips
    np.testing.assert_allclose(predict_probs(learn, img[::-1, ::-1], tta='flips', tile=32), flips[:, ::-1, ::-1], atol=1e-5)


def test_every_transform_is_undone_with_a_position_dependent_stand_in():
    "A stand-in whose output at each pixel is that pixel's value: each of the 8 undone predictions must be the plain one."
    import torch
    from types import SimpleNamespace
    from segment_lib.data import Codes
    from segment_lib.learner import ModelInfo
    from segment_lib.inference import predict_samples
    class Echo(torch.nn.Module):
        def forward(self, x): return torch.stack([torch.zeros_like(x[:, 0]), 3 * x[:, 0]], 1)
    echo = SimpleNamespace(model=Echo(), model_info=ModelInfo(Codes(['background', 'object'])))
    img = np.random.default_rng(1).integers(0, 255, (45, 77), dtype=np.uint8)
    samples = predict_samples(echo, img, tta='all', tile=32)
    assert samples.shape == (8, 2, 45, 77)
    for s in samples: np.testing.assert_allclose(s, samples[0], atol=1e-6)
    np.testing.assert_allclose(samples[0][1], 1 / (1 + np.exp(-3 * img.astype(np.float64) / 255)), atol=1e-5)


def test_sizes_odd_thin_and_too_small(learn):
    from segment_lib.inference import predict_probs
    for shape in [(97, 131), (3000, 17), (17, 3000), (2, 2)]: assert predict_probs(learn, np.zeros(shape, np.uint8)).shape == (2,) + shape
    with pytest.raises(DatasetError, match='1x1 pixels is too small to segment'): predict_probs(learn, np.zeros((1, 1), np.uint8))


# ---------------------------------------------------------------- three-class models: instance ids
@pytest.fixture(scope='module')
def learn3(tmp_path_factory):
    "A tiny U-Net for background / interior / boundary, trained a few steps on 4 generated 64 px images of touching discs."
    from fastai.vision.all import set_seed
    from segment_lib.data import write_codes
    from segment_lib.instances import THREE_CLASS_CODES, instances_to_three_class
    from segment_lib.learner import seg_learner, segmentation_dls
    folder = tmp_path_factory.mktemp('ds3')
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    for i in range(4):
        ids = np.zeros((64, 64), np.uint16)
        for k in range(1, 6):
            r, c = rng.integers(10, 54, 2)
            ids[(yy - r) ** 2 + (xx - c) ** 2 <= 64] = k
        image = np.where(ids[..., None] > 0, 200, 40).astype(np.uint8).repeat(3, -1)
        save_image(image, folder/'images'/f'{i}.png')
        save_mask(instances_to_three_class(ids), folder/'masks'/f'{i}.png')
        save_mask(ids, folder/'instances'/f'{i}.png', instances=True)
    write_codes(list(THREE_CLASS_CODES), folder/'codes.txt')
    set_seed(0)
    learn = seg_learner(segmentation_dls(folder, bs=2, valid_pct=0.5, seed=0), 'unet', base_width=4, depth=2)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 3e-2)
    learn.data_folder = folder
    return learn


def test_three_class_model_predicts_instances(learn3, learn):
    from segment_lib.instances import three_class_to_instances
    assert inference.predicts_instances(learn3) and not inference.predicts_instances(learn)
    image = read_image(learn3.data_folder/'images'/'0.png')
    full = predict_image(learn3, image)
    assert full.probs.shape == (3, 64, 64) and full.instances.dtype == np.int32
    assert (full.instances == three_class_to_instances(full.probs)).all()
    lean = predict_image(learn3, image, keep_probs=False)
    assert lean.probs is None and (lean.instances == full.instances).all()          # strip by strip: the same objects
    assert (predict_image(learn3, image, min_size=10**6).instances == 0).all()      # min_size reaches the conversion
    cut = predict_image(learn3, image, split_depth=0.5)                             # split_depth reaches it too
    assert (cut.instances == three_class_to_instances(cut.probs, split_depth=0.5)).all()
    assert (predict_image(learn3, image, keep_probs=False, split_depth=0.5).instances == cut.instances).all()
    assert predict_image(learn, image).instances is None                           # a two-class model: no ids


def test_three_class_folder_writes_instances_that_measure_and_score_read(learn3, learn, tmp_path):
    from segment_lib.measure import measure_folder
    from segment_lib.metrics import score_folders
    data = learn3.data_folder
    written = predict_folder(learn3, data/'images', tmp_path/'out', progress=False)
    out = tmp_path/'out'
    assert sorted(p.name for p in (out/'instances').iterdir()) == [p.name for p in written]
    for p in written:
        ids = read_mask_array(out/'instances'/p.name)
        assert ids.dtype == np.uint16                                               # 16-bit even with a few objects
        averaged = predict_image(learn3, data/'images'/p.name, keep_probs=False, tta='all')   # a folder's default, three classes
        assert (ids.astype(np.int32) == averaged.instances).all()
        assert set(np.unique(read_mask_array(p))) <= {0, 1, 2}                      # masks/: the model's classes
    assert (out/'codes.txt').read_text().split() == ['background', 'interior', 'boundary']
    summary = measure_folder(out/'instances', tmp_path/'objects.csv', progress=False)
    assert summary['count'].tolist() == [len(np.unique(read_mask_array(out/'instances'/p.name))) - 1 for p in written]
    scores = score_folders(out/'instances', data, progress=False)                 # truth: data/instances
    assert scores['images'] == 4 and scores['objects']['true'] == sum(
        len(np.unique(read_mask_array(data/'instances'/p.name))) - 1 for p in written)
    import pandas as pd
    assert 'objects' in pd.read_csv(out/'scores.csv').columns
    predict_folder(learn, data/'images', tmp_path/'binary', progress=False)
    assert not (tmp_path/'binary'/'instances').exists()                             # two classes: no instances/
