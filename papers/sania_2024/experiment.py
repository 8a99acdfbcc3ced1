"""SANIA's table runs the shared badly-scaled logistic-regression task (common.tasks.logreg), named in
configs/sania_2024/invariance.yaml: one row, one seed, SANIA's AdaGrad-SQR / Adam-SQR (method.py),
PSPS's square-root Adam preconditioner, SPS, or a torch baseline, on the standardized or the
rescaled features (the same examples in the same order for a given seed)."""
from optrepro.tasks.logreg import LogRegConfig as Config  # noqa: F401
from optrepro.tasks.logreg import preflight, run  # noqa: F401
