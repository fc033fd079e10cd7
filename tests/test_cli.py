"The `segment-lib` command as a user runs it: every bad input gets a clear message and a non-zero exit."
import json, shutil
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

def test_train_then_evaluate_course_data(cells, tmp_path):
    out = tmp_path/'model'
    r = run_cli('train', cells, '--out', out, '--epochs', '2', '--base-width', '8', '--depth', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out/'report.json').read_text())
    assert rep['data']['pairs'] == 40 and len(rep['epochs']) == 2 and rep['settings']['seed'] == 42
    assert set(rep['final']['per_class']) == {'background', 'object'}
    r = run_cli('train', cells, '--out', out, '--epochs', '1')
    assert r.returncode == 2 and 'already there' in r.stderr
    r = run_cli('evaluate', out, cells, '--out', tmp_path/'scores.json')
    assert r.returncode == 0, r.stderr[-2000:]
    scores = json.loads((tmp_path/'scores.json').read_text())
    assert scores['images'] == 40
    for k in ('dice', 'iou', 'precision', 'recall'): assert scores['per_class']['object'][k] is not None
    assert 0 <= scores['pixel_accuracy'] <= 1
    assert scores['objects']['true'] > 0 and 0 <= scores['objects']['f1'] <= 1 and '0.75' in scores['objects']['ap']
    assert scores['object_settings']['min_size'] == 16
    assert 'were used to train this model' in r.stderr and len(scores['warnings']) == 1   # all 40: 32 of them trained it
    assert 'F1' in r.stdout and 'matched' in r.stdout


def test_evaluate_three_class_model_scores_objects(tmp_path):
    "A model trained with --instances is scored on instances: pixels as object vs background, objects by IoU."
    out = tmp_path/'m'
    r = run_cli('train', ROOT/'data'/'cells', '--out', out, '--instances', '--steps', '2', '--base-width', '4', '--depth', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli('evaluate', out, ROOT/'data'/'cells', '--out', tmp_path/'s.json')
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path/'s.json').read_text())
    assert s['images'] == 40 and s['pixel']['compared'] == 'object vs background' and s['objects']['true'] > 300
    limits = json.loads((out/'report.json').read_text())['model']['instance_limits']
    assert s['object_settings']['min_size'] == limits['min_size'] > 16     # the model's speck size (cells: over 100 px)
    r = run_cli('evaluate', out, ROOT/'data'/'cells', '--split-depth', '1', '--out', tmp_path/'cut.json')   # seeds cut at necks
    assert r.returncode == 0, r.stderr[-2000:]
    cut = json.loads((tmp_path/'cut.json').read_text())
    assert cut['objects']['true'] == s['objects']['true'] and cut['images'] == 40     # the same truth, scored through the option

def test_offline_pretrained_message(cells, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'empty_torch_cache'))
    r = run_cli('train', cells, '--out', tmp_path/'m', '--arch', 'resnet18', '--epochs', '1')
    if r.returncode == 0: pytest.skip('this machine can download ImageNet weights')
    assert r.returncode == 2 and '--no-pretrained' in r.stderr and 'Traceback' not in r.stderr

def test_train_evaluate_isbi_em(tmp_path):
    root = shared_dataset('isbi2012_em')    # masks are 0/255
    out = tmp_path/'em'
    r = run_cli('train', root, '--out', out, '--epochs', '1', '--size', '128', '--base-width', '8', '--depth', '3', '--bs', '4')
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out/'report.json').read_text())
    assert rep['data']['mask_encodings'] == {'0/255': 24} and rep['settings']['size'] == 128
    r = run_cli('evaluate', out, root, '--out', tmp_path/'em.json')
    assert r.returncode == 0, r.stderr[-2000:]
    scores = json.loads((tmp_path/'em.json').read_text())
    assert scores['images'] == 24          # scored at the full 512x512 resolution against the 0/255 masks
    for c in ('background', 'object'): assert 0 <= scores['per_class'][c]['recall'] <= 1

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
