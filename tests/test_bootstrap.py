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
    dices = []
    for i, s in enumerate(truth):
        sem = read_mask_array(tmp_path/'boot'/'masks'/f'cells_{i}.png').astype(bool)
        dices.append(2 * (sem & s.mask.astype(bool)).sum() / (sem.sum() + s.mask.sum()))
    assert np.mean(dices) > 0.6, dices
    with pytest.raises(DatasetError, match='overwrite=True'): bootstrap_folder(tmp_path/'images', tmp_path/'boot', progress=False)
    assert bootstrap_folder(tmp_path/'images', tmp_path/'boot', overwrite=True, progress=False)['images'] == 3
