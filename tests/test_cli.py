"The `segment-lib` command as a user runs it: every bad input gets a clear message and a non-zero exit."
import json, shutil
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from segment_lib.data import save_mask, read_mask_array
from conftest import ROOT, run_cli, run_cli_process, shared_dataset

def first_stem(data):
    return sorted((data/'images').iterdir())[0].stem

def check_fails(data, *parts):
    r = run_cli('check', data)
    assert r.returncode == 2, r.stdout + r.stderr
    for part in parts: assert part in r.stderr, (part, r.stderr)
    return r.stderr

def test_check_good(cells):
    r = run_cli_process('check', cells)      # the installed console script, as a user runs it
    assert r.returncode == 0, r.stderr
    assert '40 image/mask pairs' in r.stdout and 'OK: no problems found' in r.stdout

def test_image_without_mask(cells):
    stem = first_stem(cells); (cells/'masks'/f'{stem}.png').unlink()
    check_fails(cells, f'{stem}.png: image has no mask', f'Add masks/{stem}.png')

def test_mask_without_image(cells):
    stem = first_stem(cells); (cells/'images'/f'{stem}.png').unlink()
    check_fails(cells, f'{stem}.png: mask has no image')

def test_values_outside_codes_0_255_with_three_classes(cells):
    (cells/'codes.txt').write_text('background\ncell\nnucleus\n')
    stem = first_stem(cells); m = read_mask_array(cells/'masks'/f'{stem}.png')
    save_mask(m*255, cells/'masks'/f'{stem}.png', overwrite=True)    # the classic 0/255 mask
    check_fails(cells, f'{stem}.png: found value 255 outside the codes', 'values 0..2')   # 0 is a class: only 255 is named

def test_antialiased_0_255(cells):
    stem = first_stem(cells); m = read_mask_array(cells/'masks'/f'{stem}.png').astype(np.uint8)*255
    small = Image.fromarray(m).resize((64, 64), Image.BILINEAR).resize((128, 128), Image.BILINEAR)   # smooth resizing
    small.save(cells/'masks'/f'{stem}.png')
    check_fails(cells, f'{stem}.png', 'anti-aliased')

def test_size_mismatch(cells):
    stem = first_stem(cells)
    save_mask(np.zeros((100, 90), np.uint8), cells/'masks'/f'{stem}.png', overwrite=True)
    check_fails(cells, f'{stem}.png: mask is 100x90 (HxW) but its image is 128x128', 'nearest-neighbour')

