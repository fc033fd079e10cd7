"Bad inputs, file formats, atomic writing and real human-labelled masks for `segment_lib.measure`."
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from skimage.draw import disk, ellipse

from segment_lib.data import DatasetError, read_mask_array, save_mask
from segment_lib.instances import label_objects
from segment_lib.measure import measure_objects, summarize_objects, measure_folder, plot_size_distribution

from conftest import shared_dataset


def _two_disks(shape=(64, 64)):
    "Instance mask with two separate disks (ids 1 and 2)."
    m = np.zeros(shape, np.uint16)
    m[disk((20, 20), 8)] = 1
    m[disk((44, 44), 5)] = 2
    return m


@pytest.mark.parametrize('angle', [-60, -30, 0, 30, 60, 89])
def test_orientation_counter_clockwise_from_horizontal(angle):
    m = np.zeros((101, 101), np.uint8)
    m[ellipse(50, 50, 8, 30, rotation=np.deg2rad(angle))] = 1
    got = measure_objects(m).orientation[0]
    diff = (got - angle + 90) % 180 - 90          # orientation is defined modulo 180 degrees
    assert abs(diff) < 2, (angle, got)


def test_units_scale_lengths_and_areas():
    m = _two_disks()
    px, nm = measure_objects(m), measure_objects(m, pixel_size=20, unit='nm')
    assert np.allclose(nm.area, px.area * 400)
    for col in ('equivalent_diameter', 'perimeter', 'major_axis', 'minor_axis', 'centroid_x', 'centroid_y'):
        assert np.allclose(nm[col], px[col] * 20), col
    assert np.allclose(nm.eccentricity, px.eccentricity) and np.allclose(nm.orientation, px.orientation)
    s = summarize_objects(nm, m.shape)
    assert s['unit'] == 'nm' and np.isclose(s['density_per_mm2'], 2 / (64 * 64 * 20**2) * 1e12)


def test_instance_ids_are_kept_and_binary_masks_labelled():
    m = _two_disks()
    m[m == 2] = 7                                   # ids need not be consecutive
    assert measure_objects(m).label.tolist() == [1, 7]
    assert len(measure_objects(m > 0)) == 2 and len(measure_objects((m > 0).astype(np.uint8) * 255)) == 2
    with pytest.raises(ValueError, match='negative values'): measure_objects(m.astype(np.int32) - 1)
    with pytest.raises(ValueError, match='one HxW mask'): measure_objects(np.zeros((4, 4, 3), np.uint8))


def test_min_size_applies_to_instances_too():
    m = _two_disks()
    small = int((m == 2).sum())
    labels = label_objects(m > 0, min_size=small + 1)
    assert labels.max() == 1


def test_plot_size_distribution_compares_tables():
    import matplotlib.pyplot as plt
    t = measure_objects(_two_disks(), 0.5, 'um')
    fig = plot_size_distribution({'a': t, 'b': t.iloc[:1]}, column='area')
    assert len(fig.axes[0].patches) == 2 and 'um²' in fig.axes[0].get_xlabel()
    empty = plot_size_distribution(measure_objects(np.zeros((8, 8), np.uint8)))   # no objects: still a figure
    assert empty.axes
    plt.close('all')


def _folder(tmp_path, masks):
    d = tmp_path/'masks'; d.mkdir()
    for name, arr in masks.items():
        if name.endswith(('.tif', '.tiff')): tifffile.imwrite(d/name, arr)
        else: Image.fromarray(arr).save(d/name)
    return d


def test_measure_folder_encodings(tmp_path):
    inst = _two_disks()
    binary255 = ((inst > 0) * 255).astype(np.uint8)
    classes = np.zeros((64, 64), np.uint8); classes[inst == 1] = 2; classes[inst == 2] = 1
    d = _folder(tmp_path, {'a.tif': inst, 'b.png': binary255, '.hidden.png': binary255, 'c.png': classes})
    summary = measure_folder(d, tmp_path/'out.csv', progress=False)
    assert summary.image.tolist() == ['a', 'b', 'c'] and summary['count'].tolist() == [2, 2, 2]
    by_class = measure_folder(d, tmp_path/'class1.csv', class_index=1, progress=False)
    assert by_class.set_index('image').loc['c', 'count'] == 1
    table = pd.read_csv(tmp_path/'out.csv')
    assert set(table.image) == {'a', 'b', 'c'} and (table.unit == 'px').all()


