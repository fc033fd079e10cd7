"Every image and mask encoding users really have, read through segment_lib.data, plus the real micrographs in data/nuclei."
import numpy as np, pytest, tifffile
from PIL import Image
from pathlib import Path
from segment_lib.data import Codes, DatasetError, image_to_rgb, read_image, read_mask, read_mask_array, save_mask
from segment_lib.check import check_dataset
from conftest import shared_dataset

NUCLEI = Path(__file__).resolve().parents[1]/'data'/'nuclei'
TRUTH = np.zeros((24, 32), np.uint8); TRUTH[4:14, 6:20] = 1; TRUTH[16:22, 22:30] = 1

def _palette_png(path, classes):
    im = Image.fromarray(classes, mode='L').convert('P'); im.putpalette([0, 0, 0, 0, 255, 0] + [0]*762); im.save(path)

@pytest.mark.parametrize('encoding', ['01', '0255', 'palette', 'rgb', 'instance16png', 'instance16tif', 'tif01', 'bool1bit'])
def test_mask_encodings(tmp_path, encoding):
    codes = None
    if encoding == '01': Image.fromarray(TRUTH).save(p := tmp_path/'m.png')
    elif encoding == '0255': Image.fromarray(TRUTH*255).save(p := tmp_path/'m.png')
    elif encoding == 'palette': _palette_png(p := tmp_path/'m.png', TRUTH)
    elif encoding == 'rgb':
        rgb = np.zeros(TRUTH.shape + (3,), np.uint8); rgb[TRUTH == 1] = (0, 255, 0)
        Image.fromarray(rgb).save(p := tmp_path/'m.png'); codes = Codes(['background', 'cell'], [(0, 0, 0), (0, 255, 0)])
    elif encoding.startswith('instance16'):
        inst = np.zeros(TRUTH.shape, np.uint16); inst[4:14, 6:13] = 1000; inst[4:14, 13:20] = 2; inst[16:22, 22:30] = 40000
        p = tmp_path/('m.png' if encoding.endswith('png') else 'm.tif')
        Image.fromarray(inst).save(p) if p.suffix == '.png' else tifffile.imwrite(p, inst)
    elif encoding == 'tif01': tifffile.imwrite(p := tmp_path/'m.tif', TRUTH)
    elif encoding == 'bool1bit': Image.fromarray(TRUTH.astype(bool)).save(p := tmp_path/'m.png')
    got = read_mask(p, codes)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, TRUTH)

def test_multiclass_palette_and_codes(tmp_path):
    classes = np.arange(4, dtype=np.uint8).repeat(8)[None].repeat(5, 0)
    _palette_png(p := tmp_path/'m.png', classes)
    np.testing.assert_array_equal(read_mask(p, Codes(['bg', 'a', 'b', 'c'])), classes)
    with pytest.raises(DatasetError, match='outside the codes'): read_mask(p)   # binary default: 2 and 3 are wrong

def _write_image(tmp_path, kind):
    "Write one image of `kind`; return its path and the pixels `read_image` must give back."
    rng = np.random.default_rng(0)
    if kind == 'grey8': arr = rng.integers(0, 256, (20, 30), dtype=np.uint8); Image.fromarray(arr).save(p := tmp_path/'i.png')
    elif kind == 'grey16png': arr = rng.integers(0, 65535, (20, 30)).astype(np.uint16); Image.fromarray(arr).save(p := tmp_path/'i.png')
    elif kind == 'grey16tif': arr = rng.integers(0, 4096, (20, 30)).astype(np.uint16); tifffile.imwrite(p := tmp_path/'i.tif', arr)
    elif kind == 'rgb': arr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8); Image.fromarray(arr).save(p := tmp_path/'i.png')
    elif kind == 'rgba': arr = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8); Image.fromarray(arr).save(p := tmp_path/'i.png')
    elif kind == 'rgbtif': arr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8); tifffile.imwrite(p := tmp_path/'i.tiff', arr)
    elif kind == 'greyjpg':   # a flat grey JPEG comes back exactly: nothing for the compression to change
        arr = np.full((20, 30), 128, np.uint8); Image.fromarray(arr).save(p := tmp_path/'i.jpg', quality=95)
    elif kind == 'tif_chw':   # channel-first TIFF, as some microscopes write: read channels last
        chw = rng.integers(0, 256, (3, 20, 30), dtype=np.uint8); tifffile.imwrite(p := tmp_path/'i.tif', chw, photometric='minisblack')
        arr = np.moveaxis(chw, 0, -1)
    return p, arr

IMAGE_KINDS = ['grey8', 'grey16png', 'grey16tif', 'rgb', 'rgba', 'rgbtif', 'greyjpg', 'tif_chw']

@pytest.mark.parametrize('kind', IMAGE_KINDS)
def test_image_types(tmp_path, kind):
    p, expected = _write_image(tmp_path, kind)
    img = read_image(p)
    assert img.dtype == expected.dtype
    np.testing.assert_array_equal(img, expected)
    rgb = image_to_rgb(img)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8

@pytest.mark.parametrize('kind', ['grey16png', 'grey16tif'])
def test_16bit_images_use_the_full_range(tmp_path, kind):
    "16-bit images are stretched between percentiles, not divided by 256 (a 12-bit camera would come out dark)."
    rgb = image_to_rgb(read_image(_write_image(tmp_path, kind)[0]))
    assert rgb.max() == 255 and rgb.min() == 0

