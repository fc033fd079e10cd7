"Import formats and bad inputs (`segment_lib.annotations`) and the rasterisation rules they share (`segment_lib.regions`)."
import base64, io, json, math, shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segment_lib.data import DatasetError, read_codes, read_mask_array, save_mask
from segment_lib.check import check_dataset
from segment_lib.annotations import import_annotations, read_coco, read_labelme
from segment_lib.regions import polygon_mask, rle_decode, rle_encode, rle_string_to_counts


H, W = 24, 32
# label, polygon (x, y) corners; the last square is drawn over a corner of the first one
SCENE = [('cell', [(2, 2), (6, 2), (6, 6), (2, 6)]),
         ('cell', [(10, 2), (18, 2), (10, 10)]),
         ('debris', [(20, 12), (27, 12), (27, 17), (20, 17)]),
         ('debris', [(4, 4), (8, 4), (8, 8), (4, 8)])]
CODES = ['background', 'cell', 'debris']
EXPECTED_PIXELS = [H * W - 16 - 45 - 48 - 25, 16 + 45, 48 + 25]     # worked out by hand, see 06d_annotations
EXPECTED_OBJECTS = [16, 25, 45, 48]


@pytest.fixture
def scene(tmp_path):
    "A folder with one 24x32 grey image, scene.png."
    (tmp_path/'images').mkdir()
    Image.fromarray((np.arange(H * W).reshape(H, W) % 251).astype(np.uint8)).save(tmp_path/'images'/'scene.png')
    return tmp_path


def assert_scene(out, instances=True):
    "The imported scene holds exactly the hand-computed masks (with instances, or none at all), and passes check_dataset."
    sem = read_mask_array(Path(out)/'masks'/'scene.png')
    assert np.bincount(sem.ravel(), minlength=3).tolist() == EXPECTED_PIXELS
    assert read_codes(Path(out)/'codes.txt').names == CODES
    assert (Path(out)/'instances'/'scene.png').exists() == instances
    if instances:
        ids = read_mask_array(Path(out)/'instances'/'scene.png')
        assert ids.dtype == np.uint16
        assert sorted(np.bincount(ids.ravel())[1:].tolist()) == EXPECTED_OBJECTS
    check_dataset(out)                                                                    # raises on any problem


# ------------------------------------------------------------------ rasterisation rules
def test_polygon_convention_square_and_triangle():
    assert polygon_mask([(2, 2), (6, 2), (6, 6), (2, 6)], (10, 10)).sum() == 25          # centres 2..6 inclusive
    assert polygon_mask([(2.5, 2.5), (5.5, 2.5), (5.5, 5.5), (2.5, 5.5)], (10, 10)).sum() == 9   # centres 3..5
    assert polygon_mask([(0, 0), (8, 0), (0, 8)], (12, 12)).sum() == 45                  # x + y <= 8
    assert polygon_mask([(0, 0), (8, 0), (8, 8), (0, 8)], (5, 5)).sum() == 25            # clipped to the image


def test_rle_hand_made():
    m = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]], bool)
    assert rle_encode(m, compressed=False)['counts'] == [2, 5, 5]                       # column-major
    assert (rle_decode([2, 5, 5], (3, 4)) == m).all()
    assert rle_string_to_counts(':25Oo2') == [10, 2, 5, 1, 100]                          # deltas, negative delta, 2 chars
    big = np.zeros((300, 200), bool); big[10:250, 30:170] = True                        # runs > 1000 need 3 chars
    enc = rle_encode(big)
    assert isinstance(enc['counts'], str) and (rle_decode(enc['counts'], enc['size']) == big).all()
    with pytest.raises(ValueError, match='add up to'): rle_decode([2, 5, 5], (4, 4))


