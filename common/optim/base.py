"""What every optimizer in the repository shares: argument validation with messages that name the
argument, the step loop (evaluate the closure, visit each parameter that has a gradient with its
group and state), lazy state creation, and train/eval switching for optimizers that keep two
points (schedule-free)."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch


def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_args(*, lr=None, lr_positive: bool = False, betas=None, beta_names=("beta1", "beta2"),
               beta_closed: bool = False, **nonneg) -> None:
    """Raise ValueError naming the first bad argument.

    lr: finite and >= 0 (> 0 with `lr_positive`); betas: a pair of finite numbers in [0, 1)
    (in [0, 1] with `beta_closed`, as Lion allows); every other keyword: finite and >= 0."""
    if lr is not None:
        v = _finite("lr", lr)
        if v < 0 or (lr_positive and v == 0):
            raise ValueError(f"lr must be {'> 0' if lr_positive else '>= 0'}, got {lr}")
    if betas is not None:
        if not isinstance(betas, (tuple, list)) or len(betas) != len(beta_names):
            raise ValueError(f"betas must be a pair ({', '.join(beta_names)}), got {betas!r}")
        for name, b in zip(beta_names, betas):
            v = _finite(f"betas ({name})", b)
            if not (0 <= v < 1 or (beta_closed and v == 1)):
                raise ValueError(f"betas ({name}) must be in [0, 1{']' if beta_closed else ')'}, got {b}")
    for name, value in nonneg.items():
        if value is None:
            continue
        if _finite(name, value) < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def check_params(params) -> list:
    """Materialize `params` (tensors or group dicts) and reject wrong types with a clear message."""
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of tensors or dicts, got a single Tensor "
                        "(pass model.parameters() or [tensor])")
    params = list(params)
    out = []
    for p in params:
        if isinstance(p, dict):  # a group: its params may be a generator, which we must not consume
            items = p.get("params", [])
            items = [items] if isinstance(items, torch.Tensor) else list(items)
            p = dict(p, params=items)
        else:
            items = [p]
        for t in items:
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"params must contain tensors, got {type(t).__name__}")
        out.append(p)
    return out


def eval_closure(closure: Callable | None):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def params_with_grad(opt: torch.optim.Optimizer) -> Iterator[tuple[dict, torch.Tensor, dict]]:
    """(group, param, state) for every parameter with a dense gradient."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(opt).__name__} does not support sparse gradients")
            yield group, p, opt.state[p]


def init_state(st: dict, p: torch.Tensor, *zeros: str, step: bool = True, **copies: bool) -> dict:
    """Create missing state: a 0 step counter, zero buffers named in `zeros`, copies of p named in
    `copies`. Returns st; increments nothing."""
    if step and "step" not in st:
        st["step"] = 0
    for name in zeros:
        if name not in st:
            st[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
    for name in copies:
        if name not in st:
            st[name] = p.detach().clone(memory_format=torch.preserve_format)
    return st


def adam_direction(st: dict, g: torch.Tensor, betas, eps: float) -> torch.Tensor:
    """Adam's bias-corrected direction m_hat / (sqrt(v_hat) + eps) for gradient g, its moments kept in
    st (`exp_avg`, `exp_avg_sq` and their own counter `adam_step`, created at the first call, so a
    caller can reset them by deleting the keys): the AdamW part of optimizers that step only some
    tensors with Adam (vectors beside matrices stepped another way; a projected subspace)."""
    b1, b2 = betas
    if "exp_avg" not in st:
        st["exp_avg"], st["exp_avg_sq"], st["adam_step"] = torch.zeros_like(g), torch.zeros_like(g), 0
    st["adam_step"] += 1
    m, v = st["exp_avg"], st["exp_avg_sq"]
    m.mul_(b1).add_(g, alpha=1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    t = st["adam_step"]
    return (m / (1 - b1 ** t)) / (v / (1 - b2 ** t)).sqrt().add_(eps)


class ModeAware:
    """Mixin for optimizers that keep two points and switch with train()/eval() (schedule-free, DoG
    averaging), flagged per group by `train_mode`: a group added later starts in the optimizer's
    current mode, so the next eval()/train() converts it like the others."""

    def add_param_group(self, group):
        groups = getattr(self, "param_groups", None)
        mode = groups[0]["train_mode"] if groups else None
        super().add_param_group(group)
        if mode is not None:
            self.param_groups[-1]["train_mode"] = mode


def set_mode(opt, train: bool) -> None:
    """Call opt.train()/opt.eval() on optimizers that define them (schedule-free); no-op otherwise."""
    fn = getattr(opt, "train" if train else "eval", None)
    if callable(fn):
        fn()


def adam_steps(opt: torch.optim.Optimizer, *extra: str):
    """The loop of every Adam-like step: (group, p, state, bc1, bc2) per parameter with a gradient,
    after creating `exp_avg`, `exp_avg_sq` (and the zero buffers in `extra`) and advancing the step;
    bc1 = 1 - β1^t and bc2 = 1 - β2^t are the bias corrections."""
    for group, p, st in params_with_grad(opt):
        init_state(st, p, "exp_avg", "exp_avg_sq", *extra)
        st["step"] += 1
        b1, b2 = group["betas"]
        yield group, p, st, 1 - b1 ** st["step"], 1 - b2 ** st["step"]
