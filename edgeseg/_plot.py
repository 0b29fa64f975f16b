"""matplotlib for the figures edgeseg writes (training curves, benchmark charts), imported lazily."""

from __future__ import annotations


def pyplot():  # type: ignore[no-untyped-def]
    """matplotlib.pyplot on the file-only Agg backend, imported at first use."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, works on servers and in CI
    import matplotlib.pyplot as plt

    return plt