def test_truncated_and_unreadable(cells):
    a, b = sorted((cells/'images').iterdir())[:2]
    data = a.read_bytes(); a.write_bytes(data[:len(data)//3])          # truncated copy
    (cells/'masks'/b.name).write_text('this is not a png')            # not an image at all
    check_fails(cells, f'{a.name}: could not be read', f'{b.name}: could not be read', '2 problems')

def test_empty_folder(tmp_path):
    (tmp_path/'images').mkdir(); (tmp_path/'masks').mkdir()
    r = run_cli_process('check', tmp_path)
    assert r.returncode == 2 and 'no images found' in r.stderr and 'Traceback' not in r.stderr
    r = run_cli('check', tmp_path/'missing')
    assert r.returncode == 2 and 'folder not found' in r.stderr
    (tmp_path/'flat').mkdir()
    r = run_cli('check', tmp_path/'flat')
    assert r.returncode == 2 and "no 'images/' folder" in r.stderr

def test_jpeg_mask_refused(cells):
    stem = first_stem(cells); m = read_mask_array(cells/'masks'/f'{stem}.png')
    (cells/'masks'/f'{stem}.png').unlink(); Image.fromarray(m*255).save(cells/'masks'/f'{stem}.jpg')
    check_fails(cells, f'{stem}.jpg: masks must be lossless')

def test_train_refuses_bad_data_before_any_tensor(cells, tmp_path):
    stem = first_stem(cells); save_mask(np.zeros((10, 10), np.uint8), cells/'masks'/f'{stem}.png', overwrite=True)
    r = run_cli('train', cells, '--out', tmp_path/'model', '--epochs', '1')
    assert r.returncode == 2 and 'mask is 10x10' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'model').exists()

def trivial_baselines(truth:Path, tmp_path:Path) -> dict:
    "Scores of predictions that learnt nothing, over every mask of `truth`: all background, all object, majority class."
    from segment_lib.metrics import score_folders
    masks = [read_mask_array(p) > 0 for p in sorted((truth/'masks').iterdir())]      # class indices or instance ids
    share = sum(m.sum() for m in masks) / sum(m.size for m in masks)
    everywhere = tmp_path/'all_object'                                            # "object" on every pixel, scored as a tool's masks
    for p, m in zip(sorted((truth/'masks').iterdir()), masks): save_mask(np.ones(m.shape, np.uint8), everywhere/f'{p.stem}.png')
    return dict(all_background_dice=0., all_object_dice=2 * share / (1 + share), majority_accuracy=max(share, 1 - share),
                all_object_f1=score_folders(everywhere, truth, progress=False)['objects']['f1'], all_background_f1=0.)

def assert_beats_baselines(scores:dict, base:dict, dice_margin:float, accuracy_margin:float, f1_margin:float):
    "The model's foreground Dice, pixel accuracy and object F1 each clear the best trivial prediction by a margin."
    pixel = scores['per_class']['object'] if 'per_class' in scores else scores['pixel']['micro']
    accuracy = scores['pixel_accuracy'] if 'pixel_accuracy' in scores else scores['pixel']['pixel_accuracy']
    assert pixel['dice'] > max(base['all_object_dice'], base['all_background_dice']) + dice_margin, (pixel, base)
    assert accuracy > base['majority_accuracy'] + accuracy_margin, (accuracy, base)
    assert scores['objects']['f1'] > max(base['all_object_f1'], base['all_background_f1']) + f1_margin, (scores['objects'], base)

def test_trivial_baselines_are_what_a_constant_prediction_scores(cells, tmp_path):
    "The baselines the end-to-end tests compare with: 'object' everywhere scores its Dice, and no model scores less than them."
    base = trivial_baselines(cells, tmp_path)
    share = np.mean([read_mask_array(p).mean() for p in sorted((cells/'masks').iterdir())])   # equal sizes: the pooled share
    assert base['all_object_dice'] == pytest.approx(2 * share / (1 + share)) and base['majority_accuracy'] == pytest.approx(1 - share)
    r = run_cli('score', tmp_path/'all_object', cells, '--out', tmp_path/'s.json')
    s = json.loads((tmp_path/'s.json').read_text())
    assert r.returncode == 0 and s['pixel']['micro']['dice'] == pytest.approx(base['all_object_dice'], abs=1e-4)
    with pytest.raises(AssertionError):                                   # the constant prediction does not pass the check
        assert_beats_baselines(s, base, 0.01, 0.01, 0.01)

def test_train_then_evaluate_course_data(cells, tmp_path):
    out = tmp_path/'model'
    r = run_cli('train', cells, '--out', out, '--steps', '40', '--lr', '0.01', '--base-width', '8', '--depth', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out/'report.json').read_text())
    assert rep['data']['pairs'] == 40 and rep['plan']['steps_done'] == 40 and rep['settings']['seed'] == 42
    assert set(rep['final']['per_class']) == {'background', 'object'}
    r = run_cli('train', cells, '--out', out, '--epochs', '1')
    assert r.returncode == 2 and 'already there' in r.stderr
    r = run_cli('evaluate', out, cells, '--out', tmp_path/'scores.json')
    assert r.returncode == 0, r.stderr[-2000:]
    scores = json.loads((tmp_path/'scores.json').read_text())
    assert scores['images'] == 40 and '0.75' in scores['objects']['ap'] and scores['objects']['true'] == 402
    assert_beats_baselines(scores, trivial_baselines(cells, tmp_path), dice_margin=0.3, accuracy_margin=0.1, f1_margin=0.1)
    assert scores['object_settings']['min_size'] == 16
    assert 'were used to train this model' in r.stderr and len(scores['warnings']) == 1   # all 40: 32 of them trained it
    assert 'F1' in r.stdout and 'matched' in r.stdout


