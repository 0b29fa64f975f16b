from __future__ import annotations

import pytest
import torch

from edgeseg.models.unet import UNet, UNetConfig


@pytest.mark.parametrize(
    ("cin", "classes", "depth", "size", "upsample"),
    [
        (3, 2, 4, (64, 64), "transpose"),
        (1, 5, 3, (48, 80), "bilinear"),
        (3, 11, 2, (36, 20), "transpose"),
        (4, 1, 1, (6, 10), "bilinear"),
    ],
)
def test_output_shape_follows_input(cin: int, classes: int, depth: int, size: tuple[int, int], upsample: str):
    model = UNet(in_channels=cin, classes=classes, depth=depth, width=4, upsample=upsample).eval()
    x = torch.randn(2, cin, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, classes, *size)
    assert torch.isfinite(y).all()


def test_size_not_divisible_is_a_clear_error():
    model = UNet(3, 2, depth=4, width=4)
    with pytest.raises(ValueError, match=r"divide by 2\*\*depth = 16; got 50x64.*48x64"):
        model(torch.randn(1, 3, 50, 64))


def test_wrong_channel_count_is_a_clear_error():
    model = UNet(1, 2, depth=2, width=4)
    with pytest.raises(ValueError, match="built for 1 input channels, got 3"):
        model(torch.randn(1, 3, 16, 16))


def test_config_round_trip_rebuilds_same_architecture():
    model = UNet(1, 7, depth=3, width=8, upsample="bilinear")
    again = UNet.from_config(UNetConfig.from_dict(model.config.to_dict()))
    assert again.config == model.config
    again.load_state_dict(model.state_dict())  # identical parameter names and shapes


@pytest.mark.parametrize("bad", [{"depth": 0}, {"classes": 0}, {"upsample": "nearest"}, {"width": 0}])
def test_invalid_config_rejected(bad: dict):
    with pytest.raises(ValueError):
        UNetConfig(**bad)


def test_batch_norm_present_and_skip_connections_used():
    model = UNet(3, 2, depth=2, width=4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # The last decoder block concatenates the upsampled level-1 features (8 // 2) with the level-0 skip (4).
    assert model.ups[-1].conv[0].in_channels == 8 // 2 + 4
