"""(Mis)Fitting (Li et al. 2025) is a survey: its "method" is the fitting procedure and the
choices it shows matter. Each choice is an argument of common.scaling.fit_chinchilla:
  loss   huber (delta 1e-3, Hoffmann et al.) | mse
  space  log (residuals of log L) | linear (residuals of L)
  init   Hoffmann's 4,500-point grid (best `top_k` refined) | a single start
  N      total parameters | non-embedding parameters (a column of the data)
and the conclusion we track is the compute-optimal tokens per parameter D*/N* at a fixed budget
(common.scaling.chinchilla_frontier)."""
from optrepro.scaling import chinchilla_frontier, chinchilla_objective, fit_chinchilla  # noqa: F401
