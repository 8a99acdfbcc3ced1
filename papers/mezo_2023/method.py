"""MeZO (Malladi et al. 2023, Alg. 1): ZO-SGD with the two-point estimate and a seeded direction.

    z ~ N(0, I) from seed s;  g = [L(θ + ε z) - L(θ - ε z)] / (2ε);  θ ← θ - η g z

z is regenerated from s to perturb, to undo and to update, so no direction and no copy of θ is ever
stored: the memory is that of inference. Here the perturbed losses are evaluated with forward hooks
that hand each module W + ε z_W (θ never written, so it is restored bit for bit); MeZO's literal
in-place +ε, -2ε, +ε sequence is `inplace=True`. Implementation: common.zo (ZOOptimizer, method zo_sgd)."""
from optrepro.zo.optim import ZOOptimizer as Method  # noqa: F401
