"""The README is the user's manual: the facts it states that code can check must stay true."""

from __future__ import annotations

from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_support_matrix_in_readme_matches_the_format_table():
    from edgeseg.formats import support_matrix_markdown

    assert support_matrix_markdown().strip() in README


def test_ci_blocks_are_present():
    # .ci/run executes the first command after each marker; both must exist.
    assert "<!-- ci:install -->" in README and "<!-- ci:test -->" in README


def test_documented_commands_exist():
    from edgeseg.cli import _command_names

    for cmd in ("train", "eval", "export", "info", "predict", "demo"):
        assert f"edgeseg {cmd} " in README
        assert cmd in _command_names()
