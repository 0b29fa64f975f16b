"""Text from files made elsewhere is shown as text, and a file of the wrong shape is one line.

Two properties, checked through the commands that read the files:

- Every command shows hostile text literally: class names, folder and file names, benchmark cards
  holding Rich markup (`[bold red]`, a stray `[/]`, which Rich refuses with MarkupError) and
  terminal control characters (`\\x1b[2J` clears the screen, `\\r` overwrites a line, OSC titles,
  C1 CSI, bidi overrides). The output holds no raw control character (newline and tab aside) and the
  markup as typed. A new command belongs in `COMMANDS`.
- Each file kind has one validated reader (edgeseg._records): a manifest (with its parity report),
  a benchmark card, a checkpoint's metadata, an engine cache record. A malformed one, whatever is
  wrong (types, missing keys, deep nesting, NaN/Infinity, out-of-range and zero sizes), is exit
  code 2 and one line on stderr, never a traceback; hypothesis mutates valid files to find more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeseg._records import MAX_DEPTH, RecordError
from edgeseg._text import console, shown
from tests.helpers import make_dataset

ROOT = Path(__file__).resolve().parents[2]
MARKUP = "[bold red]x[/bold red][/]"
CONTROL = "\x1b[2J\x1b]0;title\x07\r\x9b31m\u202eZ"
HOSTILE = MARKUP + CONTROL
PATH_MARKUP = "[bold red]p[blink]"  # no '/' in a file name
PATH_HOSTILE = PATH_MARKUP + CONTROL
# What may not reach a terminal raw: C0 controls but newline and tab, DEL, C1, bidi overrides.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CLASS_NAMES = [f"c{i} {HOSTILE}" for i in range(4)]


def cli(args: list[object]) -> tuple[int, str, str]:
    """`edgeseg ARGS` in this process, its output captured (usable inside hypothesis tests)."""
    from edgeseg.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def assert_one_line(rc: int, err: str) -> None:
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("edgeseg: error: "), err
    assert "Traceback" not in err and not RAW_CONTROL.search(err), err


# ----------------------------------------------------------------- hostile text through every command


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder whose name is hostile text, holding a checkpoint and a bundle whose class names are
    hostile text, a labelled dataset (classes.txt too), a frame and two benchmark cards."""
    import torch

    from edgeseg.exporters import ExportConfig, export
    from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
    from edgeseg.models.unet import UNet

    root = tmp_path_factory.mktemp("hostile") / f"w {PATH_HOSTILE}"
    root.mkdir()
    torch.manual_seed(0)
    model = UNet(3, 4, depth=2, width=4)
    ckpt = Checkpoint(model.config, CLASS_NAMES, Normalization((0.5,) * 3, (0.25,) * 3, "RGB"), (64, 48))
    paths = {"root": root, "ckpt": save_checkpoint(root / "m.pt", ckpt, model)}
    paths["bundle"] = export(
        paths["ckpt"], ExportConfig(target="onnx", out=str(root / "b"), parity_images=1)
    ).bundle
    data = make_dataset(root / "data", n=4, size=(64, 48), classes=4)
    (data / "classes.txt").write_text("\n".join(n.replace("\r", "") for n in CLASS_NAMES) + "\n")
    paths["data"] = data
    paths["frame"] = root / f"f {PATH_HOSTILE}.png"
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(paths["frame"])
    for side in "ab":
        paths[f"card-{side}"] = root / f"{side}.json"
        paths[f"card-{side}"].write_text(json.dumps(_card(cpu=HOSTILE + side, row=HOSTILE)))
    paths["missing"] = root / f"missing {PATH_HOSTILE}.pt"
    return paths


def _args(*parts: object) -> Callable[[dict[str, Path], Path], list[object]]:
    """Command arguments; a str naming a fixture path ("bundle") or "tmp:NAME" (under tmp_path)."""

    def make(h: dict[str, Path], tmp: Path) -> list[object]:
        return [h[p] if p in h else tmp / p[4:] if str(p).startswith("tmp:") else p for p in parts]

    return make


