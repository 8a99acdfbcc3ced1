"""ZO-Bench's optimizer set (Zhang et al. 2024): ZO-SGD, ZO-SGD-Sign, ZO-SGD-MMT, ZO-SGD-Cons, ZO-Adam and
the forward gradient, all on the seeded two-point estimate ĝ = [L(θ + ε z) - L(θ - ε z)] / (2ε) · z
(forward gradient: (∇L·v) v from a jvp). Update rules and state in common/zo/optim.py; the table selects
one with `method:`; FO-SGD and FO-Adam are torch.optim's (common.tasks.zo_finetune)."""
from optrepro.zo.optim import METHODS, ZOOptimizer as Method  # noqa: F401
