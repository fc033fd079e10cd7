"""Learners end to end: export and load (also of models saved before segment_lib.learner was split), training on every
mask encoding and image size, budgets in steps and minutes, stops, and instance training."""
import contextlib, pickle, subprocess, sys
from pathlib import Path
import numpy as np
from fastai.vision.all import set_seed
import pytest
from segment_lib.data import DatasetError, find_pairs, read_image, read_mask
from segment_lib.patches import segmentation_dls
from segment_lib.budget import export_learner
from segment_lib.learner import seg_learner
from segment_lib.inference import predict_probs
from segment_lib.data import save_mask
from conftest import ROOT, run_cli, shared_dataset

def test_export_load_round_trip_in_fresh_process(tmp_path):
    set_seed(0)
    dls = segmentation_dls(ROOT/'data'/'crystals', bs=8)
    learn = seg_learner(dls, 'unet', base_width=8, depth=3)
    learn.fit_one_cycle(1, 3e-3)
    export_learner(learn, tmp_path/'model.pkl')
    img = find_pairs(ROOT/'data'/'crystals')[0][0]
    expected = predict_probs(learn, read_image(img))
    code = ("import numpy as np, sys; from segment_lib.inference import load_model, predict_probs; "
            "from segment_lib.data import read_image; "
            f"np.save(sys.argv[2], predict_probs(load_model(sys.argv[1]), read_image({str(img)!r})))")
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path/'model.pkl'), str(tmp_path/'probs.npy')],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path/'probs.npy'), expected, atol=1e-5)

# Classes that go into model.pkl and moved out of segment_lib.learner when it was split into patches, augment and budget.
MOVED = {'patches': ['PixelCache', 'ImageReader', 'MaskReader', 'MaskPath', 'ModelInfo', 'PatchDL'],
         'augment': ['Augmentation', 'SegAugment', 'SmoothElastic'],
         'budget': ['WholeImageScores', 'CPUMixedPrecision', 'CheckpointBest', 'LogProgress', 'KeepToBudget']}

@contextlib.contextmanager
def pickled_as_before_the_split():
    "Pickles written inside name the moved classes `segment_lib.learner.X`, as models saved before the split do."
    import importlib
    classes = [getattr(importlib.import_module(f'segment_lib.{m}'), n) for m, names in MOVED.items() for n in names]
    old = [c.__module__ for c in classes]
    for c in classes: c.__module__ = 'segment_lib.learner'
    try: yield
    finally:
        for c, m in zip(classes, old): c.__module__ = m

def test_moved_classes_unpickle_from_their_old_path():
    "Each moved class, pickled under its old path `segment_lib.learner`, loads as the class of its new module."
    from segment_lib.data import Codes
    from segment_lib.patches import PixelCache, ImageReader, MaskReader, MaskPath, ModelInfo
    from segment_lib.augment import Augmentation, SegAugment
    objs = [PixelCache(10), ImageReader(1), MaskReader(Codes(['background', 'object'])), MaskPath([('a.png', 'm/a.png')]),
            ModelInfo(Codes(['background', 'object']), patch=64), Augmentation(elastic=2.), SegAugment(Augmentation(invert=0.5))]
    for obj in objs:
        new = pickle.dumps(obj)
        with pickled_as_before_the_split(): old = pickle.dumps(obj)
        assert b'segment_lib.learner' in old and f'segment_lib.{type(obj).__module__.split(".")[-1]}'.encode() not in old
        assert f'{type(obj).__module__}'.encode() in new and b'segment_lib.learner' not in new
        loaded = pickle.loads(old)
        assert type(loaded) is type(obj) and vars(loaded).keys() == vars(pickle.loads(new)).keys()
    assert pickle.loads(pickle.dumps(objs[4])) == objs[4] and pickle.loads(pickle.dumps(objs[5])) == objs[5]

