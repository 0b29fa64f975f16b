"""An imported-model file's program is data: only pure tensor operators over its own input and weights.

- The allow-list (edgeseg/models/imported_ops.json, derived by benchmarks/imported_ops.py from real
  segmentation models) holds no operator that reads files, asks about devices, draws random
  numbers, writes into `out=` tensors, returns uninitialised memory or reinterprets storage.
- Real families (edgeseg's U-Net, SMP's, torchvision's) import, load and run as the module did.
- A tampered file, one per refused category, is refused at load: one line, exit code 2, through
  every command that loads a model (and the Python API).
- A module that changes its own state in forward (a counter, a sign flip, a re-assigned buffer, an
  input written in place) is refused at import, and `import_model` never changes the user's module.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import edgeseg
from edgeseg.errors import InputError
from edgeseg.models.checkpoint import load_checkpoint
from edgeseg.models.program import operators
from tests.helpers import run_cli

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# What no operator on the list may be (by name or by torch's own schema/tags).
_IMPURE_NAME = re.compile(
    r"from_file|save|load|rand|normal|bernoulli|uniform|multinomial|poisson|exponential|cauchy|seed|"
    r"device|cuda|pin|_local_scalar|item|data_ptr|storage|set_|resize|as_strided|unsafe|empty|print"
)


def _op(target: str) -> Any:
    _, _, namespace, name, overload = target.split(".")
    return getattr(getattr(getattr(torch.ops, namespace), name), overload)


def test_allow_list_holds_pure_tensor_operators_only() -> None:
    ops = operators()
    assert "torch.ops.aten.conv2d.default" in ops and len(ops) >= 30
    for target, entry in ops.items():
        assert target.startswith("torch.ops.aten."), target
        op = _op(target)
        schema = op._schema
        name, overload = target.split(".")[3:]
        assert not _IMPURE_NAME.search(name), target
        assert "out" not in overload and not any(a.is_out for a in schema.arguments), target
        modes = {a.name for a in schema.arguments if a.name in ("train", "training")}
        # Random only in training mode (dropout): allowed with its mode argument required false.
        assert torch.Tag.nondeterministic_seeded not in op.tags or modes, target
        assert entry.get("require", {}) == dict.fromkeys(modes, False), target
        written = {a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write}
        assert set(entry.get("writes", [])) == written, target  # the checker knows every write
        aliased = {a.name for a in schema.arguments if a.alias_info is not None}
        assert set(entry.get("aliases", [])) <= aliased, target
        if any(r.alias_info is not None for r in schema.returns):
            assert entry.get("aliases"), f"{target} returns a view; the list must say of what"


# -------------------------------------------------------------------------------- real families


def _smp(arch: str, encoder: str = "resnet18") -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        smp = pytest.importorskip("segmentation_models_pytorch")
        return getattr(smp, arch)(encoder, encoder_weights=None, classes=3)

    return make


def _tv(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        seg = pytest.importorskip("torchvision.models.segmentation")
        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": 3}
        return getattr(seg, name)(**kwargs, **({} if name.startswith("lraspp") else {"aux_loss": True}))

    return make


def _unet(upsample: str) -> Callable[[], nn.Module]:
    return lambda: edgeseg.UNet(3, 3, depth=3, width=8, upsample=upsample)


SIZE = (64, 64)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], tuple[int, int]]] = {
    "edgeseg-unet-transpose": (_unet("transpose"), SIZE),
    "edgeseg-unet-bilinear": (_unet("bilinear"), SIZE),
    "smp-unet-resnet18": (_smp("Unet"), SIZE),
    "smp-unet-efficientnet": (_smp("Unet", "efficientnet-b0"), SIZE),
    "smp-unet-mobilenet": (_smp("Unet", "mobilenet_v2"), SIZE),
    "smp-unet-timm-mobilenetv3": (_smp("Unet", "tu-mobilenetv3_small_100"), SIZE),
    "smp-unetplusplus": (_smp("UnetPlusPlus"), SIZE),
    "smp-fpn": (_smp("FPN"), SIZE),
    "smp-deeplabv3plus": (_smp("DeepLabV3Plus"), SIZE),
    "smp-pspnet": (_smp("PSPNet"), SIZE),
    "smp-linknet": (_smp("Linknet"), SIZE),
    "smp-manet": (_smp("MAnet"), SIZE),
    "smp-pan": (_smp("PAN"), (128, 128)),
    "smp-segformer-mit": (_smp("Segformer", "mit_b0"), SIZE),
    "torchvision-fcn": (_tv("fcn_resnet50"), SIZE),
    "torchvision-deeplabv3": (_tv("deeplabv3_mobilenet_v3_large"), SIZE),
    "torchvision-lraspp": (_tv("lraspp_mobilenet_v3_large"), SIZE),
}
FAST = {"edgeseg-unet-transpose", "smp-unet-resnet18", "torchvision-lraspp"}


def _with_statistics(model: nn.Module, size: tuple[int, int]) -> nn.Module:
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, size[1], size[0]))
    return model.eval()


@pytest.mark.parametrize(
    "family", [f if f in FAST else pytest.param(f, marks=pytest.mark.slow) for f in sorted(FAMILIES)]
)
def test_real_families_import_load_and_run(tmp_path: Path, family: str) -> None:
    make, size = FAMILIES[family]
    module = _with_statistics(make(), size)
    path = edgeseg.import_model(module, tmp_path / "m.pt", classes=3, img_size=size, mean=MEAN, std=STD)
    net = load_checkpoint(path).build_model()
    x = torch.rand(1, 3, size[1], size[0])
    with torch.no_grad():
        expected = module(x)
        expected = expected["out"] if isinstance(expected, dict) else expected
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)  # and again: no state


# ------------------------------------------------------------------------------- tampered files


class _Small(nn.Module):
    """conv -> BatchNorm -> in-place ReLU on a view of the input: a graph with a view, an in-place
    op on an intermediate, a BatchNorm with running statistics and a parameter to aim at."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x.view(x.shape))).relu_()


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("imported") / "small.pt"
    return edgeseg.import_model(_Small().eval(), path, classes=2, img_size=(32, 24), mean=MEAN, std=STD)


