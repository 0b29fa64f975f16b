"""The architecture registry: specs, version-2 and version-1 checkpoints, SMP families and their
encoder weights, the stride rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgeseg.errors import InputError
from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
from edgeseg.models.registry import ModelSpec, build_model
from edgeseg.models.unet import UNet

smp = pytest.importorskip("segmentation_models_pytorch", reason="the smp extra is not installed")


def _save(path: Path, spec: ModelSpec, model: torch.nn.Module, size=(64, 64)) -> Path:
    ckpt = Checkpoint(spec, ["a", "b"], Normalization((0.5,) * 3, (0.25,) * 3), size)
    return save_checkpoint(path, ckpt, model)


def test_spec_round_trips_through_json():
    spec = ModelSpec("smp:unet", 3, 2, {"encoder": "resnet18"})
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.family == "smp" and again.member == "unet"


def test_version1_checkpoint_still_loads(tmp_path: Path):
    """A file written the old way: format version 1, UNetConfig's fields at the top of "model"."""
    model = UNet(3, 2, depth=2, width=4).eval()
    meta = {
        "edgeseg_version": "0.1.0",
        "model": {"in_channels": 3, "classes": 2, "depth": 2, "width": 4, "upsample": "transpose"},
        "class_names": ["a", "b"],
        "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3, "color_order": "RGB", "resize": "stretch"},
        "img_size": [32, 32],
        "ignore_index": None,
        "training": {},
    }
    payload = {"format": "edgeseg.checkpoint", "version": 1, "meta": json.dumps(meta)}
    payload["state_dict"] = model.state_dict()
    torch.save(payload, tmp_path / "v1.pt")
    ckpt = load_checkpoint(tmp_path / "v1.pt")
    assert ckpt.model_config == ModelSpec("unet", 3, 2, {"depth": 2, "width": 4, "upsample": "transpose"})
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.build_model()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("encoder", ["resnet18", "mobilenet_v2"])
def test_smp_checkpoint_round_trip_and_stride(tmp_path: Path, encoder: str):
    spec = ModelSpec("smp:unet", 3, 2, {"encoder": encoder})
    torch.manual_seed(0)
    model = build_model(spec).eval()
    path = _save(tmp_path / "m.pt", spec, model)
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == 2 and json.loads(raw["meta"])["model"]["arch"] == "smp:unet"
    ckpt = load_checkpoint(path)
    assert ckpt.model_config == spec and spec.stride == 32  # resnet/mobilenet: 5 stride-2 stages
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.build_model()(x), model(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match=r"divide by 32 .*got 48x64.*e\.g\. 64x64"):
        ckpt.check_input((1, 3, 48, 64))


def test_deeplab_stride_comes_from_the_encoder():
    assert ModelSpec("smp:deeplabv3plus", 3, 2, {"encoder": "resnet18"}).stride == 16
    assert ModelSpec("smp:deeplabv3", 3, 2, {"encoder": "resnet18"}).stride == 8


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ModelSpec("smp:nosuch", 3, 2, {}), r"unknown architecture 'smp:nosuch'; choose from .*smp:unet"),
        (ModelSpec("smp:unet", 3, 2, {"encoder": "resnet7"}), r"unknown --encoder 'resnet7'.*resnet18"),
        (ModelSpec("nosuch", 3, 2, {}), r"unknown architecture 'nosuch'; choose from unet, smp:<arch>"),
        (ModelSpec("unet", 3, 2, {"encoder": "x"}), r"'unet' does not take encoder"),
    ],
)
def test_unknown_names_list_the_valid_ones(spec: ModelSpec, message: str):
    with pytest.raises(InputError, match=message):
        build_model(spec)


def test_encoder_weights_file_loads_into_the_encoder(tmp_path: Path):
    from edgeseg.models.smp import init_encoder

    spec = ModelSpec("smp:unet", 3, 2, {"encoder": "mobilenet_v2"})
    torch.manual_seed(1)
    source = build_model(spec)
    torch.save(source.encoder.state_dict(), tmp_path / "enc.pt")
    torch.manual_seed(2)
    fresh = init_encoder(build_model(spec), spec, str(tmp_path / "enc.pt"))
    for k, v in source.encoder.state_dict().items():
        assert torch.equal(fresh.encoder.state_dict()[k], v), k
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "all.safetensors")
    again = init_encoder(build_model(spec), spec, str(tmp_path / "all.safetensors"))  # "encoder." keys
    key = "features.0.0.weight"
    assert torch.equal(again.encoder.state_dict()[key], source.encoder.state_dict()[key])


def test_encoder_weights_of_another_encoder_is_one_clear_error(tmp_path: Path):
    from edgeseg.models.smp import init_encoder

    other = build_model(ModelSpec("smp:unet", 3, 2, {"encoder": "resnet18"}))
    torch.save(other.encoder.state_dict(), tmp_path / "resnet.pt")
    spec = ModelSpec("smp:unet", 3, 2, {"encoder": "mobilenet_v2"})
    with pytest.raises(InputError, match=r"does not fit encoder mobilenet_v2: \d+ missing keys"):
        init_encoder(build_model(spec), spec, str(tmp_path / "resnet.pt"))
    with pytest.raises(InputError, match=r"does not exist"):
        init_encoder(build_model(spec), spec, str(tmp_path / "none.pt"))