def test_evaluate_three_class_model_scores_objects(tmp_path):
    "A model trained with --instances is scored on instances: pixels as object vs background, objects by IoU."
    out, cells = tmp_path/'m', ROOT/'data'/'cells'
    r = run_cli('train', cells, '--out', out, '--instances', '--steps', '40', '--lr', '0.01', '--base-width', '8', '--depth', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli('evaluate', out, cells, '--out', tmp_path/'s.json')
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path/'s.json').read_text())
    assert s['images'] == 40 and s['pixel']['compared'] == 'object vs background' and s['objects']['true'] == 402
    assert_beats_baselines(s, trivial_baselines(cells, tmp_path), dice_margin=0.3, accuracy_margin=0.1, f1_margin=0.2)
    limits = json.loads((out/'report.json').read_text())['model']['instance_limits']
    assert s['object_settings']['min_size'] == limits['min_size'] > 16     # the model's speck size (cells: over 100 px)
    r = run_cli('evaluate', out, cells, '--split-depth', '1', '--out', tmp_path/'cut.json')   # seeds cut at necks
    assert r.returncode == 0, r.stderr[-2000:]
    cut = json.loads((tmp_path/'cut.json').read_text())
    assert cut['objects']['true'] == s['objects']['true'] and cut['images'] == 40     # the same truth, scored through the option


def test_train_evaluate_real_nuclei_of_mixed_sizes(tmp_path):
    "The bundled DSB2018 nuclei: RGBA images of 8 sizes, 16-bit instance masks; patches in training, each image at its own size after."
    from segment_lib.data import read_image
    nuclei, out = ROOT/'data'/'nuclei', tmp_path/'m'
    r = run_cli('train', nuclei, '--out', out, '--steps', '120', '--patch', '128', '--lr', '0.005', '--base-width', '8', '--depth', '3',
                '--scale', 'none')                                   # object scale has its own tests (test_object_scale.py)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out/'report.json').read_text())
    assert rep['data']['pairs'] == 39 and rep['settings']['patch'] == 128 and len(rep['validation_images']) == 7
    r = run_cli('evaluate', out, nuclei, '--out', tmp_path/'s.json')
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path/'s.json').read_text())
    assert s['images'] == 39 and s['objects']['true'] == 1771
    assert_beats_baselines(s, trivial_baselines(nuclei, tmp_path), dice_margin=0.2, accuracy_margin=0.02, f1_margin=0.1)
    r = run_cli('predict', out, nuclei/'images', '--out', tmp_path/'pred')
    assert r.returncode == 0, r.stderr[-2000:]
    sizes = {read_image(p).shape[:2] for p in (nuclei/'images').iterdir()}
    assert len(sizes) == 8
    for p in (nuclei/'images').iterdir():                                       # every mask at its own image's size
        assert read_mask_array(tmp_path/'pred'/'masks'/p.name).shape == read_image(p).shape[:2], p.name