def _node(data: dict[str, Any], target: str) -> dict[str, Any]:
    return next(n for n in data["graph_module"]["graph"]["nodes"] if n["target"] == target)


def _arg(node: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in node["inputs"] if i["name"] == name)


def _retarget(target: str, **args: Any) -> Callable[[dict[str, Any]], None]:
    """Make the ReLU node call `target` (extra arguments as serialized torch arguments)."""

    def edit(data: dict[str, Any]) -> None:
        node = _node(data, "torch.ops.aten.relu_.default")
        node["target"] = target
        node["inputs"] += [{"name": k, "arg": v, "kind": 1} for k, v in args.items()]

    return edit


def _read_file(data: dict[str, Any]) -> None:
    """The attack of the issue: aten.from_file reads any file into a tensor the program returns."""
    node = _node(data, "torch.ops.aten.relu_.default")
    node["target"] = "torch.ops.aten.from_file.default"
    node["inputs"] = [
        {"name": "filename", "arg": {"as_string": "/etc/passwd"}, "kind": 1},
        {"name": "shared", "arg": {"as_bool": False}, "kind": 1},
        {"name": "size", "arg": {"as_int": 1536}, "kind": 1},
        {"name": "dtype", "arg": {"as_scalar_type": 1}, "kind": 2},
    ]


def _write_into(target: str) -> Callable[[dict[str, Any]], None]:
    """The in-place ReLU aimed at a program input ("x"), a weight or a view of the input."""

    def edit(data: dict[str, Any]) -> None:
        names = {"input": "x", "weight": "p_module_conv_weight", "buffer": "b_module_bn_running_mean"}
        if target == "view":
            name = _node(data, "torch.ops.aten.view.default")["outputs"][0]["as_tensor"]["name"]
        else:
            name = names[target]
        _arg(_node(data, "torch.ops.aten.relu_.default"), "self")["arg"] = {"as_tensor": {"name": name}}

    return edit


def _training_mode(data: dict[str, Any]) -> None:
    _arg(_node(data, "torch.ops.aten.batch_norm.default"), "training")["arg"] = {"as_bool": True}


def _mutating_signature(data: dict[str, Any]) -> None:
    out = data["graph_module"]["signature"]["output_specs"]
    out.insert(0, {"buffer_mutation": {"arg": {"as_tensor": {"name": "relu_"}},
                                       "buffer_name": "module.bn.running_mean"}})  # fmt: skip


def _nested_graph(data: dict[str, Any]) -> None:
    _arg(_node(data, "torch.ops.aten.conv2d.default"), "bias")["arg"] = {
        "as_graph": {"name": "g", "graph": {}}
    }


def _tree_type(data: dict[str, Any]) -> None:
    root = data["graph_module"]["module_call_graph"][0]["signature"]
    root["out_spec"] = json.dumps(
        [1, {"type": "collections.OrderedDict", "context": "[]", "children_spec": []}]
    )


