"""Table 5 experiments: configs -> data set (stage 1) -> insertion runs (stage 2) -> table (stage 3).

``pass_rate`` measures the policy by level before a run; ``chain`` runs stages 1-2 problem by problem.
"""

from prm_app.experiments.chain import run_chain
from prm_app.experiments.config import ExperimentConfig, load_config
from prm_app.experiments.dataset import DatasetItem, build_dataset
from prm_app.experiments.insertion import InsertionResult, run_insertion
from prm_app.experiments.table import Table5, aggregate, write_table5

__all__ = ["DatasetItem", "ExperimentConfig", "InsertionResult", "Table5", "aggregate", "build_dataset",
           "load_config", "run_chain", "run_insertion", "write_table5"]