# ------------------------------------------------------------------ every import format
def test_labelme_all_shape_types(scene):
    shapes = [dict(label=l, points=[list(p) for p in pts], shape_type='polygon', group_id=None) for l, pts in SCENE]
    shapes[2].update(points=[[27, 17], [20, 12]], shape_type='rectangle')                 # corners in either order
    d = dict(shapes=shapes, imagePath='scene.png', imageData=None, imageHeight=H, imageWidth=W)
    (scene/'ann').mkdir()
    (scene/'ann'/'scene.json').write_text(json.dumps(d))
    summary = import_annotations('labelme', scene/'ann', scene/'images', scene/'out', progress=False)
    assert summary['images'] == 1 and summary['objects'] == 4 and summary['classes'] == CODES
    assert_scene(scene/'out')


def test_labelme_circle_group_mask_and_embedded_image(tmp_path):
    img = np.full((20, 20), 90, np.uint8)
    buf = io.BytesIO(); Image.fromarray(img).save(buf, format='PNG')
    bits = np.zeros((3, 4), bool); bits[1, :] = True
    mbuf = io.BytesIO(); Image.fromarray(bits).save(mbuf, format='PNG')
    shapes = [dict(label='cell', points=[[5, 5], [7, 5]], shape_type='circle', group_id=None),          # r = 2: 13 px
              dict(label='cell', points=[[12, 2], [14, 2], [14, 4]], shape_type='polygon', group_id=3),
              dict(label='cell', points=[[12, 8], [14, 8], [14, 10]], shape_type='polygon', group_id=3),  # same object
              dict(label='cell', points=[[2, 15], [5, 17]], shape_type='mask', group_id=None,
                   mask=base64.b64encode(mbuf.getvalue()).decode()),
              dict(label='cell', points=[[1, 1], [9, 9]], shape_type='line', group_id=None)]
    d = dict(shapes=shapes, imagePath='C:\\data\\pics\\embedded.png', imageData=base64.b64encode(buf.getvalue()).decode(),
             imageHeight=20, imageWidth=20)
    (tmp_path/'embedded.json').write_text(json.dumps(d))
    with pytest.warns(UserWarning, match='not areas'):
        summary = import_annotations('labelme', tmp_path/'embedded.json', None, tmp_path/'out', progress=False)
    assert summary['classes'] == ['background', 'cell'] and summary['objects'] == 3
    assert (read_mask_array(tmp_path/'out'/'images'/'embedded.png') == img).all()            # written from imageData
    ids = read_mask_array(tmp_path/'out'/'instances'/'embedded.png')
    assert sorted(np.bincount(ids.ravel())[1:].tolist()) == [4, 12, 13]                      # 6 + 6 grouped, 4 mask px
    assert ids[16, 2:6].tolist() == [3, 3, 3, 3]                                              # mask placed at row 15 + 1


def test_coco_polygons_and_both_rle_kinds(scene):
    bits = [polygon_mask(p, (H, W)) for _, p in SCENE]
    anns = [dict(id=1, image_id=3, category_id=5, segmentation=[np.ravel(SCENE[0][1]).tolist()]),
            dict(id=2, image_id=3, category_id=5, segmentation=rle_encode(bits[1], compressed=False), iscrowd=1),
            dict(id=3, image_id=3, category_id=9, segmentation=rle_encode(bits[2]), iscrowd=1),
            dict(id=4, image_id=3, category_id=9, segmentation=[np.ravel(SCENE[3][1]).tolist()]),
            dict(id=5, image_id=3, category_id=9, segmentation=[], bbox=[0, 0, 2, 2])]        # box only: skipped
    d = dict(images=[dict(id=3, file_name='scene.png', height=H, width=W), dict(id=4, file_name='nothing.png', height=H, width=W)],
             categories=[dict(id=9, name='debris'), dict(id=5, name='cell')], annotations=anns)    # codes follow the ids
    shutil.copy(scene/'images'/'scene.png', scene/'images'/'nothing.png')
    (scene/'coco.json').write_text(json.dumps(d))
    with pytest.warns(UserWarning, match=r'1 shapes are not areas.*box only \(debris\)'):
        summary = import_annotations('coco', scene/'coco.json', scene/'images', scene/'out', progress=False)
    assert summary['images'] == 2
    assert_scene(scene/'out')
    assert read_mask_array(scene/'out'/'masks'/'nothing.png').max() == 0                     # listed, no shapes: empty


