"Confidence maps, per-image and per-object scores, calibration and temperature scaling (segment_lib.confidence)."
import subprocess, sys
import matplotlib
matplotlib.use('Agg')
import numpy as np, pytest
from segment_lib.confidence import (DEFAULT_SCORE, softmax, max_probability, margin, entropy, sample_disagreement,
                                    boundary_band, image_scores, object_confidence, reliability_table,
                                    expected_calibration_error, plot_reliability, plot_error_rate, fit_temperature,
                                    error_capture, show_confidence_maps)
from conftest import ROOT


def calibrated_model(n=60_000, classes=3, seed=0):
    "Logits N x C and labels drawn from softmax(logits): a perfectly calibrated model by construction."
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (n, classes))
    y = (rng.random(n)[:, None] > softmax(z, axis=1).cumsum(1)).sum(1)
    return z, y


def test_imports_no_torch():
    probe = "import segment_lib.confidence, sys; print(sorted(m for m in ('torch', 'fastai') if m in sys.modules))"
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == '[]'


def test_softmax_hand_case():
    np.testing.assert_allclose(softmax(np.log([1., 2., 3.])), [1/6, 2/6, 3/6], rtol=1e-6)
    p = softmax(np.array([[0., 1000.], [2., 1001.]]))                # classes on axis 0: no overflow
    e = np.e
    np.testing.assert_allclose(p[:, 0], [1 / (1 + e**2), e**2 / (1 + e**2)], rtol=1e-6)
    np.testing.assert_allclose(p[:, 1], [1 / (1 + e), e / (1 + e)], rtol=1e-6)
    assert np.isfinite(p).all()


def test_softmax_sums_to_one_and_keeps_order():
    z = np.random.default_rng(0).normal(0, 5, (4, 16, 16)).astype(np.float32)
    p = softmax(z)
    assert p.dtype == np.float32 and p.shape == z.shape
    np.testing.assert_allclose(p.sum(0), 1, atol=1e-6)
    assert (p.argmax(0) == z.argmax(0)).all()
    np.testing.assert_allclose(softmax(z.transpose(1, 2, 0), axis=-1), p.transpose(1, 2, 0), atol=1e-6)


@pytest.mark.parametrize('classes', [2, 3, 5])
def test_entropy_uniform_is_one_and_one_hot_is_zero(classes):
    uniform = np.full((classes, 4, 4), 1 / classes)
    np.testing.assert_allclose(entropy(uniform), 1, atol=1e-6)
    np.testing.assert_allclose(entropy(uniform, normalize=False), np.log(classes), atol=1e-6)
    one_hot = np.zeros((classes, 4, 4)); one_hot[classes - 1] = 1
    np.testing.assert_allclose(entropy(one_hot), 0, atol=1e-9)
    np.testing.assert_allclose(max_probability(uniform), 1 / classes)


