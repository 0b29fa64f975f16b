"""Invariants that hold for every command, not for one catalogued input each:

1. non-finite numbers never pass as valid (options, weights, logits, figures);
5. every option either takes effect or is refused with one line saying why;
6. paths written into files are resolved, so they hold from any working directory;
8. messages are the project's own line, early: unwritable outputs before any work, hints that
   name only options the command has, allocator failures as "out of memory".

The option lists are read from the CLI itself, so a new command or option is covered without
editing this file.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg.cli import command, main
from edgeseg.errors import EdgesegRuntimeError, InputError
from tests.helpers import make_dataset, run_cli

EDGESEG = Path(__file__).resolve().parents[1] / "edgeseg"
TINY_TRAIN = ["--img-size", "32", "--depth", "2", "--width", "4", "--batch-size", "4", "--quiet"]


def _commands() -> dict[str, Any]:
    return dict(command().commands)  # type: ignore[attr-defined]


def _options(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}


def _float_options() -> list[tuple[str, str]]:
    found = []
    for name, cmd in sorted(_commands().items()):
        for p in cmd.params:
            annotation = getattr(getattr(p, "type_descriptor", None), "annotation", None)
            if annotation is not None and "float" in str(annotation) and p.opts:
                found.append((name, max(p.opts, key=len)))
    return found


def _dummy_args(cmd: Any) -> list[str]:
    # Positional arguments after the option: the option is processed first and must fail first.
    return ["x" for p in cmd.params if p.param_type_name == "argument" and p.required]


@pytest.fixture(scope="module")
def assets(
    tiny_ckpt: Path, tiny_bundle: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The session's tiny checkpoint and its FP32 ONNX bundle (conftest.py; "root" is their folder)
    and a small dataset at the model's size. Read-only."""
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    data = make_dataset(tmp_path_factory.mktemp("inv") / "data", n=4, size=(64, 48), classes=4)
    return {"root": tiny_ckpt.parent, "ckpt": tiny_ckpt, "bundle": tiny_bundle("onnx"), "data": data}


