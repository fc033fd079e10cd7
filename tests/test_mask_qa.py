"Mask QA: each problem found by the decoder training uses, and its fix (`segment_lib.mask_qa`)."
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import measure

from segment_lib.data import Codes, DatasetError, read_mask_array, save_mask
from segment_lib.instances import instances_to_semantic
from segment_lib.mask_qa import (fix_0255, fix_jpeg_rgb_mask, fix_masks, mask_problems, mask_report,
                                 resize_mask_nearest, snap_to_codes)


# ------------------------------------------------------------------ mask QA: each problem and its fix
@pytest.fixture
def qa(tmp_path):
    clean = np.zeros((60, 80), np.uint8)
    for r, c in [(15, 15), (15, 50), (42, 30), (45, 62)]:
        yy, xx = np.ogrid[:60, :80]; clean[(yy - r) ** 2 + (xx - c) ** 2 <= 81] = 1
    Image.fromarray(np.full((60, 80), 128, np.uint8)).save(tmp_path/'image.png')
    return tmp_path, clean


def kinds(path, **kw): return [p.kind for p in mask_problems(path, **kw)]


def assert_recovers(fixed, clean, share):
    "`fixed` agrees with `clean` and recovers at least `share` of the pixels the trivial all-background mask gets wrong."
    agreement, baseline = (fixed == clean).mean(), (clean == 0).mean()
    assert agreement > baseline + share * (1 - baseline), (agreement, baseline)


def test_qa_clean_0255_antialiased(qa):
    d, clean = qa
    save_mask(clean, d/'good.png'); assert kinds(d/'good.png', image_path=d/'image.png') == []
    save_mask(clean * 255, d/'m.png'); assert kinds(d/'m.png') == ['0255']
    assert (fix_0255(read_mask_array(d/'m.png')) == clean).all()
    Image.fromarray(clean * 255).resize((40, 30), Image.BILINEAR).resize((80, 60), Image.BILINEAR).save(d/'aa.png')
    assert kinds(d/'aa.png') == ['antialiased']
    fixed = snap_to_codes(read_mask_array(d/'aa.png'))
    assert set(np.unique(fixed)) == {0, 1} and kinds_after(d, fixed) == []
    assert_recovers(fixed, clean, 0.85)


def kinds_after(d, arr):
    save_mask(arr, d/'after.png', overwrite=True)
    return kinds(d/'after.png')


def test_qa_jpeg_colour_mask(qa):
    d, clean = qa
    colors = [(0, 0, 0), (0, 200, 60)]
    Image.fromarray(np.asarray(colors, np.uint8)[clean]).save(d/'c.jpg', quality=75)
    assert kinds(d/'c.jpg', codes=Codes(['background', 'object'], colors)) == ['jpeg', 'off_palette']
    fixed = fix_jpeg_rgb_mask(read_mask_array(d/'c.jpg'), colors)
    assert kinds_after(d, fixed) == []
    assert_recovers(fixed, clean, 0.97)
    assert kinds(d/'c.jpg') == ['jpeg', 'rgb']                                                    # no colours in the codes


def test_qa_instance_ids_outside_codes_size_empty_full_unreadable(qa):
    d, clean = qa
    ids = measure.label(clean).astype(np.uint8)
    Image.fromarray(ids).save(d/'ids.png')
    assert kinds(d/'ids.png') == ['instance_ids']
    assert (instances_to_semantic(read_mask_array(d/'ids.png')) == clean).all()
    save_mask(ids, d/'ids16.png', instances=True); assert kinds(d/'ids16.png') == []                         # 16-bit ids are fine
    save_mask(clean * 3, d/'three.png'); assert kinds(d/'three.png') == ['outside_codes']
    assert kinds(d/'three.png', codes=['bg', 'a', 'b', 'c']) == []
    save_mask(clean[::2, ::2], d/'small.png'); assert kinds(d/'small.png', image_path=d/'image.png') == ['size']
    assert resize_mask_nearest(read_mask_array(d/'small.png'), (60, 80)).shape == (60, 80)
    save_mask(np.zeros_like(clean), d/'empty.png'); assert kinds(d/'empty.png') == ['empty']
    save_mask(np.ones_like(clean), d/'full.png'); assert kinds(d/'full.png') == ['full']
    (d/'broken.png').write_bytes(b'not a png'); assert kinds(d/'broken.png') == ['unreadable']
    p = mask_problems(d/'small.png', image_path=d/'image.png')[0]
    assert 'small.png' in p.message and 'resize_mask_nearest' in p.message and p.fix == 'resize_mask_nearest'


def test_fix_masks_writes_new_folder_only(qa):
    d, clean = qa
    (d/'masks').mkdir(); (d/'images').mkdir()
    for name, arr in [('a', clean * 255), ('b', clean), ('c', clean * 3)]:
        save_mask(arr, d/'masks'/f'{name}.png'); shutil.copy(d/'image.png', d/'images'/f'{name}.png')
    before = {p.name: p.read_bytes() for p in (d/'masks').iterdir()}
    report = mask_report(d)
    assert sorted(report.kind) == ['0255', 'outside_codes']
    done = fix_masks(d, d/'fixed')
    assert dict(zip(done['mask'], done.action)) == {'a.png': 'fixed', 'b.png': 'copied', 'c.png': 'left for you'}
    assert {p.name: p.read_bytes() for p in (d/'masks').iterdir()} == before                      # originals untouched
    assert (read_mask_array(d/'fixed'/'a.png') == clean).all()
    with pytest.raises(DatasetError, match='new folder'): fix_masks(d, d/'masks')