def test_model_saved_before_the_split_loads_and_predicts(tmp_path):
    "A model.pkl whose readers, transforms and ModelInfo are named segment_lib.learner.X loads in a fresh process."
    set_seed(0)
    learn = seg_learner(segmentation_dls(ROOT/'data'/'crystals', bs=8), 'unet', base_width=4, depth=2)
    with pickled_as_before_the_split(): export_learner(learn, tmp_path/'model.pkl')
    import zipfile
    with zipfile.ZipFile(tmp_path/'model.pkl') as z: payload = z.read(next(n for n in z.namelist() if n.endswith('data.pkl')))
    assert b'segment_lib.learner' in payload and b'segment_lib.augment' not in payload
    # every class from before the split named by its old path; only `PadCrop`, newer than the split, by its own
    assert payload.count(b'segment_lib.patches') == payload.count(b'segment_lib.patches\nPadCrop')
    img = find_pairs(ROOT/'data'/'crystals')[0][0]
    code = ("import numpy as np, sys; from segment_lib.inference import load_model, predict_probs; "
            "from segment_lib.data import read_image; from segment_lib.patches import ModelInfo, PatchDL; "
            "from segment_lib.augment import SegAugment; learn = load_model(sys.argv[1]); "
            "assert isinstance(learn.model_info, ModelInfo) and isinstance(learn.dls.train, PatchDL); "
            "assert any(isinstance(t, SegAugment) for t in learn.dls.train.after_batch.fs); "
            f"np.save(sys.argv[2], predict_probs(learn, read_image({str(img)!r})))")
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path/'model.pkl'), str(tmp_path/'probs.npy')],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path/'probs.npy'), predict_probs(learn, read_image(img)), atol=1e-5)

def test_train_on_colour_masks_saves_model_and_scores(tmp_path):
    "RGB masks mapped through codes.txt colours: training, the final evaluation and the export all use the colours."
    from PIL import Image
    from segment_lib.data import read_mask_array
    from segment_lib.learner import train
    src = ROOT/'data'/'cells'; d = tmp_path/'rgb'
    (d/'images').mkdir(parents=True); (d/'masks').mkdir()
    for img, msk in find_pairs(src)[:10]:
        (d/'images'/img.name).write_bytes(img.read_bytes())
        m = read_mask_array(msk); rgb = np.zeros(m.shape + (3,), np.uint8); rgb[m == 1] = (255, 0, 0)
        Image.fromarray(rgb).save(d/'masks'/msk.name)
    (d/'codes.txt').write_text('background 0 0 0\ncell 255 0 0\n')
    rep = train(d, tmp_path/'model', epochs=1, base_width=8, depth=3, bs=4, show_progress=False)
    assert (tmp_path/'model'/'model.pkl').exists() and (tmp_path/'model'/'report.json').exists()
    assert set(rep['final']['per_class']) == {'background', 'cell'} and rep['data']['mask_encodings'] == {'rgb': 10}


def test_isbi_em_dataloaders():
    dls = segmentation_dls(shared_dataset('isbi2012_em'), bs=4, size=128)
    xb, yb = dls.one_batch()
    assert xb.shape == (4, 3, 128, 128) and set(yb.unique().tolist()) <= {0, 1}   # 0/255 masks arrive as 0/1


def test_nuclei_mixed_sizes_train_on_patches():
    "The bundled DSB2018 nuclei, eight image sizes, batch without resizing: random 256-px patches at each image's own scale."
    dls = segmentation_dls(ROOT/'data'/'nuclei', bs=4)
    xb, yb = dls.one_batch()
    assert xb.shape == (4, 3, 256, 256) and dls.model_info.patch == 256 and dls.model_info.size is None
    assert set(yb.unique().tolist()) <= {0, 1}                          # instance ids arrive as foreground