def test_measure_folder_empty_image_still_gets_a_summary_row(tmp_path):
    d = _folder(tmp_path, {'blank.png': np.zeros((16, 16), np.uint8), 'one.png': (_two_disks() > 0).astype(np.uint8)})
    summary = measure_folder(d, tmp_path/'o.csv', progress=False)
    assert summary.set_index('image').loc['blank', 'count'] == 0
    assert len(pd.read_csv(tmp_path/'o.csv')) == 2


def test_measure_folder_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match='not a folder'): measure_folder(tmp_path/'nope', tmp_path/'o.csv')
    (tmp_path/'empty').mkdir()
    with pytest.raises(DatasetError, match='no mask files'): measure_folder(tmp_path/'empty', tmp_path/'o.csv')
    rgb = _folder(tmp_path, {'x.png': np.zeros((8, 8, 3), np.uint8) + np.array([255, 0, 0], np.uint8)})
    with pytest.raises(DatasetError, match=r'x\.png: found a colour'): measure_folder(rgb, tmp_path/'o.csv', progress=False)
    frac = tmp_path/'frac'; frac.mkdir(); tifffile.imwrite(frac/'f.tif', np.full((8, 8), 0.5, np.float32))
    with pytest.raises(DatasetError, match=r'f\.tif: found fractional'): measure_folder(frac, tmp_path/'o.csv', progress=False)
    dup = tmp_path/'dup'; dup.mkdir()
    save_mask(_two_disks(), dup/'s.png'); save_mask(_two_disks(), dup/'s.tif')
    with pytest.raises(DatasetError, match='several masks'): measure_folder(dup, tmp_path/'o.csv', progress=False)
    assert not (tmp_path/'o.csv').exists()


def test_measure_folder_images_must_match(tmp_path):
    d = _folder(tmp_path, {'a.png': (_two_disks() > 0).astype(np.uint8)})
    imgs = tmp_path/'images'; imgs.mkdir()
    with pytest.raises(DatasetError, match='no image files'):
        measure_folder(d, tmp_path/'o.csv', images_dir=imgs, progress=False)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(imgs/'b.png')      # an image, but not the mask's
    with pytest.raises(DatasetError, match=r'a\.png: no image a\.\*'):
        measure_folder(d, tmp_path/'o.csv', images_dir=imgs, progress=False)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(imgs/'a.png')
    with pytest.raises(DatasetError, match='mask is 64x64'):
        measure_folder(d, tmp_path/'o.csv', images_dir=imgs, progress=False)
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(imgs/'a.png')
    measure_folder(d, tmp_path/'o.csv', images_dir=imgs, progress=False)
    assert (pd.read_csv(tmp_path/'o.csv').mean_intensity == 9).all()


def test_csv_is_never_half_written(tmp_path, monkeypatch):
    d = _folder(tmp_path, {'a.png': (_two_disks() > 0).astype(np.uint8)})
    out = tmp_path/'o.csv'
    out.write_text('analysed results\n')
    with pytest.raises(FileExistsError, match='left untouched'): measure_folder(d, out, progress=False)
    real_to_csv = pd.DataFrame.to_csv
    def crash_midway(self, path, **kwargs):
        Path(path).write_text('label,area\n1,')             # a partial file, then the disk "fills up"
        raise OSError('No space left on device')
    monkeypatch.setattr(pd.DataFrame, 'to_csv', crash_midway)
    with pytest.raises(OSError, match='No space left'): measure_folder(d, out, overwrite=True, progress=False)
    monkeypatch.setattr(pd.DataFrame, 'to_csv', real_to_csv)
    assert out.read_text() == 'analysed results\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['masks', 'o.csv']   # no temporary file left
    measure_folder(d, out, overwrite=True, progress=False)
    assert len(pd.read_csv(out)) == 2


