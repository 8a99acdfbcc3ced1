"""PSPS's table runs the shared badly-scaled logistic-regression task (common.tasks.logreg), named in
configs/psps_2024/scaled_logreg.yaml: one row, one seed, SPS / PSPS (method.py's preconditioners) or
a torch baseline (SGD, Adam) on the standardized or the rescaled features."""
from optrepro.tasks.logreg import LogRegConfig as Config  # noqa: F401
from optrepro.tasks.logreg import preflight, run  # noqa: F401
