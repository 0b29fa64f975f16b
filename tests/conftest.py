"""Shared fixtures: small datasets written to tmp folders, the real sample data when present, and the
session's tiny models (one checkpoint, its bundles per target/precision, one briefly trained model),
built once for the whole run because every export or training costs seconds.
The builders behind them are in tests/helpers.py.

The session-scoped artifacts are read-only by convention: a test that changes, damages, deletes or
writes next to one copies it into its own tmp_path first (shutil.copy / copytree)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import CAMVID, make_checkpoint, make_dataset


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`-n N`) every worker is a process of its own: give each a share of the
    cores for torch's thread pool, so N workers do not each spin a pool the size of the machine."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True)
def _no_timed_progress_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where stderr is no terminal, long work prints a progress line every 30 s: on a slow machine
    that would add lines to the output tests compare. Tests of those lines set the interval."""
    import edgeseg._progress

    monkeypatch.setattr(edgeseg._progress, "PLAIN_EVERY_S", 1e9)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "tiny")


@pytest.fixture
def camvid() -> Path:
    if not (CAMVID / "train" / "images").is_dir():
        pytest.skip(f"sample data not found at {CAMVID}")
    return CAMVID


_SHARED: dict[Path, str] = {}  # the files of tiny_ckpt and tiny_bundle, with their sha256


def _digests(*paths: Path) -> dict[Path, str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`make_checkpoint`'s default model, untrained: 3 channels (RGB), 4 classes c0..c3, 64x48,
    depth 2, width 4, seed 0. Read-only: copy it into tmp_path before changing or deleting it
    (the end of the session checks that it, and every bundle of `tiny_bundle`, is unchanged)."""
    pytest.importorskip("torch")
    ckpt = make_checkpoint(tmp_path_factory.mktemp("tiny-model") / "ckpt.pt")
    _SHARED.update(_digests(ckpt))
    yield ckpt
    changed = sorted(str(f) for f, d in _SHARED.items() if not f.is_file() or _digests(f)[f] != d)
    _SHARED.clear()
    assert not changed, f"a test changed or removed the session's shared model files: {changed}"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_ckpt: Path) -> Callable[..., Path]:
    """tiny_bundle(target, precision="fp32", dynamic=False): the bundle folder of `tiny_ckpt` for
    that combination, exported on first use (parity on 1 synthetic image) and kept for the session,
    next to the checkpoint (its manifest records it as the source). A missing optional package skips
    the asking test, naming the extra. Read-only: copy a bundle into tmp_path before changing it."""
    from edgeseg.errors import MissingDependencyError

    cache: dict[tuple[str, str, bool], Path] = {}

    def get(target: str, precision: str = "fp32", dynamic: bool = False) -> Path:
        key = (target, precision, dynamic)
        if key not in cache:
            from edgeseg.exporters import ExportConfig, export

            out = tiny_ckpt.parent / f"{target}-{precision}{'-dynamic' if dynamic else ''}"
            config = ExportConfig(
                target=target, precision=precision, dynamic=dynamic, parity_images=1, out=str(out)
            )
            try:
                cache[key] = Path(export(tiny_ckpt, config).bundle)
            except MissingDependencyError as exc:
                pytest.skip(str(exc))
            _SHARED.update(_digests(cache[key]))
        return cache[key]

    return get


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(best checkpoint, its labelled data): a tiny U-Net (depth 2, width 8) trained 6 epochs on 12
    images at 48x48, enough to predict more than one class (an untrained model outputs near-constant
    masks that any precision keeps). Read-only."""
    from edgeseg import train

    root = tmp_path_factory.mktemp("trained-tiny")
    data = make_dataset(root / "data", n=12, size=(48, 48))
    result = train(data=str(data), img_size=(48, 48), epochs=6, depth=2, width=8, batch_size=4,
                   out=str(root / "run"), quiet=True)  # fmt: skip
    return Path(result.best_checkpoint), data


@pytest.fixture
def small_ceilings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A benchmark in this test measures its ceilings (edgeseg.bench.ceilings) on a small probe (two
    3x3 convolutions of 16 channels on 8x8) instead of the full-size chain: the same code and the
    same kinds of figures, in a fraction of the time (a probe a row beats is raised as in any run).
    For tests of a benchmark's other results; the ceilings themselves are checked in
    tests/bench/test_benchmark.py (test_rows_hold_measured_figures measures them at full size)."""
    from edgeseg.bench import ceilings

    monkeypatch.setattr(ceilings, "PROBE", ceilings.Probe(channels=16, size=8, depth=2))