def _nan_checkpoint(src: Path, dst: Path, value: float = float("nan"), index: int = 0) -> Path:
    import torch

    payload = torch.load(src, weights_only=True)
    floats = [k for k, v in payload["state_dict"].items() if v.is_floating_point()]
    tensor = payload["state_dict"][floats[index % len(floats)]]
    tensor.view(-1)[index % tensor.numel()] = value
    torch.save(payload, dst)
    return dst


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------- 1: non-finite numbers
def test_every_float_option_is_found() -> None:
    options = _float_options()
    assert ("train", "--lr") in options and ("export", "--max-drop") in options, options


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(("cmd", "flag"), _float_options())
def test_float_options_refuse_non_finite(
    cmd: str, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run_cli([cmd, f"{flag}={value}", *_dummy_args(_commands()[cmd])], capsys)
    assert rc == 2, err
    assert err.startswith("edgeseg: error: ") and err.count("\n") == 1, err
    assert flag in err and ("finite" in err or "Input should be" in err), err


@pytest.mark.parametrize(
    "args",
    [
        lambda a, w: ["info", "{nan}"],
        lambda a, w: ["export", "{nan}", "--target", "onnx", "--out", w / "b"],
        lambda a, w: ["predict", "{nan}", a["data"] / "images", "--out", w / "p"],
        lambda a, w: ["eval", "{nan}", "--data", a["data"]],
        lambda a, w: ["demo", "{nan}", "--headless", "--max-frames", "1"],
        lambda a, w: ["demo", a["bundle"], "--baseline", "{nan}", "--headless", "--max-frames", "1"],
        lambda a, w: ["benchmark", "{nan}", "--targets", "onnx:fp32", "--out", w / "bench"],
    ],
    ids=["info", "export", "predict", "eval", "demo", "demo-baseline", "benchmark"],
)
def test_nan_weight_checkpoint_is_refused_by_every_command(
    args: Callable[[dict[str, Path], Path], list[Any]],
    assets: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nan = _nan_checkpoint(assets["ckpt"], tmp_path / "nan.pt")
    before = _files(tmp_path)
    argv = [str(nan) if a == "{nan}" else a for a in args(assets, tmp_path)]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2, err
    assert "NaN or Inf" in err and err.count("\n") == 1, err
    assert "agreement" not in out
    assert _files(tmp_path) == before, "a refused command wrote files"


def test_nan_weights_in_an_onnx_model_are_refused_at_load(
    assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An edgeseg .onnx (it carries its own metadata) with one NaN weight. Runtimes swallow NaN in
    ReLU/max-pool, so the masks would look plausible: every loader refuses the file instead."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(assets["bundle"] / "model.onnx"))
    init = next(t for t in model.graph.initializer if numpy_helper.to_array(t).size > 4)
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    for backend in ("onnxruntime", "openvino"):
        rc, _, err = run_cli(
            ["predict", bad, assets["data"] / "images", "--backend", backend, "--out", tmp_path / "p"], capsys
        )
        assert rc == 2 and f"NaN or Inf value(s) in weight '{init.name}'" in err, err
        assert not (tmp_path / "p").exists()
    rc, _, err = run_cli(["export", bad, "--target", "onnx", "--out", tmp_path / "b"], capsys)
    assert rc == 2 and "NaN or Inf value(s) in weight" in err, err


def test_nan_logits_fail_predict_without_masks(
    assets: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Logits that turn NaN at run time (an FP16 overflow, a damaged runtime): argmax would make
    all-zero masks; the call fails instead, and predict writes nothing and exits 1."""
    from edgeseg.targets.onnx.backend import OnnxRuntimeBackend

    real = OnnxRuntimeBackend._infer

    def overflow(self: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = real(self, feed)
        return {k: np.where(np.arange(v.size).reshape(v.shape) % 7 == 0, np.inf, v) for k, v in out.items()}

    monkeypatch.setattr(OnnxRuntimeBackend, "_infer", overflow)
    out = tmp_path / "p"
    rc, _, err = run_cli(["predict", assets["bundle"], assets["data"] / "images", "--backend", "onnxruntime",
                          "--out", out], capsys)  # fmt: skip
    assert rc == 1 and "is NaN or Inf" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_eval_with_no_labelled_pixel_is_an_error_not_a_nan_figure(
    assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_dataset(tmp_path / "d", n=2, size=(64, 48), classes=2)
    for m in (data / "masks").iterdir():  # every pixel the ignore id
        from PIL import Image

        Image.fromarray(np.full((48, 64), 7, np.uint8)).save(m)
    rc, out, err = run_cli(["eval", assets["ckpt"], "--data", data, "--ignore-index", "7"], capsys)
    assert rc == 2 and "too little evidence, no labelled pixels" in err, err
    assert "mIoU nan" not in out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.integers(min_value=0, max_value=10**6),
    value=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    side=st.sampled_from(["reference", "weights"]),
)
def test_property_non_finite_never_reads_as_agreement(
    assets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, where: int, value: float, side: str
) -> None:
    """NaN/Inf injected anywhere into the reference's logits or into any weight: parity never reports
    an agreement, it raises."""
    from edgeseg.evaluation.parity import Reference, measure_parity
    from edgeseg.models.checkpoint import load_checkpoint

    if side == "weights":
        path = _nan_checkpoint(assets["ckpt"], tmp_path_factory.mktemp("w") / "w.pt", value, where)
        with pytest.raises(InputError, match="NaN or Inf"):
            load_checkpoint(path)
        return
    ref = Reference.from_checkpoint(load_checkpoint(assets["ckpt"]))
    run = ref.run

    def poisoned(x: np.ndarray) -> np.ndarray:
        logits = run(x).copy()
        logits.flat[where % logits.size] = value
        return logits

    ref.run = poisoned
    with pytest.raises(EdgesegRuntimeError, match="NaN or Inf"):
        measure_parity(
            ref, assets["bundle"] / "model.onnx", target="onnx", precision="fp32", img_size=(64, 48), images=1
        )


@settings(max_examples=25, deadline=None)
@given(
    value=st.one_of(
        st.sampled_from([float("nan"), float("inf"), float("-inf")]),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_property_numeric_settings_are_finite_and_in_range(value: float) -> None:
    """TrainConfig (the Python API behind `train`) and the Segmenter's normalisation check accept a
    number only when it is finite and in range; everything else is an InputError, never a run."""
    from edgeseg.training import TrainConfig

    ok = np.isfinite(value) and value > 0
    if ok:
        assert TrainConfig(lr=value).lr == value
    else:
        with pytest.raises(InputError, match="--lr"):
            TrainConfig(lr=value)


def test_segmenter_refuses_non_finite_normalisation(assets: dict[str, Path]) -> None:
    from edgeseg import Segmenter

    for mean, std in (((np.nan, 0.5, 0.5), (0.2, 0.2, 0.2)), ((0.5, 0.5, 0.5), (0.2, np.inf, 0.2))):
        with pytest.raises(InputError, match="finite"):
            Segmenter(assets["bundle"] / "model.onnx", mean=mean, std=std)


# ------------------------------------------------------------------- 5: options that do nothing
COMBINATIONS: list[tuple[str, Callable[[dict[str, Path], Path], list[Any]], str]] = [
    ("export-parity-images-with-val-data",
     lambda a, w: ["export", a["ckpt"], "--target", "onnx", "--val-data", a["data"], "--parity-images", "3",
                   "--out", w / "b"], "--parity-images has no effect with --val-data"),
    ("export-calib-with-fp32",
     lambda a, w: ["export", a["ckpt"], "--target", "onnx", "--calib", a["data"], "--out", w / "b"],
     "apply to --precision int8 only"),
    ("export-batch-without-tensorrt",
     lambda a, w: ["export", a["ckpt"], "--target", "onnx", "--batch", "4", "--out", w / "b"],
     "--batch is not supported for target onnx"),
    ("export-facts-with-a-checkpoint",
     lambda a, w: ["export", a["ckpt"], "--target", "onnx", "--mean", "0.5,0.5,0.5", "--out", w / "b"],
     "apply to an ONNX source only"),
    ("benchmark-max-images-without-data",
     lambda a, w: ["benchmark", a["ckpt"], "--targets", "onnx:fp32", "--max-images", "3", "--out", w / "r"],
     "--max-images has no effect without --data"),
    ("benchmark-calib-without-int8",
     lambda a, w: ["benchmark", a["ckpt"], "--targets", "onnx:fp32", "--calib", a["data"], "--out", w / "r"],
     "--calib has no effect without an int8 target"),
    ("demo-frame-size-with-a-folder",
     lambda a, w: ["demo", a["bundle"], "--source", a["data"] / "images", "--frame-size", "320x240",
                   "--headless"], "--frame-size has no effect with --source"),
    ("demo-fps-with-a-folder",
     lambda a, w: ["demo", a["bundle"], "--source", a["data"] / "images", "--fps", "5", "--headless"],
     "--fps has no effect with --source"),
    ("demo-loop-with-synthetic",
     lambda a, w: ["demo", a["bundle"], "--loop", "--headless"],
     "--loop has no effect with --source synthetic"),
    ("demo-bind-without-serve",
     lambda a, w: ["demo", a["bundle"], "--bind", "0.0.0.0", "--headless"],
     "--bind has no effect without --serve"),
    ("demo-baseline-with-no-compare",
     lambda a, w: ["demo", a["bundle"], "--no-compare", "--baseline", a["ckpt"], "--headless"],
     "--baseline has no effect with --no-compare"),
    ("train-depth-with-smp",
     lambda a, w: ["train", "--arch", "smp:unet", "--depth", "3", "--out", w / "run"],
     "--depth has no effect with --arch smp:unet"),
    ("eval-facts-with-a-checkpoint",
     lambda a, w: ["eval", a["ckpt"], "--data", a["data"], "--img-size", "32"], "apply to an ONNX file only"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "args", "message"), COMBINATIONS, ids=[c[0] for c in COMBINATIONS])
def test_ignored_option_combinations_are_refused(
    case: str,
    args: Callable[[dict[str, Path], Path], list[Any]],
    message: str,
    assets: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _files(assets["root"]) | _files(assets["data"]) | _files(tmp_path)
    rc, _, err = run_cli(args(assets, tmp_path), capsys)
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert _files(assets["root"]) | _files(assets["data"]) | _files(tmp_path) == before


@pytest.fixture(scope="module")
def run1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run on a tiny dataset (read-only for the tests below)."""
    root = tmp_path_factory.mktemp("run")
    data = make_dataset(root / "data", n=8)
    assert main(["train", "--data", str(data), "--epochs", "1", "--out", str(root / "run"), *TINY_TRAIN]) == 0
    return root / "run"


def _digests(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    "extra", [["--lr", "1e-5"], ["--data", "."], ["--width", "8"], ["--seed", "3"], ["--no-augment"]]
)
def test_resume_refuses_settings_it_would_ignore(
    run1: Path, extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digests(run1)
    rc, _, err = run_cli(["train", "--resume", run1 / "last.pt", "--out", tmp_path / "o", *extra], capsys)
    assert rc == 2 and "no effect with --resume" in err and extra[0] in err, err
    assert _digests(run1) == before and not (tmp_path / "o").exists()


def test_resume_api_refuses_changed_settings(run1: Path, tmp_path: Path) -> None:
    from edgeseg.training import train

    with pytest.raises(InputError, match="cannot change: lr"):
        train(resume=str(run1 / "last.pt"), lr=1e-5, out=str(tmp_path / "o"), epochs=2, quiet=True)


def test_resume_into_out_leaves_the_original_run_alone(
    run1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digests(run1)
    out = tmp_path / "continued"
    rc, _, err = run_cli(
        ["train", "--resume", run1 / "last.pt", "--epochs", "2", "--out", out, "--quiet"], capsys
    )
    assert rc == 0, err
    assert _digests(run1) == before, "resuming with --out rewrote the original run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]  # the history came along
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()


# ----------------------------------------------------------------------- 6: recorded paths
def test_recorded_paths_hold_from_another_folder(
    assets: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Export with relative paths from one folder; info and the demo's PyTorch comparison from another."""
    here = tmp_path / "here"
    here.mkdir()
    shutil.copy(assets["ckpt"], here / "best.pt")
    shutil.copytree(assets["data"], here / "val")
    monkeypatch.chdir(here)
    rc, _, err = run_cli(
        ["export", "best.pt", "--target", "onnx", "--precision", "int8", "--calib", "val",
         "--val-data", "val", "--out", "exports/b"], capsys,
    )  # fmt: skip
    assert rc == 0, err
    manifest = json.loads((here / "exports" / "b" / "edgeseg.json").read_text())
    assert manifest["source"]["checkpoint"] == str((here / "best.pt").resolve())
    assert manifest["quantization"]["calibration_source"] == f"folder: {(here / 'val').resolve()}"
    assert str((here / "val").resolve()) in manifest["parity"]["inputs"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    bundle = here / "exports" / "b"
    rc, out, err = run_cli(["info", bundle], capsys)
    assert rc == 0, err
    rc, out, err = run_cli(["demo", bundle, "--headless", "--max-frames", "2"], capsys)
    assert rc == 0, err
    assert "vs PyTorch on" in out and "no baseline" not in out + err


def test_benchmark_reuses_bundles_from_another_folder(
    assets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A benchmark run with relative paths, then the same from another folder: the bundle is found
    by the source's sha256 and reused, and the report names the checkpoint by its resolved path."""
    from edgeseg.bench.run import BenchmarkConfig, benchmark

    here = tmp_path / "here"
    here.mkdir()
    shutil.copy(assets["ckpt"], here / "best.pt")
    config = BenchmarkConfig(
        targets=("onnx:fp32",), runs=1, rounds=1, warmup=0, ceiling_seconds=0, time_budget_s=0, out="bench"
    )
    monkeypatch.chdir(here)
    first = benchmark("best.pt", config, log=lambda s: None)
    assert first.meta["checkpoint"] == str((here / "best.pt").resolve())
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    again = benchmark(
        "here/best.pt", BenchmarkConfig(**{**config.__dict__, "out": "here/bench"}), log=said.append
    )
    assert any(line.startswith("reusing") for line in said), said
    assert again.meta["checkpoint"] == first.meta["checkpoint"]


def test_training_records_resolved_data_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_dataset(tmp_path / "d", n=8)
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(["train", "--data", "d", "--epochs", "1", "--out", "run", *TINY_TRAIN], capsys)
    assert rc == 0, err
    from edgeseg.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "last.pt", with_train_state=True)
    assert ckpt.training["data"] == str((tmp_path / "d").resolve())
    assert json.loads(ckpt.train_state["config"])["data"] == str((tmp_path / "d").resolve())


# ------------------------------------------------------------------------------ 8: messages
def _writing_options() -> list[tuple[str, str]]:
    flags = ("--json", "--out", "--save", "--snapshot-dir", "--cache")
    return [(n, f) for n, cmd in sorted(_commands().items()) for f in flags if f in _options(cmd)]


@pytest.mark.parametrize(("cmd", "flag"), _writing_options())
def test_unwritable_output_is_refused_before_any_work(
    cmd: str, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "x.json"
    rc, out, err = run_cli([cmd, flag, target, *_dummy_args(_commands()[cmd])], capsys)
    assert rc == 2 and f"'{blocker}' is not a writable folder; choose another {flag}" in err, err
    assert err.count("\n") == 1 and out == "", (out, err)
    assert sorted(tmp_path.iterdir()) == [blocker]


def test_writing_options_cover_every_command_that_writes() -> None:
    names = {n for n, _ in _writing_options()}
    assert {"train", "export", "predict", "eval", "benchmark", "demo", "info", "quickstart"} <= names


def _literal_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_-]*[a-z0-9])")
_GLOBAL = {"--help", "--debug", "--version"}
# Flags of other programs that edgeseg's messages quote (pip, torchrun, TensorBoard).
_FOREIGN = {
    "--logdir",
    "--nproc_per_node",
    "--opt_out",
    "--system-site-packages",
    "--extra-index-url",
    "--no-deps",
    # arguments of the programs the benchmark card reads the machine with (nvidia-smi, git)
    "--query-gpu",
    "--format",
    "--porcelain",
    "--untracked-files",
}


def _module_commands() -> dict[Path, set[str]]:
    """cli/<module>.py -> the commands it defines (its @app.command functions)."""
    mapping: dict[Path, set[str]] = {}
    for path in sorted((EDGESEG / "cli").glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "command":
                        named = dec.args[0].value if dec.args else node.name.replace("_", "-").rstrip("-")
                        names.add(named)
        if names:
            mapping[path] = names
    return mapping


@pytest.mark.parametrize("module", sorted(_module_commands()), ids=lambda p: p.name)
def test_cli_hints_name_options_their_command_has(module: Path) -> None:
    """Every `--option` a CLI module's messages and help mention exists on a command of that module,
    unless the same text names the other command that has it ("a bundle exported with --target")."""
    commands = _commands()
    own = _GLOBAL | _FOREIGN | set().union(*(_options(commands[c]) for c in _module_commands()[module]))
    wrong = set()
    for text in _literal_strings(module):
        for flag in {f"--{m}" for m in _FLAG.findall(text)} - own:
            if not any(name in text and flag in _options(cmd) for name, cmd in commands.items()):
                wrong.add(flag)
    assert not wrong, f"{module.name} names options its commands do not have: {sorted(wrong)}"


def test_library_hints_name_options_that_exist() -> None:
    """Every `--option` in the library's messages is an option of some edgeseg command."""
    every = _GLOBAL | _FOREIGN | set().union(*(_options(c) for c in _commands().values()))
    wrong = {
        (str(path.relative_to(EDGESEG)), f"--{m}")
        for path in EDGESEG.rglob("*.py")
        for s in _literal_strings(path)
        for m in _FLAG.findall(s)
        if f"--{m}" not in every
    }
    assert not wrong, f"messages name options no command has: {sorted(wrong)}"


def test_allocator_failures_read_as_out_of_memory(
    assets: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edgeseg.runtimes import create_backend
    from edgeseg.targets.onnx.backend import OnnxRuntimeBackend

    def bad_alloc(self: Any, feed: Any) -> Any:
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : std::bad_alloc\n  at arena.cc:42")

    monkeypatch.setattr(OnnxRuntimeBackend, "_infer", bad_alloc)
    with create_backend("onnxruntime", assets["bundle"] / "model.onnx") as backend:
        spec = backend.input_specs[0]
        with pytest.raises(EdgesegRuntimeError, match="ran out of memory running") as info:
            backend.infer({spec.name: np.zeros((1, 3, 48, 64), np.float32)})
    assert "\n" not in str(info.value)
    # Through the CLI: one line, exit 1, and a hint naming only options the command has.
    rc, _, err = run_cli(
        ["predict", assets["bundle"], assets["data"] / "images", "--backend", "onnxruntime", "--out",
         tmp_path / "p"], capsys,
    )  # fmt: skip
    assert rc == 1 and "ran out of memory" in err and err.count("\n") == 1, err
    monkeypatch.setattr("edgeseg.cli.info._bundle_info", lambda *a: (_ for _ in ()).throw(MemoryError()))
    rc, _, err = run_cli(["info", assets["bundle"]], capsys)
    assert rc == 1 and "out of memory" in err and "--batch-size" not in err, err


def test_library_log_warnings_are_one_edgeseg_line(
    assets: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A library's `logging` warning during a command reads like edgeseg's own warnings."""
    import logging

    import edgeseg.cli.info as info_cmd

    real = info_cmd._bundle_info

    def noisy(*args: Any) -> None:
        logging.getLogger("somelib.sub").warning("range %s is narrow\n  details the user need not see", "x")
        real(*args)

    monkeypatch.setattr(info_cmd, "_bundle_info", noisy)
    rc, _, err = run_cli(["info", assets["bundle"]], capsys)
    assert rc == 0 and err == "edgeseg: warning: range x is narrow\n", err
