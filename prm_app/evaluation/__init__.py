"""Evaluation of the scorers in :mod:`prm_models` on step-labelled data (a top layer, like ``cli`` and
``experiments``: it uses ``prm_models`` through its public API only).

:mod:`~prm_app.evaluation.processbench` scores ProcessBench splits (first-error accuracy, F1).
"""