def test_real_nuclei_instances(tmp_path):
    "Human-labelled DSB2018 nuclei bundled in data/nuclei: 16-bit instance ids, many image sizes, RGBA images."
    src = Path(__file__).resolve().parents[1]/'data'/'nuclei'
    masks = sorted((src/'masks').glob('*.png'))
    summary = measure_folder(src, tmp_path/'nuclei.csv', pixel_size=0.5, unit='um', images_dir=src/'images', min_size=0, progress=False)
    table = pd.read_csv(tmp_path/'nuclei.csv')
    merged = 0
    for m, row in zip(masks, summary.itertuples()):
        ids = read_mask_array(m)
        assert row.image == m.stem and row.count == len(np.unique(ids[ids > 0])), m.name
        assert table[table.image == m.stem].area_px.sum() == (ids > 0).sum()
        assert (row.height, row.width) == ids.shape
        merged += len(measure_objects(ids > 0))
    assert (len(masks), int(summary['count'].sum()), merged) == (39, 1771, 1364)   # the semantic masks merge 407 touching nuclei
    assert {'mean_intensity_0', 'mean_intensity_3'} <= set(table.columns)   # RGBA: one column per channel
    assert (table.eccentricity.between(0, 1)).all() and (table.solidity.between(0, 1.0001)).all()
    default = measure_folder(src, tmp_path/'default.csv', progress=False)       # min_size 16: only a 4-px sliver cut by a crop edge goes
    assert int(default['count'].sum()) == 1770


def test_real_em_membranes_0_255():
    "ISBI 2012 EM masks are 0/255 (255 = cell interior): measured as a binary mask."
    mask_path = sorted((shared_dataset('isbi2012_em')/'masks').glob('*.png'))[0]
    raw = read_mask_array(mask_path)
    assert set(np.unique(raw).tolist()) <= {0, 255}
    table = measure_objects(raw, pixel_size=4, unit='nm')
    assert len(table) == label_objects(raw == 255).max() > 10
    s = summarize_objects(table, raw.shape)
    assert 0.3 < s['area_fraction'] < 1 and s['density_per_mm2'] > 0


def test_split_touching_keeps_thin_lines_whole():
    line = np.zeros((9, 20), np.uint8); line[4, 3:16] = 1                  # 13 px long, 1 px wide
    assert label_objects(line, split=True).max() == 1


def test_multiclass_masks_need_a_class(tmp_path):
    d = tmp_path/'pred'; (d/'masks').mkdir(parents=True)
    m = np.zeros((32, 32), np.uint8); m[2:8, 2:8] = 1; m[12:18, 2:8] = 1; m[2:8, 20:26] = 2; m[20:26, 20:26] = 2
    save_mask(m, d/'masks'/'a.png'); (d/'codes.txt').write_text('background\ncell\nnucleus\n')
    with pytest.raises(DatasetError, match='--class-index'):
        measure_folder(d/'masks', tmp_path/'o.csv', progress=False)
    summary = measure_folder(d/'masks', tmp_path/'o.csv', class_index=2, progress=False)
    assert summary['count'].tolist() == [2]


@pytest.mark.parametrize('ps', [1.0, 0.25])
def test_feret_and_circularity_on_known_shapes(ps):
    m = np.zeros((80, 80), np.uint16)
    m[disk((20, 20), 10)] = 1; m[45:55, 5:15] = 2; m[10:15, 40:70] = 3
    d, sq, rect = (r for _, r in measure_objects(m, pixel_size=ps, unit='um').iterrows())
    assert np.isclose(d.feret_min, 19 * ps) and abs(d.feret_max - 20 * ps) < 1.5 * ps
    assert abs(d.circularity - 1) < 0.05
    assert np.isclose(sq.feret_min, 10 * ps) and np.isclose(sq.feret_max, 10 * np.sqrt(2) * ps)
    assert np.isclose(rect.feret_min, 5 * ps) and np.isclose(rect.aspect_ratio, np.hypot(5, 30) / 5)
    assert d.circularity > sq.circularity > rect.circularity


@pytest.mark.parametrize('angle', [0, 30, 45, 70])
def test_feret_of_rotated_rectangle_is_rotation_invariant(angle):
    from skimage.draw import polygon
    m = np.zeros((120, 120), np.uint8)
    a = np.deg2rad(angle); half = np.array([[-20, -6], [20, -6], [20, 6], [-20, 6]], float)
    rot = half @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    m[polygon(rot[:, 1] + 60, rot[:, 0] + 60, m.shape)] = 1
    t = measure_objects(m).iloc[0]
    assert abs(t.feret_max - np.hypot(40, 12)) < 2.5 and abs(t.feret_min - 12) < 2.5, (t.feret_max, t.feret_min)
    assert t.feret_min <= t.feret_max