# name: (arguments, the markup its output must show as typed: a class name's or card's MARKUP, a
# file or folder name's PATH_MARKUP, or None where the output shows neither)
COMMANDS: dict[str, tuple[Callable[[dict[str, Path], Path], list[object]], str | None]] = {
    "info-bundle": (_args("info", "bundle"), MARKUP),
    "info-checkpoint": (_args("info", "ckpt"), MARKUP),
    "export": (
        _args("export", "ckpt", "--target", "onnx", "--out", f"tmp:e {PATH_HOSTILE}", "--parity-images", "1"),
        PATH_MARKUP,
    ),
    "predict": (_args("predict", "bundle", "frame", "--out", "tmp:p"), PATH_MARKUP),
    "eval": (_args("eval", "bundle", "--data", "data"), MARKUP),
    "doctor": (_args("doctor", "bundle"), None),
    "demo": (_args("demo", "bundle", "--source", "synthetic", "--headless", "--max-frames", "3"), None),
    "benchmark-compare": (_args("benchmark", "--compare", "card-a", "card-b"), MARKUP),
    "train": (
        _args(
            "train",
            "--data",
            "data",
            "--epochs",
            "1",
            "--img-size",
            "64x48",
            "--depth",
            "2",
            "--width",
            "4",
            "--batch-size",
            "2",
            "--out",
            f"tmp:r {PATH_HOSTILE}",
        ),
        PATH_MARKUP,
    ),
    "error-line": (_args("info", "missing"), PATH_MARKUP),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_show_hostile_text_literally(
    hostile: dict[str, Path], tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # whole table cells on one line, to find the markup in them
    make, shows = COMMANDS[command]
    rc, out, err = cli(make(hostile, tmp_path))
    assert rc == (2 if command == "error-line" else 0), err
    text = out + err
    assert "Traceback" not in text
    assert not RAW_CONTROL.search(text), f"a raw control character reached the terminal: {text!r}"
    if shows:
        assert shows in text, f"markup was not shown as typed: {text!r}"
        assert "\\x1b]0;title\\x07" in text  # visible (off a terminal, click drops CSI codes itself)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_control_codes_are_escaped_on_a_terminal(hostile: dict[str, Path]) -> None:
    """On a terminal click passes escape codes through; the CLI's output escapes them itself."""
    from edgeseg.cli import main

    out = _Terminal()
    with contextlib.redirect_stdout(out):
        assert main(["info", str(hostile["bundle"])]) == 0
    assert "\\x1b[2J" in out.getvalue() and not RAW_CONTROL.search(out.getvalue())
    assert MARKUP in out.getvalue()


def test_shown_and_the_literal_console() -> None:
    assert shown("a\x1b[2Jb\tc\nd\r\x9b\u202e") == "a\\x1b[2Jb\tc\nd\\x0d\\x9b\\u202e"
    assert shown("a\nb\tc", lines=False) == "a\\x0ab\\x09c"
    buffer = io.StringIO()
    from rich.table import Table

    table = Table(title=MARKUP)
    table.add_column(MARKUP)
    table.add_row(HOSTILE)
    console(file=buffer, width=300).print(table)  # a stray [/] would raise MarkupError with markup on
    assert buffer.getvalue().count(MARKUP) == 3 and not RAW_CONTROL.search(buffer.getvalue())


def _code(path: Path) -> list[tuple[int, str]]:
    return [
        (i, ln) for i, ln in enumerate(path.read_text().splitlines(), 1) if not ln.lstrip().startswith("#")
    ]


@pytest.mark.parametrize(
    ("what", "pattern", "home"),
    [
        ("JSON parsed outside the validated reader", r"\bjson\.loads?\(", "_records.py"),
        ("a Rich console that reads markup", r"\bConsole\(|from rich\.console import", "_text.py"),
        ("markup parsed from text", r"from_markup|markup\s*=\s*True", None),
    ],
)
def test_one_reader_and_one_printer(what: str, pattern: str, home: str | None) -> None:
    """New code reads JSON through edgeseg._records and draws with edgeseg._text.console."""
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sorted((ROOT / "edgeseg").rglob("*.py"))
        if p.name != home
        for i, line in _code(p)
        if re.search(pattern, line)
    ]
    assert not hits, f"{what}:\n" + "\n".join(hits)


# ------------------------------------------------------------------------ malformed files, per kind


def _card(cpu: str = "CPU one", row: str = "onnx:fp32") -> dict[str, Any]:
    """A benchmark.json as `benchmark` writes it (the fields `--compare` reads)."""
    from edgeseg.bench.card import environment

    env = environment()
    env["cpu"]["model"] = cpu
    rows = [
        {"name": "pytorch", "target": "pytorch", "precision": "fp32", "model_ms_p50": 8.0, "fps": 50.0},
        {
            "name": row,
            "target": "onnx",
            "precision": "fp32",
            "model_ms_p50": 4.0,
            "total_ms_p50": 8.0,
            "fps": 100.0,
            "miou": 0.5,
            "agreement": 0.99,
            "stages_ms": {"pre": 1.0},
        },
    ]
    meta = {
        "edgeseg_version": "0.1.0",
        "command": "edgeseg benchmark m.pt",
        "git_commit": None,
        "environment": env,
        "img_size": [64, 48],
        "frame_size": [1280, 720],
        "data": "synthetic",
        "torch_threads": 2,
        "ceilings": {"fp32": {"gflops": 120.0, "runtime": "onnxruntime"}},
    }
    return json.loads(json.dumps({"meta": meta, "rows": rows}))


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _set(path: str, value: Any) -> Callable[[Any], Any]:
    """An edit setting the '.'-separated key path (list indices as numbers) to `value`."""

    def edit(data: Any) -> Any:
        if not path:
            return value
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(last) if isinstance(target, list) else last] = value
        return data

    return edit


