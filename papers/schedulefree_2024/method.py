r"""Schedule-Free SGD and AdamW (Defazio et al., NeurIPS 2024, arXiv:2405.15682), Algorithm 1.

No learning-rate schedule and no stopping time T: the method keeps a base sequence z (plain SGD
or Adam steps), an average x of the z's, and evaluates gradients at an interpolation y:

    y_t     = (1 - β) z_t + β x_t                 # gradients are taken here
    z_{t+1} = z_t - γ_t (d_t + λ y_t)             # d_t = g_t (SGD) or g_t / (sqrt(v̂_t) + ε) (AdamW)
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},  c_{t+1} = w_{t+1} / Σ_{i<=t+1} w_i
    w_t     = t^r · (max_{i<=t} γ_i)^p            # r = 0, p = 2 by default: a uniform average
                                                   #   after warmup, warmup steps down-weighted
    γ_t     = γ min(1, t / warmup_steps)

x is what the method *outputs* (evaluate and save at x); y is where it trains. Like the authors'
code, only y and z are stored: the parameter tensor holds y in train mode and x in eval mode, and
x = (y - (1 - β) z) / β is recovered on `eval()`. Substituting x into the recursions gives the
stored update, one pass over memory:

    y ← lerp(y, z, c_{t+1}) + γ_t (β (1 - c_{t+1}) - 1) (d_t + λ y_t);   z ← z - γ_t (d_t + λ y_t)

(reference.py keeps x, y and z separately and is tested equal to this). Call `opt.train()` before
training steps and `opt.eval()` before evaluating or saving; `common.train` does both. The Adam
second moment is bias-corrected inside the root, v̂_t = v_t / (1 - β2^t), as in the authors' code.
"""
from __future__ import annotations

import torch

from optrepro.kernels import batched, fused
from optrepro.optim.base import ModeAware, check_args, check_params, eval_closure, init_state, params_with_grad


@fused
def schedulefree_update(y: torch.Tensor, g: torch.Tensor, z: torch.Tensor, v: torch.Tensor, lr: float, beta: float,
                        beta2: float, eps: float, weight_decay: float, ckp1: float, bc2: float,
                        adaptive: bool) -> None:
    """One schedule-free step in place on y (the parameter), z and v (AdamW only)."""
    if adaptive:
        v.mul_(beta2).add_(g * g * (1 - beta2))
        d = g / ((v / bc2).sqrt() + eps) + weight_decay * y
    else:
        d = g + weight_decay * y
    y.lerp_(z, ckp1)
    y.add_(d * (lr * (beta * (1 - ckp1) - 1)))
    z.sub_(d * lr)


class _ScheduleFree(ModeAware, torch.optim.Optimizer):
    adaptive = False

    def __init__(self, params, defaults: dict):
        defaults.update(k=0, train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)
        super().__init__(check_params(params), defaults)

    def _beta(self, group) -> float:
        return group["betas"][0] if self.adaptive else group["momentum"]

    @torch.no_grad()
    def _switch(self, train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            beta = self._beta(group)
            w = 1 - beta if train else 1 - 1 / beta   # x -> y, or y -> x
            for p in group["params"]:
                if "z" in self.state[p]:
                    p.lerp_(self.state[p]["z"], w)
            group["train_mode"] = train

    def train(self):
        """Parameters hold y (where gradients are taken)."""
        self._switch(True)

    def eval(self):
        """Parameters hold x (the averaged iterate the method outputs)."""
        self._switch(False)

    @torch.no_grad()
    def step(self, closure=None):
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError(f"{type(self).__name__}.step() called in eval mode: call opt.train() before "
                               "training steps and opt.eval() before evaluation")
        loss = eval_closure(closure)
        for group in self.param_groups:  # per-group bookkeeping: warmup, averaging weight
            k = group["k"]
            lr = group["lr"] * (min(1.0, (k + 1) / group["warmup_steps"]) if group["warmup_steps"] else 1.0)
            group["scheduled_lr"] = lr
            group["lr_max"] = max(lr, group["lr_max"])
            weight = (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
            group["weight_sum"] += weight
            group["ckp1"] = weight / group["weight_sum"] if group["weight_sum"] > 0 else 0.0
            group["k"] = k + 1
        with batched(schedulefree_update) as call:  # one compiled call per group
            for group, p, st in params_with_grad(self):
                init_state(st, p, *(["exp_avg_sq"] if self.adaptive else []), step=False, z=True)
                beta2 = group["betas"][1] if self.adaptive else 0.0
                call(p, p.grad, st["z"], st.get("exp_avg_sq", st["z"]), group["scheduled_lr"],
                                    self._beta(group), beta2, group.get("eps", 0.0), group["weight_decay"],
                                    group["ckp1"], 1 - beta2 ** group["k"], self.adaptive)
        return loss


class SGDScheduleFree(_ScheduleFree):
    """Schedule-free SGD (defaults from the paper's code: lr 1.0, momentum β 0.9)."""

    def __init__(self, params, lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0):
        check_args(lr=lr, betas=(momentum,), beta_names=("momentum",), weight_decay=weight_decay,
                   warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power)
        if momentum == 0:
            raise ValueError("momentum must be in (0, 1) for schedule-free SGD (x is recovered by dividing by it)")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power))


class AdamWScheduleFree(_ScheduleFree):
    """Schedule-free AdamW (defaults from the paper's code: lr 0.0025, betas (0.9, 0.999))."""
    adaptive = True

    def __init__(self, params, lr: float = 0.0025, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
                   weight_lr_power=weight_lr_power)
        if betas[0] == 0:
            raise ValueError("betas (beta1) must be in (0, 1) for schedule-free AdamW")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power))