def test_steps_budget_and_report(tmp_path):
    "`steps` trains that many optimiser steps (rounded up to whole epochs) and the report says what was planned and done."
    from segment_lib.learner import train
    rep = train(ROOT/'data'/'cells', tmp_path/'m', steps=12, base_width=8, depth=3, show_progress=False)
    plan = rep['plan']
    assert plan['epochs'] == 10 and plan['steps_per_epoch'] == 2 and plan['steps'] == 20 and len(rep['epochs']) == 10
    assert {'image_accuracy', 'image_dice'} <= set(rep['epochs'][-1])   # whole-image scores, every epoch
    assert sorted(rep['training_images'] + rep['validation_images']) == sorted(p.name for p in (ROOT/'data'/'cells'/'images').iterdir())


def test_minutes_budget_plans_from_measured_speed(tmp_path, capsys):
    "A budget in minutes is turned into steps from a measured step time; the plan and the per-epoch lines are printed."
    from segment_lib.learner import train
    rep = train(ROOT/'data'/'cells', tmp_path/'m', minutes=0.5, base_width=8, depth=3)
    plan, out = rep['plan'], capsys.readouterr().out
    assert plan['seconds_per_step'] > 0 and plan['steps'] >= plan['epochs'] >= 1 and 'untrained' in plan
    assert 'to fill 0.5 min' in out and f"/{plan['epochs']}: step " in out
    assert plan['steps'] == plan['epochs'] * plan['steps_per_epoch']          # the plan, with its headroom
    assert plan['steps_expected'] < plan['steps'] and plan['steps_done'] <= plan['steps']
    import torch
    assert not torch.is_autocast_enabled('cpu')                         # bfloat16 autocast (when used) was closed


def test_minutes_budget_on_a_dataset_of_few_batches(tmp_path):
    "A small dataset (16 training images: 2 batches, fewer than the steps timed) trains with a budget in minutes from the command line."
    import json, shutil
    for sub in ('images', 'masks'):
        (tmp_path/'d'/sub).mkdir(parents=True)
        for f in sorted((ROOT/'data'/'cells'/sub).iterdir())[:20]: shutil.copy(f, tmp_path/'d'/sub/f.name)
    r = run_cli('train', tmp_path/'d', '--out', tmp_path/'m', '--minutes', '0.3', '--base-width', '4', '--depth', '2')
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path/'m'/'report.json').read_text())['plan']
    assert plan['seconds_per_step'] > 0 and plan['steps_done'] <= plan['steps'] and (tmp_path/'m'/'model.pkl').exists()


def test_minutes_budget_ends_on_the_clock_when_the_plan_is_too_long(tmp_path, monkeypatch):
    "A measured step time far too short (1 ms) plans thousands of steps no machine does in 15 s: the deadline ends the fit."
    import segment_lib.learner as L
    monkeypatch.setattr(L, 'seconds_per_step', lambda *a, **k: 1e-3)
    rep = L.train(ROOT/'data'/'cells', tmp_path/'m', minutes=0.25, base_width=4, depth=2, show_progress=False)
    plan = rep['plan']
    assert plan['seconds_per_step'] == 0.001 and plan['steps'] > 5000
    assert plan['stopped_on_time'] is True and plan['steps_done'] < plan['steps']
    assert len(rep['epochs']) <= plan['epochs'] and (tmp_path/'m'/'model.pkl').exists()   # validated, and a model saved


def test_keep_to_budget_runs_past_a_pessimistic_estimate():
    """Steps timed at 4 s that really take 1 s (a fake clock): the plan expects 3, plans 3 * BUDGET_HEADROOM = 6, and the
    fit runs until its planned steps end, inside the deadline."""
    from segment_lib.budget import BUDGET_HEADROOM, KeepToBudget
    from conftest import tiny_learner
    import tempfile
    class Clock:
        t = 0.
        def __call__(self): self.t += 1.; return self.t
    with tempfile.TemporaryDirectory() as d:
        learn = tiny_learner(Path(d))                       # 2 training images in batches of 2: one step an epoch
        expected = 12 // 4                                  # 12 s of budget at the measured 4 s a step
        keeper = KeepToBudget(deadline=13., clock=Clock())
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(int(expected * BUDGET_HEADROOM), 1e-3, cbs=[keeper])
    assert learn.train_iter == 6 > expected and not keeper.stopped_early