DEEP = "[" * 50_000 + "]" * 50_000  # json.loads raised RecursionError
RAW = "__raw__"  # a value replaced in the JSON text, for what json.dumps cannot write (NaN, 1e400, depth)

CARD_CASES = {
    "cpu-is-a-list": _set("meta.environment.cpu", []),
    "environment-is-text": _set("meta.environment", "linux"),
    "gpus-is-an-object": _set("meta.environment.gpus", {"name": "x"}),
    "gpu-is-a-number": _set("meta.environment.gpus", [1]),
    "jetson-is-text": _set("meta.environment.jetson", "orin"),
    "packages-nested": _set("meta.environment.packages", {"torch": {"v": 1}}),
    "isa-flags-numbers": _set("meta.environment.cpu.isa_flags", [1, 2]),
    "ceiling-is-a-number": _set("meta.ceilings", {"fp32": 5}),
    "ceiling-gflops-text": _set("meta.ceilings.fp32.gflops", "fast"),
    "meta-is-a-list": _set("meta", []),
    "rows-is-an-object": _set("rows", {}),
    "row-is-a-number": _set("rows", [1]),
    "row-name-object": _set("rows.1.name", {"a": 1}),
    "fps-text": _set("rows.1.fps", "fast"),
    "fps-nan": _set("rows.1.fps", RAW + "NaN"),
    "fps-infinity": _set("rows.1.fps", RAW + "-Infinity"),
    "fps-overflow": _set("rows.1.fps", RAW + "1e400"),
    "latency-negative": _set("rows.1.model_ms_p50", -1),
    "agreement-above-one": _set("rows.1.agreement", 3),
    "deep-nesting": _set("meta.command", RAW + DEEP),
    "nesting-past-the-limit": _set("meta.data", _nest(MAX_DEPTH + 2)),
    "huge-integer": _set("meta.torch_threads", RAW + "9" * 5000),
    "top-level-list": _set("", [1, 2]),
}


def _write(path: Path, data: Any) -> Path:
    text = json.dumps(data)
    # RAW values: the text after the marker goes into the file as JSON, unquoted.
    text = re.sub(r'"__raw__((?:[^"\\]|\\.)*)"', lambda m: json.loads(f'"{m.group(1)}"'), text)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(CARD_CASES))