TAMPERED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # category: (edit, what the one line says)
    "file-read": (_read_file, "calls torch.ops.aten.from_file.default, which is not on"),
    "rng-rand": (_retarget("torch.ops.aten.rand_like.default"), "rand_like.default, which is not on"),
    "rng-bernoulli": (
        _retarget("torch.ops.aten.bernoulli.p", p={"as_float": 0.5}),
        "bernoulli.p, which is not",
    ),
    "rng-dropout-training": (
        _retarget("torch.ops.aten.dropout.default", p={"as_float": 0.5}, train={"as_bool": True}),
        "with train=",
    ),
    "device-query": (_retarget("torch.ops.aten.is_pinned.default"), "is_pinned.default, which is not on"),
    "scalar-to-host": (_retarget("torch.ops.aten._local_scalar_dense.default"), "_local_scalar_dense"),
    "out-variant": (_retarget("torch.ops.aten.relu.out"), "relu.out, which is not on"),
    "storage-trick": (_retarget("torch.ops.aten.set_.source_Tensor"), "set_.source_Tensor, which is not"),
    "uninitialised-memory": (_retarget("torch.ops.aten.empty_like.default"), "empty_like.default, which"),
    "unknown-op": (_retarget("torch.ops.aten.polar.default"), "polar.default, which is not on"),
    "not-aten": (_retarget("builtins.eval"), "calls builtins.eval, which is not on"),
    "higher-order": (_retarget("torch.ops.higher_order.cond"), "higher_order.cond, which is not on"),
    "in-place-on-input": (_write_into("input"), "writes into its input"),
    "in-place-on-view-of-input": (_write_into("view"), "writes into a view of"),
    "in-place-on-weight": (_write_into("weight"), "writes into parameter 'module.conv.weight'"),
    "in-place-on-buffer": (_write_into("buffer"), "writes into buffer 'module.bn.running_mean'"),
    "batch-norm-training": (_training_mode, "with training=true; an imported program runs in inference"),
    "buffer-mutation-signature": (_mutating_signature, "changes its own state when it runs (buffer mutation"),
    "nested-graph-argument": (_nested_graph, "takes a as_graph argument"),
    "tree-spec-type": (_tree_type, "names the type 'collections.OrderedDict'"),
}


def _tamper(path: Path, edit: Callable[[dict[str, Any]], None], dest: Path) -> Path:
    payload = torch.load(path, weights_only=True)
    data = json.loads(payload["program"])
    edit(data)
    payload["program"] = json.dumps(data)
    torch.save(payload, dest)
    return dest


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_programs_are_refused_at_load(small_file: Path, tmp_path: Path, case: str) -> None:
    edit, message = TAMPERED[case]
    evil = _tamper(small_file, edit, tmp_path / "evil.pt")
    with pytest.raises(InputError, match=re.escape(message)):
        load_checkpoint(evil)
    with pytest.raises(InputError, match="refusing the model file's program"):
        edgeseg.Segmenter(evil)


def _frame(tmp_path: Path) -> Path:
    Image.fromarray(np.full((24, 32, 3), 80, np.uint8)).save(tmp_path / "f.png")
    return tmp_path / "f.png"


# Every command that loads a model file, so a new loading path is checked too.
LOADERS: dict[str, Callable[[Path, Path], list[object]]] = {
    "info": lambda m, t: ["info", m],
    "predict": lambda m, t: ["predict", m, _frame(t), "--out", t / "out"],
    "export": lambda m, t: ["export", m, "--target", "onnx", "--out", t / "bundle"],
    "doctor": lambda m, t: ["doctor", m],
    "eval": lambda m, t: ["eval", m, "--data", t / "data"],
    "demo": lambda m, t: ["demo", m, "--source", "synthetic", "--headless", "--max-frames", "2"],
    "benchmark": lambda m, t: ["benchmark", m, "--targets", "onnx:fp32", "--out", t / "bench"],
}


@pytest.mark.parametrize("command", sorted(LOADERS))
@pytest.mark.parametrize("case", ["file-read", "in-place-on-buffer", "buffer-mutation-signature"])
def test_every_command_refuses_a_tampered_file_in_one_line(
    small_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    from tests.helpers import make_dataset

    make_dataset(tmp_path / "data", n=2, size=(32, 24), classes=2)
    evil = _tamper(small_file, TAMPERED[case][0], tmp_path / "evil.pt")
    rc, _, err = run_cli(LOADERS[command](evil, tmp_path), capsys)
    assert rc == 2, err
    assert err.count("\n") == 1 and "refusing the model file's program" in err and "Traceback" not in err
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "out").exists()


# --------------------------------------------------------------- modules that change themselves


class Counter(nn.Module):
    """Counts its calls in a buffer (a running counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) + 0 * self.calls


class SignFlip(nn.Module):
    """Flips a buffer's sign in place on every call: every other call inverts the mask."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.register_buffer("sign", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sign.mul_(-1)
        return self.conv(x) * self.sign


