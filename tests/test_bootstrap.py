"The classical bootstrap over a folder of course images (`segment_lib.bootstrap`)."

import numpy as np
import pytest
from PIL import Image

from segment_lib.data import DatasetError, read_mask_array
from segment_lib.bootstrap import bootstrap_folder


def test_bootstrap_folder_on_course_images(tmp_path):
    from segment_lib.synthetic import make_cells
    (tmp_path/'images').mkdir()
    truth = []
    for i in range(3):
        s = make_cells(size=96, seed=i); truth.append(s)
        Image.fromarray(s.image).save(tmp_path/'images'/f'cells_{i}.png')
    out = bootstrap_folder(tmp_path/'images', tmp_path/'boot', flatten_radius=30, min_size=20, min_distance=7, progress=False)
    assert out['images'] == 3 and out['objects'] > 0
    def dice(pred, true): return 2 * (pred & true).sum() / (pred.sum() + true.sum())
    dices, all_object = [], []                          # all object: the better of the two constant predictions (all background: 0)
    for i, s in enumerate(truth):
        sem = read_mask_array(tmp_path/'boot'/'masks'/f'cells_{i}.png').astype(bool)
        dices.append(dice(sem, s.mask.astype(bool))); all_object.append(dice(np.ones_like(sem), s.mask.astype(bool)))
    assert np.mean(dices) > np.mean(all_object) + 0.3, (dices, all_object)
    with pytest.raises(DatasetError, match='overwrite=True'): bootstrap_folder(tmp_path/'images', tmp_path/'boot', progress=False)
    assert bootstrap_folder(tmp_path/'images', tmp_path/'boot', overwrite=True, progress=False)['images'] == 3