def test_coco_bad_category_and_image(scene):
    d = dict(images=[dict(id=1, file_name='scene.png', height=H, width=W)], categories=[dict(id=1, name='cell')],
             annotations=[dict(id=8, image_id=1, category_id=2, segmentation=[[0, 0, 4, 0, 4, 4]])])
    (scene/'coco.json').write_text(json.dumps(d))
    with pytest.raises(DatasetError, match='annotation 8 has category_id 2'): read_coco(scene/'coco.json')
    d['annotations'][0].update(category_id=1, image_id=5)
    (scene/'coco.json').write_text(json.dumps(d))
    with pytest.raises(DatasetError, match='refers to image_id 5'): read_coco(scene/'coco.json')


def test_cvat_z_order_box_ellipse_and_mask(scene):
    def pts(p): return ';'.join(f'{x},{y}' for x, y in p)
    xml = f"""<annotations><version>1.1</version>
      <image id="0" name="scene.png" width="{W}" height="{H}">
        <polygon label="debris" points="{pts(SCENE[3][1])}" z_order="2"/>
        <polygon label="cell" points="{pts(SCENE[0][1])}" z_order="0"/>
        <polygon label="cell" points="{pts(SCENE[1][1])}" z_order="0"/>
        <box label="debris" xtl="20" ytl="12" xbr="27" ybr="17" z_order="0"/>
        <tag label="reviewed"/>
      </image></annotations>"""
    (scene/'annotations.xml').write_text(xml)
    import_annotations('cvat', scene/'annotations.xml', scene/'images', scene/'out', progress=False)
    assert_scene(scene/'out')
    runs = [1, 2, 3, 6]                         # 3x4 box, row-major: rows 0110 / 0011 / 1111
    xml2 = f"""<annotations><image id="0" name="scene.png" width="{W}" height="{H}">
        <ellipse label="cell" cx="5" cy="5" rx="2" ry="2" rotation="0" z_order="0"/>
        <mask label="cell" rle="{', '.join(map(str, runs))}" left="20" top="10" width="4" height="3" z_order="0"/>
        <box label="cell" xtl="10" ytl="10" xbr="14" ybr="12" rotation="90" z_order="0"/>
      </image></annotations>"""
    (scene/'ann2.xml').write_text(xml2)
    import_annotations('cvat', scene/'ann2.xml', scene/'images', scene/'out2', progress=False)
    ids = read_mask_array(scene/'out2'/'instances'/'scene.png')
    assert (ids == 1).sum() == 13 and (ids == 2).sum() == 8
    assert ids[10, 21] == 2 and ids[10, 20] == 0 and ids[12].tolist()[20:24] == [2, 2, 2, 2]
    assert sorted(np.argwhere(ids == 3)[:, 0].tolist())[0] == 9 and (ids == 3).sum() == 15  # box turned upright: 5 tall


def test_cvat_video_export_refused(tmp_path):
    (tmp_path/'a.xml').write_text('<annotations><track id="0" label="cell"/></annotations>')
    with pytest.raises(DatasetError, match="CVAT for images 1.1"):
        import_annotations('cvat', tmp_path/'a.xml', tmp_path, tmp_path/'out', progress=False)


