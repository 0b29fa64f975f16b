"""The format table: target lookup, option validation, package checks and the generated docs table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from edgeseg.errors import InputError, MissingDependencyError
from edgeseg.formats import (
    PRECISIONS,
    TARGETS,
    Requirement,
    ensure_packages,
    exportable_targets,
    get_target,
    missing_packages,
    support_matrix_markdown,
    validate_export_options,
)


def test_targets_are_described_once():
    from edgeseg.targets import NAMES

    assert list(TARGETS) == list(NAMES)  # the registration's order; a new target joins here by itself
    assert {"onnx", "openvino", "tensorrt"} <= set(TARGETS)
    onnx = get_target("ONNX")
    assert (
        onnx.suffixes[0] == ".onnx"
        and onnx.precisions == ("fp32", "fp16", "int8")
        and "dynamic" in onnx.options
    )
    assert get_target("openvino").suffixes == (".xml", ".bin")
    trt = get_target("tensorrt")
    assert trt.exportable and trt.suffixes[0] == ".engine"
    assert trt.reference_backend == "onnxruntime" and {"dynamic", "batch"} <= trt.options
    assert exportable_targets() == [t.name for t in TARGETS.values() if t.exportable]
    for target in TARGETS.values():
        assert set(target.precisions) | set(target.planned) <= set(PRECISIONS)
        assert all(isinstance(r, Requirement) and r.extra for r in target.requires)


def test_unknown_target_lists_choices():
    with pytest.raises(InputError, match=r"unknown target 'tflite'; choose from onnx, openvino, tensorrt"):
        get_target("tflite")


def test_validate_accepts_what_the_table_allows():
    assert validate_export_options("onnx", "fp32").name == "onnx"
    assert validate_export_options("openvino", "FP32", dynamic=True).name == "openvino"


@pytest.mark.parametrize(
    ("target", "precision", "message"),
    [
        ("onnx", "fp64", r"unknown precision 'fp64'; choose from fp32, fp16, int8"),
        ("tensorrt", "fp64", r"unknown precision 'fp64'; choose from fp32, fp16, int8"),
    ],
)
def test_validate_refuses_with_the_alternatives(target: str, precision: str, message: str):
    with pytest.raises(InputError, match=message):
        validate_export_options(target, precision)


def test_option_a_target_does_not_accept_is_refused():
    static_only = dataclasses.replace(TARGETS["onnx"], options=frozenset())
    with pytest.raises(InputError, match=r"--dynamic is not supported for target onnx"):
        validate_export_options(static_only, "fp32", dynamic=True)
    assert validate_export_options(static_only, "fp32", dynamic=False) is static_only


def test_missing_packages_and_the_extra_to_install():
    target = dataclasses.replace(
        TARGETS["openvino"],
        requires=(Requirement("json", "core"), Requirement("edgeseg_no_such_package_xyz", "openvino")),
    )
    assert missing_packages(target) == ["edgeseg_no_such_package_xyz"]
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgeseg\[openvino\]'") as info:
        ensure_packages(target)
    assert info.value.extra == "openvino" and isinstance(info.value, InputError)


def test_checks_import_nothing():
    code = (
        "import sys; from edgeseg.formats import TARGETS, missing_packages, support_matrix_markdown; "
        "[missing_packages(t) for t in TARGETS]; support_matrix_markdown(); "
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'openvino', 'tensorrt') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_support_matrix_markdown():
    table = support_matrix_markdown()
    lines = table.strip().splitlines()
    assert lines[0] == "| target | files | fp32 | fp16 | int8 | options | install | runs on |"
    assert len(lines) == 2 + len(TARGETS)
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    onnx_row = next(line for line in lines if line.startswith("| `onnx`"))
    assert "| yes | yes | yes |" in onnx_row and "`--dynamic`" in onnx_row
    assert "edgeseg[onnx]" in onnx_row and "onnxruntime" in onnx_row
    trt_row = next(line for line in lines if line.startswith("| `tensorrt`"))
    assert "| yes | yes | yes |" in trt_row and "`--batch`, `--dynamic`" in trt_row