def test_resnet18_from_scratch_end_to_end(cells, tmp_path):
    "`--arch resnet18 --no-pretrained` on the CPU: train (resized to 64 px), export, load, predict at full size, evaluate."
    from segment_lib.inference import load_model
    out = tmp_path/'m'
    r = run_cli('train', cells, '--out', out, '--arch', 'resnet18', '--no-pretrained', '--steps', '40', '--size', '64', '--lr', '0.01')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out/'report.json').read_text())
    assert rep['settings']['arch'] == 'resnet18' and rep['settings']['pretrained'] is False and rep['model']['size'] == 64
    learn = load_model(out)
    assert learn.model_info.arch == 'resnet18' and type(learn.model).__name__ == 'DynamicUnet'
    r = run_cli('predict', out, cells/'images', '--out', tmp_path/'pred')
    assert r.returncode == 0 and '40 masks written' in r.stdout, r.stderr[-2000:]
    assert read_mask_array(tmp_path/'pred'/'masks'/'cells_000.png').shape == (128, 128)     # trained at 64, predicted at 128
    r = run_cli('evaluate', out, cells, '--out', tmp_path/'s.json')
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path/'s.json').read_text())
    assert_beats_baselines(s, trivial_baselines(cells, tmp_path), dice_margin=0.3, accuracy_margin=0.05, f1_margin=0.05)


def _no_network(*args, **kwargs):
    import urllib.error
    raise urllib.error.URLError('no route to host (the network is mocked away)')

def test_pretrained_weights_offline_gives_a_message(cells, tmp_path, monkeypatch):
    "Without a network (mocked, whatever this machine has), `train --arch resnet18` says how to go on, and writes no model."
    import torchvision.models._api
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'empty_torch_cache'))
    monkeypatch.setattr(torchvision.models._api, 'load_state_dict_from_url', _no_network)
    r = run_cli('train', cells, '--out', tmp_path/'m', '--arch', 'resnet18', '--epochs', '1')
    assert r.returncode == 2 and '--no-pretrained' in r.stderr and '--weights FILE' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'m'/'model.pkl').exists()

def test_pretrained_weights_online_are_loaded(cells, tmp_path, monkeypatch):
    "With a network (mocked: the 'download' returns known weights), the ResNet encoder starts from exactly those weights."
    import torch, torchvision
    from segment_lib.learner import seg_learner, segmentation_dls
    torch.manual_seed(1)
    downloaded = torchvision.models.resnet18().state_dict()              # stands in for the ImageNet file
    asked = []
    def fake_download(url, *args, **kwargs): asked.append(url); return downloaded
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'empty_torch_cache'))
    monkeypatch.setattr(torchvision.models._api, 'load_state_dict_from_url', fake_download)
    learn = seg_learner(segmentation_dls(cells, bs=4, size=64), 'resnet18', pretrained=True)
    assert len(asked) == 1 and 'resnet18' in asked[0]
    encoder = learn.model[0].state_dict()
    assert torch.equal(encoder['0.weight'], downloaded['conv1.weight'])
    assert torch.equal(encoder['4.0.conv1.weight'], downloaded['layer1.0.conv1.weight'])
    learn = seg_learner(segmentation_dls(cells, bs=4, size=64), 'resnet18', pretrained=False)   # --no-pretrained: no download
    assert len(asked) == 1 and not torch.equal(learn.model[0].state_dict()['0.weight'], downloaded['conv1.weight'])

def test_train_evaluate_isbi_em(tmp_path):
    "ISBI 2012 EM (0/255 masks, 512 px, trained resized): only where the shared real datasets are, next to the repository."
    root = shared_dataset('isbi2012_em')    # masks are 0/255; skipped (with a message) without ../shared/datasets
    out = tmp_path/'em'
    r = run_cli('train', root, '--out', out, '--steps', '60', '--lr', '0.01', '--size', '128', '--base-width', '8', '--depth', '3', '--bs', '4')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out/'report.json').read_text())
    assert rep['data']['mask_encodings'] == {'0/255': 24} and rep['settings']['size'] == 128
    r = run_cli('evaluate', out, root, '--out', tmp_path/'em.json')
    assert r.returncode == 0, r.stderr[-2000:]
    scores = json.loads((tmp_path/'em.json').read_text())
    assert scores['images'] == 24          # scored at the full 512x512 resolution against the 0/255 masks
    assert read_mask_array(sorted((root/'masks').iterdir())[0]).shape == (512, 512)
    base = trivial_baselines(root, tmp_path)          # the object class is the cell interiors, about 80% of the pixels
    assert_beats_baselines(scores, base, dice_margin=0.02, accuracy_margin=0.04, f1_margin=0.2)
    assert scores['per_class']['background']['dice'] > 2 * (1 - base['majority_accuracy']) / (2 - base['majority_accuracy']) + 0.2   # membranes