def test_margin_and_max_probability_hand_case():
    p = np.array([[0.7, 0.2, 0.5],
                  [0.2, 0.5, 0.5],
                  [0.1, 0.3, 0.0]])                                 # 3 classes, 3 pixels
    np.testing.assert_allclose(margin(p), [0.5, 0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(max_probability(p), [0.7, 0.5, 0.5])
    two = softmax(np.random.default_rng(1).normal(0, 2, (2, 8, 8)))
    np.testing.assert_allclose(margin(two), 2 * max_probability(two) - 1, atol=1e-6)


def test_logits_are_refused():
    with pytest.raises(ValueError, match='look like logits'): max_probability(np.array([[2., -1.], [0.5, 3.]]))
    with pytest.raises(ValueError, match='at least 2 classes'): entropy(np.ones((1, 3, 3)))


def test_sample_disagreement_hand_case():
    p1 = np.array([[[0.1, 0.8]], [[0.3, 0.8]]])                     # S=2 samples, class-1 probability of 1 x 2 pixels
    samples = np.stack([1 - p1, p1], 1)
    np.testing.assert_allclose(sample_disagreement(samples), [[0.01, 0.0]], atol=1e-12)
    with pytest.raises(ValueError, match='S x C x H x W'): sample_disagreement(samples[0])


def test_image_scores_boundary_and_interior():
    p1 = np.full((20, 20), 0.02); p1[5:15, 5:15] = 0.97              # a confident square ...
    band = boundary_band(p1 > 0.5, 1)
    p1[band & (p1 > 0.5)] = 0.7; p1[band & (p1 < 0.5)] = 0.3         # ... unsure along its edge
    s = image_scores(np.stack([1 - p1, p1]), boundary_width=1)
    assert s['boundary_unconfident'] == 1.0 and s['interior_unconfident'] == 0.0
    assert s['unconfident_fraction'] == pytest.approx(band.mean())
    assert DEFAULT_SCORE in s
    samples = np.stack([np.stack([1 - p1, p1])] * 3)
    assert image_scores(np.stack([1 - p1, p1]), samples)['mean_disagreement'] == pytest.approx(0, abs=1e-12)


def test_object_confidence_hand_mask():
    inst = np.zeros((5, 6), np.int32)
    inst[0:2, 0:2] = 1                                                # 4 pixels
    inst[3:5, 2:6] = 3                                                # 8 pixels (id 2 is absent)
    conf = np.full((5, 6), 0.9); conf[0, 0] = 0.5; conf[4, 5] = 0.3
    t = object_confidence(inst, conf)
    assert t.id.tolist() == [1, 3] and t.area.tolist() == [4, 8]
    np.testing.assert_allclose(t.mean_confidence, [(0.5 + 3 * 0.9) / 4, (0.3 + 7 * 0.9) / 8])
    np.testing.assert_allclose(t.min_confidence, [0.5, 0.3])
    assert len(object_confidence(np.zeros((3, 3), np.uint8), np.ones((3, 3)))) == 0
    with pytest.raises(ValueError, match='same shape'): object_confidence(inst, conf[:4])


def test_reliability_table_equal_width_bins():
    t = reliability_table(np.array([0.1, 0.3, 0.35, 0.9, 1.0]), np.array([0, 1, 0, 1, 1]), bins=4)
    assert t['count'].tolist() == [1, 2, 0, 2]                        # [0, .25) [.25, .5) [.5, .75) [.75, 1]
    np.testing.assert_allclose(t.accuracy.values[[0, 1, 3]], [0, 0.5, 1])
    np.testing.assert_allclose(t.confidence.values[[0, 1, 3]], [0.1, 0.325, 0.95])
    assert np.isnan(t.accuracy[2])
    with pytest.raises(ValueError, match='not logits'): reliability_table(np.array([2.5]), np.array([1]))


def test_ece_calibrated_is_small_and_overconfident_is_large():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1, 200_000)
    assert expected_calibration_error(conf, rng.random(conf.size) < conf) < 0.01
    over = expected_calibration_error(conf, rng.random(conf.size) < conf - 0.25)     # right 25 points less than it says
    assert over == pytest.approx(0.25, abs=0.01)
    # list of images of different sizes = the same pixels concatenated
    assert expected_calibration_error([conf[:100].reshape(10, 10), conf[100:160]], [np.ones((10, 10)), np.zeros(60)]) == \
           pytest.approx(expected_calibration_error(conf[:160], np.r_[np.ones(100), np.zeros(60)]))


def test_temperature_scaling_fixes_overconfident_model():
    z, y = calibrated_model()
    assert fit_temperature(z, y) == pytest.approx(1, abs=0.05)
    T = fit_temperature(4 * z, y)                                    # logits 4 times too large: over-confident
    assert T == pytest.approx(4, rel=0.05)
    def ece(logits):
        p = softmax(logits, axis=1)
        return expected_calibration_error(p.max(1), p.argmax(1) == y)
    assert ece(4 * z) > 0.1
    assert ece(4 * z / T) < 0.02 and ece(4 * z / T) < ece(4 * z) / 5
    # classes-first layout and subsampling give the same answer
    chw = np.moveaxis(4 * z, 1, 0).reshape(3, 200, 300)
    assert fit_temperature(chw, y.reshape(200, 300)) == pytest.approx(T, rel=1e-3)
    assert fit_temperature(4 * z, y, max_pixels=20_000, seed=1) == pytest.approx(4, rel=0.1)
    with pytest.raises(ValueError, match='class indices'): fit_temperature(z, y + 1)


def test_error_capture_hand_case():
    conf = np.array([0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.99, 1.0])
    correct = np.array([0, 1, 0, 1, 1, 1, 1, 1, 0, 1], bool)        # 3 wrong pixels
    assert error_capture(conf, correct, 0.1) == pytest.approx(1/3)  # the least confident pixel is wrong
    assert error_capture(conf, correct, 0.3) == pytest.approx(2/3)
    assert error_capture(conf, correct, 1.0) == pytest.approx(1.0)
    assert np.isnan(error_capture(conf, np.ones(10, bool)))
    with pytest.raises(ValueError, match='share of the pixels'): error_capture(conf, correct, 1.5)


def test_plots_return_figures():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1, 5000); ok = rng.random(conf.size) < conf
    fig = plot_reliability(conf, ok, label='model')
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and len(ax.lines) == 2    # diagonal + curve
    plot_reliability(conf, ok, label='again', ax=ax)
    assert len(ax.lines) == 3
    assert plot_error_rate(conf, ok).axes[0].get_yscale() == 'log'
    p = softmax(rng.normal(0, 2, (2, 16, 16)))
    assert len(show_confidence_maps(rng.integers(0, 255, (16, 16), dtype=np.uint8), p, p.argmax(0)).axes) == 7
    import matplotlib.pyplot as plt; plt.close('all')