def test_malformed_cards_are_one_line(tmp_path: Path, case: str) -> None:
    good = _write(tmp_path / "good.json", _card())
    bad = _write(tmp_path / "bad.json", CARD_CASES[case](_card()))
    for args in ([good, bad], [bad, good]):
        rc, _, err = cli(["benchmark", "--compare", *args])
        assert_one_line(rc, err)
        assert str(bad) in err


def test_card_markup_is_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Markup in a card (Rich raised MarkupError on the stray closing tag) is shown as typed."""
    monkeypatch.setenv("COLUMNS", "400")
    a = _write(tmp_path / "a.json", _card(cpu="[/bold] one", row="[link=file:///etc]x[/link]"))
    b = _write(tmp_path / "b.json", _card(cpu="[/bold] two", row="[link=file:///etc]x[/link]"))
    rc, out, err = cli(["benchmark", "--compare", a, b])
    assert rc == 0, err
    assert "[/bold] one" in out and "[/bold] two" in out and "[link=file:///etc]x[/link]" in out


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    """A bundle whose manifest is an exported one's (parity report included); the model file is not
    read before the manifest is, so its bytes do not matter."""
    from edgeseg.manifest import InputSpec, Manifest, OutputSpec, write_manifest

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"onnx bytes")
    parity = {
        "target": "onnx",
        "precision": "fp32",
        "runtime": "onnxruntime",
        "inputs": "synthetic (1 images)",
        "images": 1,
        "img_size": [64, 48],
        "max_abs_logit_diff": 1e-6,
        "mean_abs_logit_diff": 1e-7,
        "pixel_agreement": 1.0,
        "miou_vs_pytorch": 1.0,
        "miou_pytorch_vs_gt": None,
        "miou_artifact_vs_gt": None,
        "reference": "PyTorch",
        "worst_class": "a",
        "boundary_f_vs_pytorch": 1.0,
        "classes": {
            "worst": [{"class": "a", "iou_vs_pytorch": 1.0}],
            "boundary_tolerance_px": 2,
            "boundary_f_vs_pytorch": 1.0,
            "flips": [{"pytorch": "a", "artifact": "b", "pixels": 3, "share": 0.01}],
        },
    }
    write_manifest(
        bundle,
        Manifest(
            target="onnx",
            precision="fp32",
            model_file="model.onnx",
            class_names=("a", "b"),
            input=InputSpec("image", 3, 48, 64, "RGB", (0.5,) * 3, (0.25,) * 3, size_multiple=4),
            output=OutputSpec("logits", 2),
            source={"checkpoint": "m.pt"},
            parity=parity,
            edgeseg_version="0.1.0",
        ),
    )
    return bundle


MANIFEST_CASES = {
    "size-multiple-zero": _set("input.size_multiple", 0),
    "size-multiple-negative": _set("input.size_multiple", -3),
    "size-multiple-text": _set("input.size_multiple", "2"),
    "height-zero": _set("input.height", 0),
    "width-overflow": _set("input.width", RAW + "1e400"),
    "channels-huge": _set("input.channels", 10**9),
    "classes-zero": _set("output.classes", 0),
    "class-names-short": _set("class_names", ["a"]),
    "class-names-numbers": _set("class_names", [1, 2]),
    "std-zero": _set("input.std", [0, 0, 0]),
    "std-length": _set("input.std", [0.5]),
    "mean-nan": _set("input.mean", RAW + "[NaN, 0, 0]"),
    "mean-infinity": _set("input.mean", RAW + "[Infinity, 0, 0]"),
    "color-order-unknown": _set("input.color_order", "HSV"),
    "graph-step-unknown": _set("input.graph_steps", ["exec"]),
    "layout-unknown": _set("input.layout", "CHWN"),
    "ignore-index-negative": _set("ignore_index", -1),
    "file-digest-number": lambda d: (d["files"].update({"model.onnx": 5}), d)[1],
    "tools-nested": _set("tools", {"torch": {"v": 1}}),
    "dynamic-axes-bad": _set("dynamic_axes", {"image": {"x": "batch"}}),
    "schema-text": _set("schema_version", "1"),
    "input-is-a-list": _set("input", []),
    "engine-is-a-list": _set("engine", []),
    "deep-nesting": _set("source", RAW + DEEP),
    "nesting-past-the-limit": _set("model", {"a": _nest(MAX_DEPTH + 2)}),
    "huge-integer": _set("input.height", RAW + "9" * 5000),
    "top-level-list": _set("", []),
    "parity-text": _set("parity", "good"),
    "parity-agreement-above-one": _set("parity.pixel_agreement", 2.5),
    "parity-figure-markup": _set("parity.max_abs_logit_diff", "[bold red]"),
    "parity-figure-nan": _set("parity.miou_vs_pytorch", RAW + "NaN"),
    "parity-classes-list": _set("parity.classes", []),
    "parity-flip-name-number": _set("parity.classes.flips.0.pytorch", 1),
    "parity-flip-share-text": _set("parity.classes.flips.0.share", "1%"),
    "parity-worst-not-object": _set("parity.classes.worst", ["a"]),
    "parity-missing-agreement": lambda d: (d["parity"].pop("pixel_agreement"), d)[1],
}


def _bundle_command(name: str, bundle: Path, tmp_path: Path) -> list[object]:
    if name == "info":
        return ["info", bundle]
    if name == "predict":
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "f.png")
        return ["predict", bundle, tmp_path / "f.png", "--out", tmp_path / "out"]
    return ["eval", bundle, "--data", make_dataset(tmp_path / "data", n=2, size=(64, 48), classes=2)]


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
@pytest.mark.parametrize("command", ["info", "predict", "eval"])
def test_malformed_manifests_are_one_line(fake_bundle: Path, tmp_path: Path, case: str, command: str) -> None:
    path = fake_bundle / "edgeseg.json"
    _write(path, MANIFEST_CASES[case](json.loads(path.read_text())))
    rc, _, err = cli(_bundle_command(command, fake_bundle, tmp_path))
    assert_one_line(rc, err)
    assert "edgeseg.json" in err


def test_manifest_markup_is_data(fake_bundle: Path) -> None:
    path = fake_bundle / "edgeseg.json"
    data = json.loads(path.read_text())
    data["class_names"] = [HOSTILE, "b"]
    data["parity"]["classes"]["flips"][0]["pytorch"] = HOSTILE
    path.write_text(json.dumps(data))
    rc, out, err = cli(["info", fake_bundle])
    assert rc == 0, err
    assert out.count(MARKUP) == 2 and not RAW_CONTROL.search(out)


CHECKPOINT_META_CASES = {
    "not-json": "[bold",
    "deep-nesting": DEEP,
    "class-names-text": _set("class_names", "ab"),
    "class-names-numbers": _set("class_names", [1, 2, 3, 4]),
    "mean-nan": _set("normalization.mean", RAW + "[NaN, 0, 0]"),
    "img-size-zero": _set("img_size", [0, 48]),
    "img-size-text": _set("img_size", "64x48"),
    "channels-huge": _set("model.in_channels", 10**9),
    "classes-zero": _set("model.classes", 0),
    "normalization-list": _set("normalization", []),
    "meta-not-text": 5,
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_META_CASES))
def test_malformed_checkpoint_metadata_is_one_line(tiny_ckpt: Path, tmp_path: Path, case: str) -> None:
    import torch

    payload = torch.load(tiny_ckpt, weights_only=True)
    edit = CHECKPOINT_META_CASES[case]
    if callable(edit):
        probe = tmp_path / "meta.json"
        payload["meta"] = _write(probe, edit(json.loads(payload["meta"]))).read_text()
    else:
        payload["meta"] = edit
    torch.save(payload, tmp_path / "bad.pt")
    rc, _, err = cli(["info", tmp_path / "bad.pt"])
    assert_one_line(rc, err)
    assert "bad.pt" in err


ENGINE_RECORD_CASES = {
    "not-json": "{ nope",
    "list": "[]",
    "missing-sha": json.dumps({"tensorrt": "10.3.0", "compute_capability": "8.7", "precision": "int8"}),
    "version-number": json.dumps(
        {"tensorrt": 10.3, "compute_capability": "8.7", "precision": "int8", "onnx_sha256": "abc"}
    ),
    "flag-text": json.dumps(
        {
            "tensorrt": "10.3.0",
            "compute_capability": "8.7",
            "precision": "int8",
            "onnx_sha256": "abc",
            "version_compatible": "yes",
        }
    ),
    "profile-no-range": json.dumps(
        {
            "tensorrt": "10.3.0",
            "compute_capability": "8.7",
            "precision": "int8",
            "onnx_sha256": "abc",
            "profile": {
                "input": "image",
                "min": [1, 3, 64, 64],
                "opt": [1, 3, 32, 32],
                "max": [1, 3, 64, 64],
            },
        }
    ),
    "nan": '{"tensorrt": "10.3.0", "compute_capability": "8.7", "precision": "int8", "onnx_sha256": "abc", '
    '"build_seconds": NaN}',
    "deep": '{"tensorrt": ' + DEEP + "}",
}


@pytest.mark.parametrize("case", sorted(ENGINE_RECORD_CASES))
def test_malformed_engine_records_are_one_line(tmp_path: Path, case: str) -> None:
    """The engine cache's records decide whether a cached engine is reused: one that is not a
    record's shape is refused (one line naming it and what to do), not guessed at."""
    from edgeseg.targets.tensorrt.cache import find_cached
    from edgeseg.targets.tensorrt.device import Device

    engine = tmp_path / "model.trt10.3.0.sm87.int8.engine"
    engine.write_bytes(b"plan")
    engine.with_suffix(".json").write_text(ENGINE_RECORD_CASES[case])
    with pytest.raises(RecordError) as caught:
        find_cached(tmp_path, "model", "int8", "10.3.0", Device(0, "Orin", "8.7", "12.6"), "abc")
    message = str(caught.value)
    assert "\n" not in message and str(engine.with_suffix(".json")) in message
    assert "delete it and its engine" in message


