"""The bundled course datasets in data/ are exactly what `build_course_data` makes, and every sample's truth is consistent.

Run from the repository root: `.venv/bin/python -m pytest -q tests/test_synthetic.py`.
"""
from pathlib import Path

import numpy as np
import pytest

from segment_lib.data import read_image, read_mask_array
from segment_lib.synthetic import (COURSE_DATASETS, CODES_TXT, build_course_data, make_cells, make_cracks,
                                   make_crystals, sample_seed, write_course_dataset)

DATA = Path(__file__).resolve().parents[1] / 'data'
KINDS = list(COURSE_DATASETS)


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob('*') if p.is_file())


@pytest.fixture(scope='module')
def rebuilt(tmp_path_factory):
    root = tmp_path_factory.mktemp('course_data')
    build_course_data(root, progress=False)
    return root


@pytest.mark.parametrize('kind', KINDS)
def test_rebuild_is_identical_to_bundled(rebuilt, kind):
    ours, theirs = rebuilt / kind, DATA / kind
    assert _files(ours) == _files(theirs), f'{theirs}: file list differs from a fresh build_course_data()'
    for rel in _files(ours):
        if rel.suffix == '.png':
            a, b = read_mask_array(ours / rel), read_mask_array(theirs / rel)
            assert a.dtype == b.dtype and np.array_equal(a, b), (
                f'{theirs / rel}: pixels differ from a fresh build. A generator changed; if on purpose, rebuild data/ with '
                "build_course_data('data', overwrite=True) and commit it.")
        assert (ours / rel).read_bytes() == (theirs / rel).read_bytes(), (
            f'{theirs / rel}: same pixels but different file bytes (another Pillow/zlib build than the pinned one?)')


@pytest.mark.parametrize('kind', KINDS)
def test_bundled_truth_is_consistent(kind):
    folder = DATA / kind
    assert (folder / 'codes.txt').read_text() == 'background\nobject\n'
    names = sorted(p.name for p in (folder / 'images').glob('*.png'))
    assert names == [f'{kind}_{i:03d}.png' for i in range(40)]
    for name in names:
        image = read_image(folder / 'images' / name)
        mask = read_mask_array(folder / 'masks' / name)
        ids = read_mask_array(folder / 'instances' / name)
        assert image.dtype == np.uint8 and image.shape == ((128, 128, 3) if kind == 'cells' else (128, 128)), name
        assert mask.dtype == np.uint8 and ids.dtype == np.uint16, name
        assert set(np.unique(mask).tolist()) <= {0, 1}, name
        assert np.array_equal(mask, (ids > 0).astype(np.uint8)), f'{name}: mask != instances > 0'
        n = int(ids.max())
        assert n >= 1 and np.unique(ids).tolist() == list(range(n + 1)), f'{name}: ids not contiguous'


@pytest.mark.parametrize('make', [make_crystals, make_cells, make_cracks])
def test_generators_are_deterministic_and_use_no_global_state(make):
    np.random.seed(1)
    before = np.random.get_state()[1].copy()
    a = make(seed=123)
    np.random.seed(2)
    b = make(seed=123)
    for x, y in zip([a.image, a.mask, a.instances], [b.image, b.mask, b.instances]):
        assert np.array_equal(x, y)
    assert a.objects.equals(b.objects)
    np.random.seed(1)
    make(seed=5)
    assert np.array_equal(np.random.get_state()[1], before), 'the global NumPy random state was used'
    c = make(seed=124)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize('make', [make_crystals, make_cells, make_cracks])
@pytest.mark.parametrize('size', [48, 256])
def test_other_sizes(make, size):
    s = make(size=size, seed=7)
    assert s.image.shape[:2] == s.mask.shape == s.instances.shape == (size, size)
    assert np.array_equal(s.mask, (s.instances > 0).astype(np.uint8))
    assert s.objects['area'].tolist() == np.bincount(s.instances.ravel())[1:].tolist()


def test_density_scales_with_size():
    small = np.mean([len(make_cells(size=128, seed=s).objects) for s in range(5)])
    large = np.mean([len(make_cells(size=256, seed=s).objects) for s in range(5)])
    assert 2.5 * small < large < 5.5 * small  # 4x the area, about 4x the cells


def test_object_count_arguments():
    assert make_crystals(seed=0, n_crystals=1).instances.max() == 1
    assert make_cells(seed=0, n_cells=1).instances.max() == 1
    assert make_cracks(seed=0, n_networks=1).instances.max() >= 1


def test_sample_seed():
    assert sample_seed(0, 1) == sample_seed(0, 1)
    assert len({sample_seed(s, i) for s in range(3) for i in range(1000)}) == 3000


def test_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match='crystals, cells, cracks'):
        write_course_dataset('bubbles', tmp_path)
    assert not any(tmp_path.iterdir())


