"""What `--help` says a default is, is the default that applies.

A command's option that maps onto a field of the config it builds (TrainConfig, ExportConfig,
BenchmarkConfig, QuickstartConfig, DemoConfig) either leaves the value to the config (None) or has the
config's own default; a number a help text names as the default ("(default 8)", "Default: 8") is that
default. A new option or a changed default that drifts apart fails here."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from edgeseg.cli import command

pytest.importorskip("torch")


def _configs() -> dict[str, type]:
    from edgeseg.bench.run import BenchmarkConfig
    from edgeseg.demo import DemoConfig
    from edgeseg.exporters import ExportConfig
    from edgeseg.quickstart import QuickstartConfig
    from edgeseg.training import TrainConfig

    return {
        "train": TrainConfig,
        "export": ExportConfig,
        "benchmark": BenchmarkConfig,
        "quickstart": QuickstartConfig,
        "demo": DemoConfig,
    }


def _default(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _same(cli: Any, config: Any) -> bool:
    if isinstance(config, tuple) and isinstance(cli, str):
        square = len(set(config)) == 1 and cli == str(config[0])  # "N" stands for NxN
        return square or cli == "x".join(map(str, config)) or cli == ",".join(map(str, config))
    if isinstance(config, float) and isinstance(cli, (int, float)):
        return float(cli) == config
    return cli == config or (isinstance(cli, str) and str(config) == cli)


@pytest.mark.parametrize("name", ["train", "export", "benchmark", "quickstart", "demo"])
def test_option_defaults_are_the_configs_defaults(name: str) -> None:
    cls = _configs()[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    sub = command().commands[name]  # type: ignore[attr-defined]
    drifted = []
    for param in sub.params:
        if param.name not in fields or param.default is None:
            continue
        config = _default(cls, param.name)
        if config is dataclasses.MISSING or config is None:
            continue  # the config needs the value: the command's default is the only one
        if not _same(param.default, config):
            drifted.append(f"--{param.name.replace('_', '-')}: command {param.default!r}, config {config!r}")
    assert not drifted, f"edgeseg {name}: {drifted}"


_NAMED_DEFAULT = re.compile(r"(?:\(default ([\w.,]+)\)|Default: ([\w.,]+)\.)")


@pytest.mark.parametrize("name", ["train", "export", "benchmark", "quickstart", "demo"])
def test_defaults_named_in_help_are_the_defaults(name: str) -> None:
    cls = _configs()[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    sub = command().commands[name]  # type: ignore[attr-defined]
    problems = []
    for param in sub.params:
        for match in _NAMED_DEFAULT.finditer(getattr(param, "help", None) or ""):
            said = match.group(1) or match.group(2)
            if not re.fullmatch(r"[\d.]+|[a-z0-9]+(,[a-z0-9]+)+", said):
                continue  # words ("the training size") are checked by the commands' own tests
            applied = param.default if param.default is not None else None
            if applied is None and param.name in fields:
                applied = _default(cls, param.name)
            if applied is None or not (_same(said, applied) or _same(applied, said)):
                problems.append(f"--{param.name.replace('_', '-')}: help says {said}, applied {applied!r}")
    assert not problems, f"edgeseg {name}: {problems}"


def test_calib_help_says_what_calibration_source_does() -> None:
    """export/benchmark --calib: without it, a checkpoint calibrates on its training folder."""
    for name in ("export", "benchmark"):
        sub = command().commands[name]  # type: ignore[attr-defined]
        calib = next(p for p in sub.params if p.name == "calib")
        assert "training folder" in calib.help and "Default: synthetic." not in calib.help, calib.help
