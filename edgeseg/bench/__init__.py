"""Benchmarking: the run (run.py: rows, timings, accuracy), its reports (report.py: table, JSON,
CSV, Markdown, PNG) and the hardware model (hardware.py: MAC counts, CPU peak, RSS sampling).

``edgeseg.benchmark`` is the public entry point; importing this package imports none of its modules.
"""
