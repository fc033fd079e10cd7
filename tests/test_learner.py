"An exported learner loads in a fresh Python process and predicts exactly what the trained one did."
import subprocess, sys
import numpy as np
from fastai.vision.all import set_seed
from segment_lib.data import find_pairs, read_image, segmentation_dls
from segment_lib.learner import export_learner, predict_probs, seg_learner
from conftest import ROOT

def test_export_load_round_trip_in_fresh_process(tmp_path):
    set_seed(0)
    dls = segmentation_dls(ROOT/'data'/'crystals', bs=8)
    learn = seg_learner(dls, 'unet', base_width=8, depth=3)
    learn.fit_one_cycle(1, 3e-3)
    export_learner(learn, tmp_path/'model.pkl')
    img = find_pairs(ROOT/'data'/'crystals')[0][0]
    expected = predict_probs(learn, read_image(img))
    code = ("import numpy as np, sys; from segment_lib.learner import load_model, predict_probs; "
            "from segment_lib.data import read_image; "
            f"np.save(sys.argv[2], predict_probs(load_model(sys.argv[1]), read_image({str(img)!r})))")
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path/'model.pkl'), str(tmp_path/'probs.npy')],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path/'probs.npy'), expected, atol=1e-5)

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