def test_d10_d50_d90_are_number_weighted_percentiles():
    m = np.zeros((100, 300), np.uint16)
    for k, r in enumerate(range(2, 12), 1): m[disk((50, 25 * k), r)] = k
    t = measure_objects(m, 0.5, 'um')
    s = summarize_objects(t, m.shape)
    assert np.allclose([s['D10'], s['D50'], s['D90']], np.percentile(t.equivalent_diameter, [10, 50, 90]))
    assert np.isnan(summarize_objects(measure_objects(np.zeros((5, 5), np.uint8)), (5, 5))['D90'])


def test_summary_csv_written_beside_objects(tmp_path):
    d = _folder(tmp_path, {'a.png': (_two_disks() > 0).astype(np.uint8), 'b.png': np.zeros((16, 16), np.uint8)})
    summary = measure_folder(d, tmp_path/'o.csv', pixel_size=0.5, unit='um', progress=False)
    on_disk = pd.read_csv(tmp_path/'o_summary.csv')
    assert on_disk.image.tolist() == ['a', 'b'] and on_disk['count'].tolist() == [2, 0]
    assert np.allclose(on_disk.D50.iloc[:1], summary.D50.iloc[:1])
    (tmp_path/'o.csv').unlink()
    with pytest.raises(FileExistsError, match='o_summary.csv: already exists'):
        measure_folder(d, tmp_path/'o.csv', progress=False)
    assert not (tmp_path/'o.csv').exists()


def test_pixel_size_from_tiff_metadata(tmp_path):
    sq = np.zeros((40, 40), np.uint8); sq[10:20, 10:20] = 1
    d = tmp_path/'masks'; d.mkdir()
    tifffile.imwrite(d/'ij.tif', sq, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={'unit': 'um'})
    tifffile.imwrite(d/'ome.tif', sq, ome=True, metadata={'PhysicalSizeX': 0.25, 'PhysicalSizeXUnit': 'µm',
                                                        'PhysicalSizeY': 0.25, 'PhysicalSizeYUnit': 'µm'})
    tifffile.imwrite(d/'bare.tif', sq)
    s = measure_folder(d, tmp_path/'o.csv', progress=False).set_index('image')
    assert s.loc[['ij', 'ome', 'bare'], 'pixel_size_source'].tolist() == ['imagej', 'ome', 'none']
    assert s.loc[['ij', 'ome', 'bare'], 'pixel_size'].tolist() == [0.5, 0.25, 1.0]
    t = pd.read_csv(tmp_path/'o.csv').set_index('image')
    assert t.loc[['ij', 'ome', 'bare'], 'area'].tolist() == [25.0, 6.25, 100.0]
    assert t.loc[['ij', 'ome', 'bare'], 'unit'].tolist() == ['um', 'um', 'px']
    given = measure_folder(d, tmp_path/'g.csv', pixel_size=0.1, unit='mm', progress=False)
    assert set(given.pixel_size_source) == {'given'} and set(pd.read_csv(tmp_path/'g.csv').pixel_size) == {0.1}


def test_pixel_size_from_the_image_when_the_mask_has_none(tmp_path):
    sq = np.zeros((40, 40), np.uint8); sq[10:20, 10:20] = 1
    d = _folder(tmp_path, {'a.png': sq})
    imgs = tmp_path/'images'; imgs.mkdir()
    tifffile.imwrite(imgs/'a.tif', np.zeros((40, 40), np.uint8), imagej=True, resolution=(2.0, 2.0), metadata={'unit': 'micron'})
    s = measure_folder(d, tmp_path/'o.csv', images_dir=imgs, progress=False)
    assert (s.pixel_size[0], s.unit[0], s.pixel_size_source[0]) == (0.5, 'um', 'imagej')


