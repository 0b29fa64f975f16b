"""Evaluation: the confusion-matrix metrics (metrics.py, numpy only), scoring a model on a dataset
(evaluate.py) and parity of an exported artifact against its reference model (parity.py).

It sits below the exporters, which verify every artifact they write with parity, and above the
Segmenter, which evaluate drives for bundles. Importing the package imports none of its modules.
"""