def test_via_project_export_and_shapes(scene):
    def poly(p): return dict(name='polygon', all_points_x=[x for x, _ in p], all_points_y=[y for _, y in p])
    regions = [dict(shape_attributes=poly(p), region_attributes=dict(class_name=l)) for l, p in SCENE]
    regions[2]['shape_attributes'] = dict(name='rect', x=20, y=12, width=7, height=5)
    meta = {'scene.png768': dict(filename='scene.png', size=768, regions=regions, file_attributes={})}
    (scene/'project.json').write_text(json.dumps({'_via_settings': {}, '_via_img_metadata': meta}))
    import_annotations('via', scene/'project.json', scene/'images', scene/'out', progress=False)   # the only attribute
    assert_scene(scene/'out')
    # "Export annotations (as json)": no wrapper; VIA 1 stored regions as a dict; circle, ellipse, no attributes
    regions = {'0': dict(shape_attributes=dict(name='circle', cx=5, cy=5, r=2), region_attributes={}),
               '1': dict(shape_attributes=dict(name='ellipse', cx=20, cy=12, rx=6, ry=2, theta=math.pi / 2), region_attributes={}),
               '2': dict(shape_attributes=dict(name='point', cx=1, cy=1), region_attributes={})}
    (scene/'export.json').write_text(json.dumps({'x': dict(filename='scene.png', size=1, regions=regions)}))
    with pytest.warns(UserWarning, match='not areas'):
        s = import_annotations('via', scene/'export.json', scene/'images', scene/'out2', progress=False)
    assert s['classes'] == ['background', 'object']
    ids = read_mask_array(scene/'out2'/'instances'/'scene.png')
    assert (ids == 1).sum() == 13
    rows, cols = np.nonzero(ids == 2)
    assert np.ptp(rows) == 12 and np.ptp(cols) == 4                                            # theta = 90 deg: upright


def test_via_class_key(scene):
    regions = [dict(shape_attributes=dict(name='rect', x=1, y=1, width=3, height=3), region_attributes=dict(kind='cell', note='x'))]
    (scene/'v.json').write_text(json.dumps({'_via_img_metadata': {'k': dict(filename='scene.png', regions=regions)}}))
    with pytest.raises(DatasetError, match='several attributes'):
        import_annotations('via', scene/'v.json', scene/'images', scene/'out', progress=False)
    s = import_annotations('via', scene/'v.json', scene/'images', scene/'out', class_key='kind', progress=False)
    assert s['classes'] == ['background', 'cell'] and read_mask_array(scene/'out'/'masks'/'scene.png').sum() == 16


def test_label_images_palette_png_tiff_and_codes(scene):
    sem = np.zeros((H, W), np.uint8)
    for i, (label, p) in enumerate(SCENE): sem[polygon_mask(p, (H, W))] = CODES.index(label)
    (scene/'labels').mkdir()
    im = Image.fromarray(np.array([0, 3, 7], np.uint8)[sem]); im.putpalette([0, 0, 0] * 8 + [255, 0, 0] * 248)
    im.save(scene/'labels'/'scene.png')                                                       # MATLAB: PixelLabelIDs 3, 7
    import_annotations('labels', scene/'labels', scene/'images', scene/'out', codes={'background': 0, 'cell': 3, 'debris': 7},
                       progress=False)
    assert_scene(scene/'out', instances=False)
    with pytest.raises(DatasetError, match=r'values \[7\] are not in the codes'):
        import_annotations('labels', scene/'labels', scene/'images', scene/'out2', codes={'background': 0, 'cell': 3}, progress=False)
    # Fiji / napari: 16-bit TIFF with a codes.txt beside it
    (scene/'fiji').mkdir()
    tifffile.imwrite(scene/'fiji'/'scene.tif', sem.astype(np.uint16))
    (scene/'fiji'/'codes.txt').write_text('\n'.join(CODES))
    import_annotations('labels', scene/'fiji', scene/'images', scene/'out3', progress=False)
    assert_scene(scene/'out3', instances=False)


def test_label_images_need_codes_unless_binary(scene):
    (scene/'labels').mkdir()
    Image.fromarray(np.full((H, W), 2, np.uint8)).save(scene/'labels'/'scene.png')
    with pytest.raises(DatasetError, match='no codes say which class'):
        import_annotations('labels', scene/'labels', scene/'images', scene/'out', progress=False)
    Image.fromarray(np.eye(H, W, dtype=np.uint8) * 255).save(scene/'labels'/'scene.png')
    assert import_annotations('labels', scene/'labels', scene/'images', scene/'out', progress=False)['classes'] == ['background', 'object']
    with pytest.raises(DatasetError, match='same size|at the image size'):
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(scene/'labels'/'scene.png')
        import_annotations('labels', scene/'labels', scene/'images', scene/'out4', progress=False)