class Reassigned(nn.Module):
    """Re-binds its buffer to a new tensor (torch.export records a buffer mutation)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.register_buffer("sign", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sign = -self.sign
        return self.conv(x) * self.sign


class InputWriter(nn.Module):
    """Normalises its input in place."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(2)
        return self.conv(x)


MUTATING = {
    "counter": (Counter, "add_.Tensor writes into buffer 'calls'"),
    "sign-flip": (SignFlip, "writes into buffer"),
    "input-written": (InputWriter, "mul_.Tensor writes into its input"),
}


def _state(module: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.clone() for k, v in module.state_dict().items()},
        "modes": [m.training for m in module.modules()],
        "attrs": {k: v for k, v in vars(module).items() if not k.startswith("_")},
    }


def _unchanged(before: dict[str, Any], module: nn.Module) -> None:
    after = _state(module)
    assert after["modes"] == before["modes"] and after["attrs"].keys() == before["attrs"].keys()
    for key, value in before["tensors"].items():
        torch.testing.assert_close(after["tensors"][key], value, rtol=0, atol=0)
    for key, value in before["attrs"].items():
        assert after["attrs"][key] is value or after["attrs"][key] == value, key


@pytest.mark.parametrize("case", sorted(MUTATING))
def test_modules_that_change_themselves_are_refused_and_left_unchanged(tmp_path: Path, case: str) -> None:
    make, message = MUTATING[case]
    module = make()
    before = _state(module)
    with pytest.raises(InputError, match=f"cannot import the module: .*{message}"):
        edgeseg.import_model(module, tmp_path / "m.pt", classes=2, img_size=(8, 8), mean=MEAN, std=STD)
    assert not (tmp_path / "m.pt").exists()
    _unchanged(before, module)
    # The top-level export imports first: no bundle passes at 50 % agreement.
    with pytest.raises(InputError, match="cannot import the module"):
        edgeseg.export(module, target="onnx", classes=2, img_size=(8, 8), mean=MEAN, std=STD,
                       out=str(tmp_path / "b"))  # fmt: skip
    assert not (tmp_path / "b").exists()
    _unchanged(before, module)


def test_a_reassigned_buffer_is_not_replayed(tmp_path: Path) -> None:
    """`self.sign = -self.sign` in a submodule: torch.export captures the negation of the buffer's
    value, not an update of it; the file's program gives the same mask on every call, and the
    user's module keeps its buffer."""
    module = Reassigned()
    path = edgeseg.import_model(module, tmp_path / "m.pt", classes=2, img_size=(8, 8), mean=MEAN, std=STD)
    assert float(module.sign) == 1.0
    net = load_checkpoint(path).build_model()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)


class PyCounter(nn.Module):
    """Counts calls in a Python attribute and keeps a lock (cannot be deep-copied): its program is
    pure, and the import must still leave the attribute and the module's mode as they were."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(4, 2, 1)
        self.calls = 0
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.head(self.body(x))


@pytest.mark.parametrize("copyable", [True, False])
def test_batchnorm_module_imports_and_the_users_module_is_untouched(tmp_path: Path, copyable: bool) -> None:
    """Eval-mode BatchNorm imports; the module's mode, statistics and attributes stay as they were,
    whether it is run as a deep copy or (no copy possible) with its state restored."""
    module = PyCounter()
    if copyable:
        del module.lock
    with contextlib.nullcontext() if copyable else pytest.raises(TypeError):
        copy.deepcopy(module)
    module.train()  # the user's mode, which import_model must not change
    before = _state(module)
    path = edgeseg.import_model(module, tmp_path / "m.pt", classes=2, img_size=(16, 12), mean=MEAN, std=STD)
    _unchanged(before, module)
    assert module.training and module.calls == 0
    net = load_checkpoint(path).build_model()
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        first, second = net(x), net(x)
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        torch.testing.assert_close(
            first, copy.deepcopy(_without_lock(module)).eval()(x), rtol=1e-5, atol=1e-5
        )


def _without_lock(module: nn.Module) -> nn.Module:
    module.__dict__.pop("lock", None)
    return module


@pytest.mark.parametrize("copyable", [True, False])
def test_a_refused_import_leaves_the_module_as_it_was(tmp_path: Path, copyable: bool) -> None:
    """A wrong output shape is refused after the module ran: still one error, the module restored."""
    module = PyCounter()
    if copyable:
        del module.lock
    before = _state(module)
    with pytest.raises(InputError, match="edgeseg needs 1x3x12x16 logits"):
        edgeseg.import_model(module, tmp_path / "m.pt", classes=3, img_size=(16, 12), mean=MEAN, std=STD)
    _unchanged(before, module)
    assert module.calls == 0 and not (tmp_path / "m.pt").exists()