# ------------------------------------------------------------------- fuzz: mutated valid files


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _key_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    paths = []
    for key, value in items:
        paths.append((*prefix, key))
        paths += _key_paths(value, (*prefix, key))
    return paths


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> str:
    """`valid` with 1-3 values replaced, dropped or made hostile text; as JSON text (NaN kept)."""
    data = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = _key_paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["drop", "replace", "hostile"]))
        if action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "hostile":
            parent[path[-1]] = HOSTILE
        else:
            parent[path[-1]] = draw(json_values)
    return json.dumps(data)


FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _check_outcome(rc: int, out: str, err: str) -> None:
    assert rc in (0, 2), err
    if rc == 2:
        assert_one_line(rc, err)
    assert "Traceback" not in out + err and not RAW_CONTROL.search(out + err)


@FUZZ
@given(text=mutated(_card()))
def test_fuzzed_cards_compare_or_refuse_in_one_line(tmp_path: Path, text: str) -> None:
    good = _write(tmp_path / "good.json", _card())
    (tmp_path / "bad.json").write_text(text)
    _check_outcome(*cli(["benchmark", "--compare", good, tmp_path / "bad.json"]))


@FUZZ
@given(data=st.data())
def test_fuzzed_manifests_show_or_refuse_in_one_line(fake_bundle: Path, tmp_path: Path, data: Any) -> None:
    path = fake_bundle / "edgeseg.json"
    original = path.read_text()
    try:
        path.write_text(data.draw(mutated(json.loads(original))))
        _check_outcome(*cli(["info", fake_bundle]))
    finally:
        path.write_text(original)


def test_fixtures_are_valid(fake_bundle: Path, tmp_path: Path) -> None:
    """The unmutated files pass, so every refusal above is the mutation's."""
    assert cli(["info", fake_bundle])[0] == 0
    good = _write(tmp_path / "good.json", _card())
    assert cli(["benchmark", "--compare", good, good])[0] == 0