def test_import_labelme_command(tmp_path):
    (tmp_path/'images').mkdir()
    Image.fromarray(np.full((24, 32), 100, np.uint8)).save(tmp_path/'images'/'scene.png')
    (tmp_path/'ann').mkdir()
    (tmp_path/'ann'/'scene.json').write_text(json.dumps(dict(
        shapes=[dict(label='cell', points=[[2, 2], [6, 2], [6, 6], [2, 6]], shape_type='polygon')],
        imagePath='scene.png', imageHeight=24, imageWidth=32)))
    (tmp_path/'codes.txt').write_text('background\ncell\n')
    r = run_cli('import', 'labelme', tmp_path/'ann', '--images', tmp_path/'images', '--out', tmp_path/'data', '--codes', tmp_path/'codes.txt')
    assert r.returncode == 0, r.stderr
    assert read_mask_array(tmp_path/'data'/'masks'/'scene.png').sum() == 25     # 5x5 pixel centres of the square
    r = run_cli('import', 'labelme', tmp_path/'ann', '--images', tmp_path/'images', '--out', tmp_path/'data')
    assert r.returncode == 2 and 'overwrite' in r.stderr                        # masks already there: refused
    r = run_cli('check', tmp_path/'data')
    assert r.returncode == 0, r.stderr

def test_convert_and_bootstrap_commands(cells, tmp_path):
    r = run_cli('convert', cells/'instances', '--to', 'three-class', '--out', tmp_path/'three')
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout[r.stdout.index('{'):])    # after the progress bar
    assert summary['masks'] == 40 and (tmp_path/'three'/'codes.txt').read_text().split()[:1] == ['background']
    assert set(np.unique(read_mask_array(sorted((tmp_path/'three'/'masks').iterdir())[0]))) <= {0, 1, 2}
    r = run_cli('bootstrap', cells/'images', '--out', tmp_path/'boot')
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path/'boot'/'masks').iterdir())) == 40
    r = run_cli('bootstrap', cells/'images', '--out', tmp_path/'boot')
    assert r.returncode == 2 and 'overwrite' in r.stderr

def test_predict_and_measure_commands(cells, tmp_path):
    r = run_cli('train', cells, '--out', tmp_path/'m', '--epochs', '1', '--base-width', '8', '--depth', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli('predict', tmp_path/'m', cells/'images', '--out', tmp_path/'pred')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path/'pred'/'masks').iterdir())) == 40
    assert len(list((tmp_path/'pred'/'confidence').glob('*.png'))) == 40 == len(list((tmp_path/'pred'/'confidence').glob('*.tif')))
    r = run_cli('measure', tmp_path/'pred'/'masks', '--out', tmp_path/'objects.csv', '--pixel-size', '0.5', '--unit', 'um')
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'objects.csv').read_text().splitlines()[0].startswith('image,')
    r = run_cli('measure', tmp_path/'pred'/'masks', '--out', tmp_path/'objects.csv')
    assert r.returncode == 2 and 'already exists' in r.stderr

def test_rank_round_accept_help():
    "The annotation-loop commands take their arguments from rank, make_round and accept (08_hitl)."
    for command, parts in [('rank', ['MODEL IMAGES', '--out OUT', '--sheet SHEET', 'mean_confidence', '(default: 6)']),
                           ('round', ['MODEL POOL DATA', '--out OUT', '--n N', '(default: 10)']),
                           ('accept', ['ROUND DATA', '--who WHO', '--to TO'])]:
        r = run_cli_process(command, '--help')
        text = ' '.join(r.stdout.split())
        assert r.returncode == 0, r.stderr
        for part in parts: assert part in text, (command, part)