@pytest.mark.parametrize('kind', ['grey8', 'rgb', 'greyjpg'])
def test_8bit_images_are_never_stretched(tmp_path, kind):
    p, expected = _write_image(tmp_path, kind)
    rgb = image_to_rgb(read_image(p))
    np.testing.assert_array_equal(rgb, expected if expected.ndim == 3 else np.repeat(expected[..., None], 3, -1))

def test_save_mask_never_jpeg_and_atomic(tmp_path):
    with pytest.raises(ValueError, match='never .jpg'): save_mask(TRUTH, tmp_path/'m.jpg')
    save_mask(TRUTH, tmp_path/'m.png')
    with pytest.raises(FileExistsError, match='left untouched'): save_mask(TRUTH*0, tmp_path/'m.png')
    np.testing.assert_array_equal(read_mask(tmp_path/'m.png'), TRUTH)
    big = np.zeros((4, 4), np.uint32); big[0, 0] = 70000
    with pytest.raises(ValueError, match='save as .tif'): save_mask(big, tmp_path/'big.png')
    assert tifffile.imread(save_mask(big, tmp_path/'big.tif'))[0, 0] == 70000

def test_isbi_em_real(tmp_path):
    root = shared_dataset('isbi2012_em')
    s = check_dataset(root)
    assert len(s.pairs) == 24 and s.mask_encodings == {'0/255': 24}
    assert 0.15 < s.class_fractions['background'] < 0.3      # membranes are about 22% of pixels

def test_bundled_nuclei():
    "The real DSB2018 micrographs in data/nuclei: RGBA images of many sizes, 16-bit instance masks, mixed contrast."
    s = check_dataset(NUCLEI)
    assert len(s.pairs) == 39 and len(s.image_sizes) == 8
    assert s.image_types == {'uint8 RGBA': 39}
    assert s.mask_encodings == {'instance': 38, 'index': 1}      # one image holds a single nucleus: ids 0/1
    assert s.contrast == {'brighter': 26, 'darker': 13}          # fluorescence 26; stained tissue 9 + brightfield 4
    assert [p.kind for p in s.notes] == ['mixed_contrast']
    img, msk = s.pairs[0]
    ids = read_mask_array(msk)
    assert ids.dtype == np.uint16 and ids.max() == 70           # 00ae65c1..., stained tissue: 70 nuclei
    np.testing.assert_array_equal(read_mask(msk), (ids > 0).astype(np.uint8))
    assert image_to_rgb(read_image(img)).shape == (*ids.shape, 3)

def test_dsb2018_nuclei_shared():
    "The 150-image DSB2018 subset next to the repository (skipped, with its reason, where it is absent)."
    root = shared_dataset('dsb2018_nuclei')
    s = check_dataset(root)
    assert len(s.pairs) == 150 and len(s.image_sizes) == 9
    assert s.image_types == {'uint8 RGBA': 150}
    assert s.mask_encodings == {'instance': 149, 'index': 1}


# ---------------------------------------------------------------- the void label

@pytest.mark.parametrize('lines, void', [('background\nobject\n', None), ('background\ncytoplasm\nnucleus\nvoid\n', 3),
                                         ('Void\nroad\ncar\n', 0), ('sky\nVOID\nroad\n', 1),
                                         ('background 0 0 0\ncell 255 0 0\nvoid 255 255 255\n', 2)])
def test_codes_void_parsing(tmp_path, lines, void):
    "A class named void, in any case and on any line (CamVid has Void at 30 of 32), is `Codes.void`; colour lines too."
    from segment_lib.data import read_codes, dataset_codes
    (tmp_path/'codes.txt').write_text(lines)
    assert read_codes(tmp_path/'codes.txt').void == void == dataset_codes(tmp_path).void
    assert Codes(['background', 'voids', 'avoid']).void is None          # the whole name, not a part of it

@pytest.mark.parametrize('lines, message', [('background\nvoid\nVoid\n', '2 classes are named void'),
                                            ('background\nvoid\n', 'found 1 class besides void'),
                                            ('void\n', 'found 0 class besides void')])
def test_codes_void_refused(tmp_path, lines, message):
    from segment_lib.data import read_codes
    (tmp_path/'codes.txt').write_text(lines)
    with pytest.raises(DatasetError, match=message) as err: read_codes(tmp_path/'codes.txt')
    assert str(tmp_path/'codes.txt') in str(err.value)

def test_void_masks_read_and_check(tmp_path):
    "Masks holding the void value read as that class index, and `check_dataset` counts void pixels like any class."
    from segment_lib.data import read_codes, save_image
    mask = np.zeros((32, 32), np.uint8); mask[8:24, 8:24] = 1; mask[7, 8:24] = 2      # a void row along one edge
    for i in range(2):
        save_image(np.zeros((32, 32, 3), np.uint8), tmp_path/'images'/f'{i}.png'); save_mask(mask, tmp_path/'masks'/f'{i}.png')
    (tmp_path/'codes.txt').write_text('background\ncell\nvoid\n')
    np.testing.assert_array_equal(read_mask(tmp_path/'masks'/'0.png', read_codes(tmp_path/'codes.txt')), mask)
    summary = check_dataset(tmp_path)
    assert summary.codes.void == 2 and summary.class_pixels.tolist() == [2 * (32 * 32 - 256 - 16), 2 * 256, 2 * 16]