def test_mixed_contrast_is_noted_and_inversion_is_an_option(tmp_path):
    "Objects bright in some images and dark in others: `check` says so; `train --invert` shows a share of patches inverted."
    from segment_lib.data import save_image
    from segment_lib.learner import train
    m = np.zeros((32, 32), np.uint8); m[8:24, 8:24] = 1
    for i in range(6):
        img = np.where(m, 200, 30) if i % 3 else np.where(m, 30, 200)      # two bright-object images for each dark one
        save_image(img.astype(np.uint8), tmp_path/'d'/'images'/f'{i}.png'); save_mask(m, tmp_path/'d'/'masks'/f'{i}.png')
    r = run_cli('check', tmp_path/'d')
    assert r.returncode == 0 and 'brighter than the background in some images and darker' in r.stdout, r.stdout
    rep = train(tmp_path/'d', tmp_path/'m', steps=1, bs=2, base_width=4, depth=2, show_progress=False)
    assert rep['settings']['augment']['invert'] == 0 and rep['data']['contrast'] == {'brighter': 4, 'darker': 2}
    rep = train(tmp_path/'d', tmp_path/'m2', steps=1, bs=2, base_width=4, depth=2, invert=0.5, show_progress=False)
    assert rep['settings']['augment']['invert'] == 0.5


@pytest.mark.parametrize('encoding', ['0/255', 'palette', 'rgb', 'instance'])
def test_check_and_training_decode_masks_identically(tmp_path, encoding):
    "`check` and training read every encoding through the one decoder: the same classes, pixel for pixel."
    from PIL import Image
    from segment_lib.data import Codes, save_image, write_codes
    from segment_lib.check import check_dataset
    truth = np.zeros((4, 32, 32), np.uint8)
    for i in range(4): truth[i, 4 + i:20 + i, 6:26 - i] = 1
    for i, t in enumerate(truth):
        save_image(np.random.default_rng(i).integers(0, 255, (32, 32), dtype=np.uint8), tmp_path/'images'/f'm{i}.png')
        (tmp_path/'masks').mkdir(exist_ok=True)
        if encoding == '0/255': Image.fromarray(t * 255).save(tmp_path/'masks'/f'm{i}.png')
        elif encoding == 'palette':
            p = Image.fromarray(t, mode='L').convert('P'); p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762); p.save(tmp_path/'masks'/f'm{i}.png')
        elif encoding == 'rgb': Image.fromarray(np.array([(0, 0, 0), (0, 200, 90)], np.uint8)[t]).save(tmp_path/'masks'/f'm{i}.png')
        else: Image.fromarray((t * (7 + i)).astype(np.uint16)).save(tmp_path/'masks'/f'm{i}.png')   # 16-bit ids
    if encoding == 'rgb': write_codes(Codes(['background', 'object'], [(0, 0, 0), (0, 200, 90)]), tmp_path/'codes.txt')
    summary = check_dataset(tmp_path)
    assert list(summary.mask_encodings) == [{'0/255': '0/255', 'palette': 'palette', 'rgb': 'rgb', 'instance': 'instance'}[encoding]]
    assert summary.class_pixels.tolist() == np.bincount(truth.ravel(), minlength=2).tolist()
    dls = segmentation_dls(tmp_path, bs=1, valid_pct=0.25, augment=False, normalize=False, seed=0)
    assert len(dls.train.items) == 3
    for i, path in enumerate(dls.train.items):                       # what training feeds the loss, before augmentation
        np.testing.assert_array_equal(np.asarray(dls.train_ds[i][1]), truth[int(path.stem[1:])])


