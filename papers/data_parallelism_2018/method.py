"""The measurement (steps to a target, tuned per batch size) is experiment.run over
common.optim.algoperf's workloads and trials; the paper has no method of its own to implement."""
from optrepro.papers.data_parallelism_2018.experiment import run

__all__ = ["run"]
