"""The app layer of prm-fire: what a user runs, above the core (``prm_fire``) and the scorers (``prm_models``).

* :mod:`prm_app.cli` -- the ``prm-fire`` command (branch, search, table5, processbench, export, view);
* :mod:`prm_app.experiments` -- the Table 5 chain, its configs, tables and claims;
  :mod:`prm_app.experiments.resources` is the one place that builds engines and scorers;
* :mod:`prm_app.evaluation` -- the ProcessBench evaluator of the scorers;
* :mod:`prm_app.export` -- training data (preference and step-wise rows) out of trees and journals;
* :mod:`prm_app.preflight` -- a whole run's inputs checked before any model loads.

Imports go one way: ``prm_fire`` <- ``prm_models`` <- ``prm_app``.
"""