def test_sigterm_keeps_the_best_model(tmp_path):
    "A training run stopped by SIGTERM (a scheduler's time limit) leaves a loadable model and says so."
    import json, shutil, signal, subprocess, time
    exe = shutil.which('segment-lib', path=str(Path(sys.executable).parent))
    out = tmp_path/'m'
    p = subprocess.Popen([exe, 'train', str(ROOT/'data'/'cells'), '--out', str(out), '--epochs', '40', '--base-width', '8',
                          '--depth', '3'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out/'model.pkl').exists() and time.time() - t0 < 300 and p.poll() is None: time.sleep(0.2)
    assert (out/'model.pkl').exists(), p.communicate()[1][-2000:]
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and 'stopped' in err and 'Traceback' not in err, err[-2000:]
    report = json.loads((out/'report.json').read_text())
    assert report['stopped']['after_epochs'] < 40 and report['stopped']['model_from_epoch'] is not None
    r = subprocess.run([sys.executable, '-c', f"from segment_lib.inference import load_model; load_model({str(out)!r})"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_nuclei_defaults_train_and_predict_at_each_size(tmp_path):
    "Mixed sizes train without --size, and predictions come back at each image's own size (a few steps: plumbing, not quality)."
    import shutil
    from segment_lib.data import image_size
    from segment_lib.learner import train
    from segment_lib.inference import load_model, predict_image
    src = ROOT/'data'/'nuclei'
    pairs = find_pairs(src)
    by_size = {}
    for img, msk in pairs: by_size.setdefault(image_size(img), (img, msk))
    d = tmp_path/'dsb'
    for img, msk in list(by_size.values())[:6]:
        for sub, f in (('images', img), ('masks', msk)): (d/sub).mkdir(parents=True, exist_ok=True); shutil.copy(f, d/sub/f.name)
    rep = train(d, tmp_path/'m', steps=2, bs=2, valid_pct=0.34, base_width=4, depth=3, show_progress=False)
    assert rep['settings']['size'] is None and rep['plan']['patch'] == 256
    learn = load_model(tmp_path/'m')
    for img, _ in list(by_size.values())[:3]:
        assert predict_image(learn, read_image(img)).mask.shape == image_size(img)


def test_instance_training_learns_three_classes_and_predicts_instances(tmp_path):
    "`train(instances=True)` learns background/interior/boundary from DATA/instances; predict then writes instance ids."
    from segment_lib.learner import train
    from segment_lib.instances import THREE_CLASS_CODES
    from segment_lib.inference import predict_folder
    from segment_lib.data import read_mask_array
    rep = train(ROOT/'data'/'cells', tmp_path/'m', instances=True, steps=2, base_width=4, depth=3, show_progress=False)
    assert rep['settings']['instances'] and rep['model']['classes'] == list(THREE_CLASS_CODES)
    from segment_lib.instances import MIN_INTERIOR, instances_to_three_class    # the masks it learnt from, as recorded
    assert rep['settings']['boundary_width'] == 2 and rep['settings']['min_interior'] == MIN_INTERIOR
    first = sorted((ROOT/'data'/'cells'/'instances').iterdir())[0]
    assert (read_mask_array(tmp_path/'m'/'three-class'/'masks'/first.name) == instances_to_three_class(read_mask_array(first), 2)).all()
    assert (tmp_path/'m'/'three-class'/'masks').is_dir() and rep['data']['pairs'] == 40
    from segment_lib.instances import instance_size_limits                # speck sizes from the training objects
    true_ids = [read_mask_array(f) for f in sorted((ROOT/'data'/'cells'/'instances').iterdir())]
    areas = np.concatenate([np.unique(m[m > 0], return_counts=True)[1] for m in true_ids])
    limits = rep['model']['instance_limits']
    assert limits == instance_size_limits(np.percentile(areas, 1)) and limits['min_size'] >= 1
    imgs = tmp_path/'imgs'; imgs.mkdir()
    for f in sorted((ROOT/'data'/'cells'/'images').iterdir())[:2]: (imgs/f.name).write_bytes(f.read_bytes())
    predict_folder(tmp_path/'m', imgs, tmp_path/'pred', progress=False)
    ids = read_mask_array(next((tmp_path/'pred'/'instances').iterdir()))
    assert ids.shape == (128, 128) and ids.dtype.kind in 'iu'
    assert (np.unique(ids[ids > 0], return_counts=True)[1] >= limits['min_size']).all()


def test_instance_training_refuses_masks_without_objects(tmp_path):
    from segment_lib.data import save_image, save_mask
    from segment_lib.learner import train
    for i in range(5):
        save_image(np.full((32, 32), 9 * i, np.uint8), tmp_path/'d'/'images'/f'{i}.png')
        save_mask(np.zeros((32, 32), np.uint8), tmp_path/'d'/'masks'/f'{i}.png')
    with pytest.raises(DatasetError, match='no objects found'): train(tmp_path/'d', tmp_path/'m', instances=True, steps=1)


# ---------------------------------------------------------------- the void label

VOID_CODES = ['background', 'cytoplasm', 'nucleus', 'void']

@pytest.mark.parametrize('name, border', [('ce', 1.), ('ce', 5.), ('dice', 1.), ('ce+dice', 1.), ('ce+dice', 5.), ('focal', 1.)])
def test_losses_send_no_gradient_to_void_pixels(name, border):
    import torch
    from segment_lib.learner import seg_loss
    torch.manual_seed(0)
    targ = torch.randint(0, 3, (2, 16, 16)); targ[:, 5:8] = 3; targ[:, :, 12] = 3
    void = targ == 3
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    seg_loss(name, border_weight=border, void=3, class_weights=[1., 2., 3., 1.] if name != 'dice' else None)(x, targ).backward()
    assert x.grad.permute(0, 2, 3, 1)[void].abs().max() == 0 and x.grad.permute(0, 2, 3, 1)[~void].abs().max() > 0

def test_seg_metrics_ignore_void():
    import torch, torch.nn.functional as F
    from segment_lib.learner import seg_metrics
    class FakeLearn: pass
    fl = FakeLearn()
    targ = torch.randint(0, 4, (2, 8, 8)); pred = torch.where(targ == 3, torch.randint(0, 3, targ.shape), targ)
    fl.y, fl.pred = targ, F.one_hot(pred, 4).permute(0, 3, 1, 2).float()
    metrics = seg_metrics(VOID_CODES)
    assert [m.name for m in metrics] == ['dice_cytoplasm', 'dice_nucleus', 'iou_cytoplasm', 'iou_nucleus', 'dice_mean', 'iou_mean']
    for m in metrics: m.reset(); m.accumulate(fl); assert m.value == 1.0, m.name

def test_old_losses_and_metrics_without_void_still_work():
    "A CombinedLoss or SegMetric pickled before the void label has no `void` attribute; it must work as before."
    import torch
    from segment_lib.learner import CombinedLoss, SegMetric
    loss, metric = CombinedLoss(border_weight=3.), SegMetric('dice', None, 2)
    for o in (loss, metric): del o.__dict__['void']
    old_loss, old_metric = pickle.loads(pickle.dumps(loss)), pickle.loads(pickle.dumps(metric))
    x, t = torch.randn(1, 2, 8, 8), torch.randint(0, 2, (1, 8, 8))
    assert torch.isclose(old_loss(x, t), CombinedLoss(border_weight=3.)(x, t))
    class FakeLearn: pass
    fl = FakeLearn(); fl.y, fl.pred = t, x
    old_metric.reset(); old_metric.accumulate(fl)
    new = SegMetric('dice', None, 2); new.reset(); new.accumulate(fl)
    assert old_metric.value == new.value

def _void_folder(folder, n=6, size=64, start=0):
    from segment_lib.synthetic import write_cell_classes
    return write_cell_classes(folder, n=n, size=size, start=start, progress=False)

@pytest.mark.parametrize('arch', ['unet', 'resnet18'])
def test_seg_learner_mutes_the_void_output(tmp_path, arch):
    "The model has one output per class, void included, and void gets probability 0: never predicted, nothing to train."
    import torch
    from segment_lib.learner import VOID_LOGIT
    folder = _void_folder(tmp_path/'cc')
    set_seed(0)
    learn = seg_learner(segmentation_dls(folder, bs=2, valid_pct=0.34, seed=0), arch, base_width=4, depth=2, pretrained=False)
    assert learn.model_info.codes.names == VOID_CODES
    probs = predict_probs(learn, read_image(find_pairs(folder)[0][0]))
    assert probs.shape[0] == 4 and probs[3].max() == 0 and np.allclose(probs[:3].sum(0), 1, atol=1e-5)
    learn.fit(1, 1e-3)                                                  # weight decay and all: still off
    xb, _ = learn.dls.one_batch()
    with torch.no_grad(): out = learn.model.eval()(xb)
    assert torch.allclose(out[:, 3], torch.full_like(out[:, 3], VOID_LOGIT), rtol=1e-3)

def test_evaluate_and_whole_image_scores_ignore_void(tmp_path):
    "Truth that agrees with the model's own predictions except on void pixels scores 1.0 in `evaluate` and in validation."
    from segment_lib.budget import whole_image_scores
    from segment_lib.learner import calibrate, evaluate
    from segment_lib.data import read_codes
    folder = _void_folder(tmp_path/'cc', n=4)
    codes = read_codes(folder/'codes.txt')
    set_seed(0)
    learn = seg_learner(segmentation_dls(folder, bs=2, valid_pct=0.5, seed=0), 'unet', base_width=4, depth=2)
    rng = np.random.default_rng(0)
    for img, msk in find_pairs(folder):                                  # the truth: the model's answer, some pixels void
        pred = predict_probs(learn, read_image(img)).argmax(0).astype(np.uint8)
        save_mask(np.where(rng.random(pred.shape) < 0.3, 3, pred).astype(np.uint8), msk, overwrite=True)
    res = evaluate(learn, folder, progress=False, confusion=True)
    assert res['pixel_accuracy'] == 1.0 and 'void' not in res['per_class']
    assert all(v['dice'] in (1.0, None) for v in res['per_class'].values())
    assert np.array(res['confusion'])[:, 3].sum() == 0 and np.array(res['confusion'])[3].sum() > 0
    assert whole_image_scores(learn, find_pairs(folder), codes)['accuracy'] == 1.0
    known = sum(int((read_mask(m, codes) != 3).sum()) for _, m in find_pairs(folder))
    assert calibrate(learn, find_pairs(folder), codes)['pixels'] == known    # void pixels calibrate nothing

def test_void_weights_and_refusals(tmp_path):
    from segment_lib.learner import class_weights_for, refuse_untrainable
    from segment_lib.check import check_dataset
    w = class_weights_for('balanced', [800, 150, 30, 20], void=3)
    assert w[3] == 1.0 and w[2] > w[1] > w[0] and np.isclose(np.mean(w[:3]), 1)
    assert class_weights_for('balanced', [800, 150, 30, 20], void=3)[:3] == class_weights_for('balanced', [800, 150, 30, 5000], void=3)[:3]
    from segment_lib.data import read_codes
    folder = _void_folder(tmp_path/'cc', n=4)
    for _, m in find_pairs(folder):                                      # only background and void left: nothing to learn
        mask = read_mask(m, read_codes(folder/'codes.txt'))
        save_mask(np.where(mask == 3, 3, 0).astype(np.uint8), m, overwrite=True)
    with pytest.raises(DatasetError, match='every mask is background only'): refuse_untrainable(check_dataset(folder), 0.5)