def test_refuses_to_write_over_images(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images' / 'mine.png').write_bytes(b'not really a png')
    with pytest.raises(FileExistsError, match='overwrite=True') as err:
        write_course_dataset('crystals', tmp_path, n=2, progress=False)
    assert 'mine.png' in str(err.value) and str(tmp_path / 'images') in str(err.value)
    assert [p.name for p in (tmp_path / 'images').iterdir()] == ['mine.png']  # nothing written


def test_overwrite_removes_only_own_leftovers(tmp_path):
    write_course_dataset('cracks', tmp_path, n=3, progress=False)
    (tmp_path / 'images' / 'mine.png').write_bytes(b'keep me')
    write_course_dataset('cracks', tmp_path, n=2, seed=1, overwrite=True, progress=False)
    for sub in ('masks', 'instances'):
        assert sorted(p.name for p in (tmp_path / sub).iterdir()) == ['cracks_000.png', 'cracks_001.png']
    assert sorted(p.name for p in (tmp_path / 'images').iterdir()) == ['cracks_000.png', 'cracks_001.png', 'mine.png']
    assert np.array_equal(read_image(tmp_path / 'images' / 'cracks_001.png'), make_cracks(seed=sample_seed(1, 1)).image)
    assert (tmp_path / 'codes.txt').read_text() == CODES_TXT
    assert not [p for p in tmp_path.rglob('.*')], 'temporary files left behind'


def test_progress_lines_in_a_log(tmp_path, capsys):
    "Not watched by a person (a test run, a log file), progress is a line per tenth of the work on stderr, no bar."
    write_course_dataset('cells', tmp_path, n=2, progress=True)
    assert len(list((tmp_path / 'images').iterdir())) == 2
    err = capsys.readouterr().err
    assert '2/2 images (100%)' in err and '\r' not in err


def test_readme_states_the_recipe():
    text = (DATA / 'README.md').read_text()
    assert "build_course_data('data', overwrite=True)" in text
    for kind in KINDS: assert f'data/{kind}' in text


# ---------------------------------------------------------------- cells as three classes, with void

@pytest.mark.parametrize('seed', range(6))
def test_cell_classes_are_consistent_with_instances(seed):
    "`make_cells(...).classes`: cytoplasm and nucleus fill exactly the cells, every nucleus lies inside one cell, and it is painted dark."
    s = make_cells(seed=seed)
    assert s.classes.dtype == np.uint8 and set(np.unique(s.classes).tolist()) <= {0, 1, 2}
    assert np.array_equal(s.classes > 0, s.instances > 0) and np.array_equal(s.classes > 0, s.mask > 0)
    nucleus = s.classes == 2
    ids_with_nucleus = np.unique(s.instances[nucleus])
    assert 0 not in ids_with_nucleus and len(ids_with_nucleus) >= 0.7 * s.instances.max()   # cells cut by the frame may lose theirs
    grey = s.image.astype(float).mean(-1)
    assert grey[nucleus].mean() < grey[s.classes == 1].mean() - 30 < grey[s.classes == 0].mean() - 60
    other = [make_crystals(seed=seed), make_cracks(seed=seed)]
    assert all(o.classes is None for o in other)                              # only the cells draw parts of objects

def test_void_band_and_cell_class_mask():
    from segment_lib.synthetic import CELL_CODES, cell_class_mask, void_band
    s = make_cells(seed=3)
    band = void_band(s.classes)
    mask = cell_class_mask(s)
    assert CELL_CODES == ('background', 'cytoplasm', 'nucleus', 'void')
    assert np.array_equal(mask == 3, band) and np.array_equal(mask[~band], s.classes[~band])
    from scipy import ndimage as ndi
    boundary = ndi.maximum_filter(s.classes, footprint=ndi.generate_binary_structure(2, 1)) != \
               ndi.minimum_filter(s.classes, footprint=ndi.generate_binary_structure(2, 1))
    assert np.array_equal(band, boundary)          # width 1: the pixels with a 4-neighbour of another class, both sides
    assert void_band(s.classes, 2).sum() > band.sum() and not void_band(s.classes, 0).any()
    assert np.array_equal(cell_class_mask(s, 0), s.classes)
    same_class_borders = (s.instances > 0) & (ndi.grey_dilation(s.instances, size=3) != ndi.grey_erosion(s.instances, size=3))
    assert (same_class_borders & ~band).any()                                 # where two cells touch, no void

def test_write_cell_classes(tmp_path):
    from segment_lib.data import read_codes, read_mask
    from segment_lib.synthetic import cell_class_mask, write_cell_classes
    out = write_cell_classes(tmp_path/'cc', n=3, start=5, seed=2, progress=False)
    names = sorted(p.name for p in (out/'masks').iterdir())
    assert names == ['cell_classes_005.png', 'cell_classes_006.png', 'cell_classes_007.png']
    codes = read_codes(out/'codes.txt')
    assert codes.names == ['background', 'cytoplasm', 'nucleus', 'void'] and codes.void == 3
    s = make_cells(seed=sample_seed(2, 6))
    assert np.array_equal(read_image(out/'images'/names[1]), s.image)
    assert np.array_equal(read_mask(out/'masks'/names[1], codes), cell_class_mask(s))
    assert read_mask_array(out/'masks'/names[1]).dtype == np.uint8        # plain indices, as fastai's MaskBlock reads them
    from PIL import Image
    assert Image.open(out/'masks'/names[1]).mode == 'L'
    with pytest.raises(FileExistsError, match='overwrite=True'): write_cell_classes(out, n=1, progress=False)
