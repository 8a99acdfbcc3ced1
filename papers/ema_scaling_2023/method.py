"""The EMA scaling rule of Busbridge et al. (2023), "How to Scale Your EMA" (arXiv:2307.13813).

A model EMA follows its target model: after every optimizer step
    theta_ema <- rho * theta_ema + (1 - rho) * theta.
When the batch size is scaled by kappa (B -> kappa B) and the optimizer by its own scaling rule
(SGD: lr -> kappa lr, steps -> steps / kappa, the same samples seen), the EMA momentum is scaled as
    rho -> rho ** kappa,
which keeps the EMA's horizon in samples: kappa updates with rho towards a fixed target equal one
update with rho ** kappa. Without it (rho kept), the EMA averages over kappa times more samples and
lags its target.

The pieces are shared (common/optim/ema.py: ModelEMA, scaled_momentum, SGDScaling); this module names
the paper's rule on top of them."""
from optrepro.optim.ema import ModelEMA, SGDScaling, scaled_momentum

__all__ = ["ModelEMA", "SGDScaling", "scaled_momentum", "scaled_hyperparameters"]


def scaled_hyperparameters(batch: int, lr: float, steps: int, rho: float, kappa: int,
                           scale_ema: bool = True) -> SGDScaling:
    """SGD with a model EMA at batch `batch` x `kappa`: linear lr scaling, steps / kappa and, with
    `scale_ema`, the EMA scaling rule rho ** kappa (without it: rho unchanged, the baseline the paper
    argues against)."""
    return SGDScaling.of(batch, lr, steps, rho, kappa, scale_ema)