def test_mean_confidence_per_object(tmp_path):
    two = np.zeros((30, 30), np.uint8); two[2:8, 2:8] = 1; two[15:25, 15:25] = 1
    d = _folder(tmp_path, {'a.png': two, 'b.png': two})
    conf = tmp_path/'confidence'; conf.mkdir()
    c = np.full(two.shape, 0.99, np.float32); c[2:8, 2:8] = 0.8; c[15:25, 15:25] = 0.5
    tifffile.imwrite(conf/'a.tif', c)
    Image.fromarray(np.round(c * 255).astype(np.uint8)).save(conf/'a.png')   # both, as predict_folder writes: tif preferred
    Image.fromarray(np.round(c * 255).astype(np.uint8)).save(conf/'b.png')
    measure_folder(d, tmp_path/'o.csv', confidence_dir=conf, progress=False)
    t = pd.read_csv(tmp_path/'o.csv')
    assert np.allclose(t[t.image == 'a'].mean_confidence, [0.8, 0.5], atol=1e-6)
    assert np.allclose(t[t.image == 'b'].mean_confidence, [0.8, 0.5], atol=1 / 255)
    tifffile.imwrite(conf/'b.tif', c[:10])
    with pytest.raises(DatasetError, match='confidence map'):
        measure_folder(d, tmp_path/'o2.csv', confidence_dir=conf, progress=False)


# ---------------------------------------------------------------- defaults, and exact truth from the generators
def test_defaults_are_the_one_library_constant():
    import inspect
    from segment_lib.instances import DEFAULT_MIN_SIZE, three_class_to_instances
    from segment_lib.metrics import score_folders
    assert DEFAULT_MIN_SIZE == 16
    for f in (measure_folder, score_folders, three_class_to_instances):
        assert inspect.signature(f).parameters['min_size'].default == DEFAULT_MIN_SIZE, f.__name__
    assert inspect.signature(measure_folder).parameters['split_touching'].default is False
    assert inspect.signature(score_folders).parameters['split'].default is False


def test_measure_folder_defaults_drop_specks_and_record_the_settings(tmp_path):
    m = np.zeros((40, 40), np.uint8); m[5:15, 5:15] = 1; m[30:33, 30:33] = 1; m[20:24, 30:34] = 1   # 100, 9 and 16 px
    save_mask(m, tmp_path/'masks'/'a.png')
    summary = measure_folder(tmp_path/'masks', tmp_path/'objects.csv', progress=False)
    assert summary['count'].tolist() == [2]                                         # the 9-px speck is not counted
    assert summary[['min_size', 'split_touching']].iloc[0].tolist() == [16, False]
    on_disk = pd.read_csv(tmp_path/'objects_summary.csv')
    assert on_disk[['min_size', 'split_touching']].iloc[0].tolist() == [16, False]
    every = measure_folder(tmp_path/'masks', tmp_path/'all.csv', min_size=0, progress=False)
    assert every['count'].tolist() == [3] and every['min_size'].tolist() == [0]


def test_measure_folder_reads_instances_beside_three_class_codes(tmp_path):
    "predict_folder of a three-class model writes OUT/codes.txt (3 classes), OUT/masks (classes) and OUT/instances (ids)."
    from segment_lib.data import write_codes
    ids = _two_disks()
    write_codes(['background', 'interior', 'boundary'], tmp_path/'codes.txt')
    save_mask(ids, tmp_path/'instances'/'a.png', instances=True)
    save_mask((ids > 0).astype(np.uint8), tmp_path/'masks'/'a.png')
    summary = measure_folder(tmp_path/'instances', tmp_path/'objects.csv', progress=False)
    assert summary['count'].tolist() == [2]
    with pytest.raises(DatasetError, match='class_index'):
        measure_folder(tmp_path/'masks', tmp_path/'classes.csv', progress=False)   # classes still need a choice


@pytest.mark.parametrize('kind', ['crystals', 'cells', 'cracks'])
def test_true_masks_measure_as_the_generator_drew_them(kind):
    "Counts and areas measured on generated instance masks are the generator's own, object by object."
    from segment_lib.synthetic import COURSE_DATASETS
    for seed in range(3):
        s = COURSE_DATASETS[kind](size=128, seed=seed)
        table = measure_objects(s.instances)
        assert table['label'].tolist() == s.objects['id'].tolist()
        assert table['area_px'].tolist() == s.objects['area'].tolist()
