"Tests of segment_lib.unet that a notebook shows badly: many sizes, bad arguments, saving and loading, real data."
import io, pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from segment_lib.unet import UNet, count_parameters, unet_shape_table, pad_to_multiple, crop_to

from conftest import shared_dataset
NUCLEI = Path(__file__).resolve().parents[1] / 'data' / 'nuclei'           # real micrographs bundled in the repository


def test_classic_parameter_count():
    model = UNet(in_channels=3, n_classes=1, depth=4, base_width=64, up_mode='transpose', batch_norm=False, dropout=0.5)
    assert count_parameters(model) == 31_031_745
    assert unet_shape_table(model, size=(64, 64)).parameters.sum() == 31_031_745


@pytest.mark.parametrize('h,w', [(1, 1), (5, 7), (16, 16), (97, 131), (130, 64)])
@pytest.mark.parametrize('up_mode', ['transpose', 'bilinear'])
def test_any_size_forward_backward(h, w, up_mode):
    torch.manual_seed(0)
    model = UNet(in_channels=2, n_classes=3, depth=3, base_width=4, up_mode=up_mode)
    x = torch.randn(2, 2, h, w, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 3, h, w)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_pad_then_crop_is_identity():
    x = torch.arange(2 * 3 * 13 * 29, dtype=torch.float32).reshape(2, 3, 13, 29)
    for multiple in (1, 2, 8, 32):
        padded = pad_to_multiple(x, multiple)
        assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
        assert torch.equal(crop_to(padded, 13, 29), x)


def test_no_padding_requires_multiples():
    model = UNet(depth=2, base_width=4, pad_to_fit=False)
    assert model(torch.randn(1, 3, 12, 8)).shape == (1, 2, 12, 8)
    with pytest.raises(ValueError, match='multiples of 2\\*\\*depth'):
        model(torch.randn(1, 3, 13, 8))


@pytest.mark.parametrize('kwargs,message', [
    (dict(in_channels=0), 'in_channels=0 must be a positive integer'),
    (dict(n_classes=2.5), 'n_classes=2.5 must be a positive integer'),
    (dict(depth=True), 'depth=True must be a positive integer'),
    (dict(base_width=-8), 'base_width=-8 must be a positive integer'),
    (dict(up_mode='nearest'), "use one of ('transpose', 'bilinear')"),
    (dict(dropout=1.5), 'must be in [0, 1)'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        UNet(**kwargs)
    assert message in str(err.value)


def test_bad_input_shapes():
    model = UNet(in_channels=1, depth=2, base_width=4)
    with pytest.raises(ValueError, match='build UNet\\(in_channels=...\\)'):
        model(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match='expected a batch N x 1 x H x W'):
        model(torch.randn(16, 16))


def test_state_dict_and_pickle_round_trip(tmp_path):
    torch.manual_seed(0)
    model = UNet(in_channels=1, n_classes=2, depth=2, base_width=4, dropout=0.3).eval()
    x = torch.randn(1, 1, 20, 24)
    expected = model(x)
    path = tmp_path / 'unet.pth'
    torch.save(model.state_dict(), path)
    again = UNet(in_channels=1, n_classes=2, depth=2, base_width=4, dropout=0.3).eval()
    again.load_state_dict(torch.load(path))
    assert torch.equal(again(x), expected)
    unpickled = pickle.loads(pickle.dumps(model))          # what fastai's learn.export does
    assert torch.equal(unpickled(x), expected)


def test_trainable_only_and_eval_mode_restored():
    model = UNet(depth=2, base_width=4).train()
    total = count_parameters(model)
    for p in model.out.parameters(): p.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - count_parameters(model.out)
    unet_shape_table(model, size=(33, 17))
    assert model.training, 'unet_shape_table must leave the model in the mode it found it'


def test_learns_a_simple_mask():
    "A few steps of Adam on one image where the object is the bright square: the loss must fall clearly."
    torch.manual_seed(0)
    x = torch.full((1, 1, 32, 32), 0.1); x[..., 8:20, 10:26] = 0.9
    x = x + 0.05 * torch.randn_like(x)
    y = (x[:, 0] > 0.5).long()
    model = UNet(in_channels=1, n_classes=2, depth=2, base_width=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    accuracy = (model.eval()(x).argmax(1) == y).float().mean().item()
    majority = max(y.float().mean().item(), 1 - y.float().mean().item())   # the best constant prediction: 0.81 here
    assert accuracy > majority + 0.15


def _first_image(folder):
    path = sorted(folder.glob('*.png'))[0]
    return np.asarray(Image.open(path))


def test_real_em_image_full_size():
    "A full 512x512 electron-microscopy slice (grey) goes through a small U-Net at full size."
    folder = shared_dataset('isbi2012_em')
    images = folder / 'images' if (folder / 'images').exists() else folder
    arr = _first_image(images).astype(np.float32) / 255
    x = torch.tensor(arr if arr.ndim == 2 else arr[..., 0])[None, None]
    model = UNet(in_channels=1, n_classes=2, depth=4, base_width=4).eval()
    with torch.no_grad(): y = model(x)
    assert y.shape == (1, 2, *x.shape[-2:])


def test_real_nuclei_images_of_odd_sizes():
    "The bundled DSB2018 micrographs (data/nuclei) come in 8 sizes; each comes back at its own size (RGBA: alpha dropped)."
    by_size = {}
    for path in sorted((NUCLEI / 'images').glob('*.png')):
        arr = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32) / 255
        by_size.setdefault(arr.shape[:2], arr)
    assert len(by_size) == 8
    model = UNet(in_channels=3, n_classes=2, depth=3, base_width=4).eval()
    for shape, arr in sorted(by_size.items())[:4]:
        x = torch.tensor(arr).permute(2, 0, 1)[None]
        with torch.no_grad(): y = model(x)
        assert y.shape == (1, 2, *shape)