# ------------------------------------------------------------------ bad inputs: clear errors, nothing half-written
def _labelme(folder, label='cell', image='scene.png', h=H, w=W):
    folder.mkdir(exist_ok=True)
    d = dict(shapes=[dict(label=label, points=[[2, 2], [6, 2], [6, 6]], shape_type='polygon')], imagePath=image,
             imageHeight=h, imageWidth=w)
    (folder/f'{Path(image).stem}.json').write_text(json.dumps(d))


def test_unknown_label_names_file_and_fix(scene):
    _labelme(scene/'ann', label='nucleus')
    with pytest.raises(DatasetError) as e:
        import_annotations('labelme', scene/'ann', scene/'images', scene/'out', codes=['background', 'cell'], progress=False)
    msg = str(e.value)
    assert 'scene.json' in msg and "'nucleus'" in msg and 'codes.txt' in msg
    assert not (scene/'out').exists()                                                          # nothing written


def test_missing_image_size_mismatch_duplicates(scene):
    _labelme(scene/'a', image='other.png')
    with pytest.raises(DatasetError, match="no image file for 'other.png'.*--images"):
        import_annotations('labelme', scene/'a', scene/'images', scene/'out', progress=False)
    _labelme(scene/'b', h=H * 2, w=W * 2)
    with pytest.raises(DatasetError, match='annotated at 48 x 64'):
        import_annotations('labelme', scene/'b', scene/'images', scene/'out', progress=False)
    _labelme(scene/'c'); d = json.loads((scene/'c'/'scene.json').read_text()); d['imagePath'] = 'sub/scene.png'
    (scene/'c'/'copy.json').write_text(json.dumps(d))
    with pytest.raises(DatasetError, match="share the name 'scene'"):
        import_annotations('labelme', scene/'c', scene/'images', scene/'out', progress=False)
    (scene/'d').mkdir(); (scene/'d'/'x.json').write_text('{"images": []}')
    with pytest.raises(DatasetError, match='not a labelme file'): read_labelme(scene/'d')
    (scene/'d'/'x.json').write_text('{not json')
    with pytest.raises(DatasetError, match='not valid JSON'): read_labelme(scene/'d')
    with pytest.raises(DatasetError, match='unknown annotation format'):
        import_annotations('yolo', scene/'a', scene/'images', scene/'out')
    assert not (scene/'out').exists()


def test_refuses_existing_masks_then_overwrites(scene):
    _labelme(scene/'ann')
    import_annotations('labelme', scene/'ann', scene/'images', scene/'out', progress=False)
    with pytest.raises(DatasetError, match='already holds 1 masks.*overwrite=True'):
        import_annotations('labelme', scene/'ann', scene/'images', scene/'out', progress=False)
    _labelme(scene/'ann', label='debris')
    s = import_annotations('labelme', scene/'ann', scene/'images', scene/'out', overwrite=True, progress=False)
    assert s['classes'] == ['background', 'debris']


def test_import_into_existing_dataset_keeps_source_images(scene):
    _labelme(scene/'ann')
    before = (scene/'images'/'scene.png').read_bytes()
    import_annotations('labelme', scene/'ann', scene/'images', scene, progress=False)             # OUT/images is the source
    assert (scene/'images'/'scene.png').read_bytes() == before and (scene/'masks'/'scene.png').exists()


def test_bmp_image_stored_as_png(tmp_path):
    img = np.arange(120, dtype=np.uint8).reshape(10, 12)
    Image.fromarray(img).save(tmp_path/'a.bmp')
    _labelme(tmp_path/'ann', image='a.bmp', h=10, w=12)
    import_annotations('labelme', tmp_path/'ann', tmp_path, tmp_path/'out', progress=False)
    assert (read_mask_array(tmp_path/'out'/'images'/'a.png') == img).all()


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b'\x89PNG half')                                                     # a partial file...
        raise KeyboardInterrupt                                                                    # ...then the run dies
    monkeypatch.setattr(Image.Image, 'save', broken_save)
    with pytest.raises(KeyboardInterrupt): save_mask(np.ones((4, 4), np.int32), tmp_path/'ids.png', instances=True)
    assert list(tmp_path.iterdir()) == []
