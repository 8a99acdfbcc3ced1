"""Zeroth-order optimizers that take a loss closure: `opt.step(closure) -> loss`.

The ZO-Bench set (Zhang et al. 2024, Sec. 3), on the estimate ĝ of common.zo.estimators:
- zo_sgd (MeZO):   θ ← θ - η ĝ, applied by regenerating each z_j: no optimizer state at all.
- zo_sign:         θ ← θ - η sign(ĝ) (one parameter's ĝ at a time: no state).
- zo_mmt:          m ← β m + ĝ;  θ ← θ - η m (one dense state tensor per parameter).
- zo_cons:         the conservative step: of θ, θ - η ĝ and θ + η ĝ keep the one with the lowest loss
                   on the batch (two more evaluations per step).
- zo_adam:         Adam's moments on ĝ (two dense state tensors per parameter).
- forward_grad:    θ ← θ - η (∇f·v) v with ∇f·v from a jvp (`loss_fn` needed instead of a closure).
Weight decay is decoupled: θ ← θ (1 - η λ) before the update.

Seeds: step t with query j uses seed `seed · 1e6 + t · q + j`, so a run is reproducible and a resumed
run continues the same directions."""
from __future__ import annotations

import torch

from optrepro.errors import ConfigError
from optrepro.zo.estimators import check_eps, forward_grad, rge, scalar
from optrepro.zo.perturb import ParamSpace, add_

METHODS = ("zo_sgd", "zo_sign", "zo_mmt", "zo_cons", "zo_adam", "forward_grad")


class ZOOptimizer:
    def __init__(self, model, lr: float, method: str = "zo_sgd", eps: float = 1e-3, q: int = 1,
                 two_sided: bool = True, dist: str = "gaussian", masks=None, params=None, momentum: float = 0.9,
                 betas=(0.9, 0.999), adam_eps: float = 1e-8, weight_decay: float = 0.0, seed: int = 0,
                 inplace: bool = False):
        if method not in METHODS:
            raise ConfigError(f"ZO method '{method}' unknown; valid: {', '.join(METHODS)}")
        check_eps(lr, "learning rate")
        check_eps(eps)
        if q < 1:
            raise ConfigError(f"queries per step q must be >= 1, got {q}")
        self.model, self.lr, self.method, self.eps, self.q = model, float(lr), method, float(eps), int(q)
        self.two_sided, self.momentum, self.betas, self.adam_eps = two_sided, momentum, betas, adam_eps
        self.weight_decay, self.seed, self.inplace = weight_decay, int(seed), inplace
        self.space = ParamSpace(params if params is not None else model.parameters(), masks, dist)
        self.t = 0
        self.state: dict = {}
        self.evals = 0
        self._checked = False

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"t": self.t, "evals": self.evals, "checked": self._checked,
                "state": {k: [x.clone() for x in v] for k, v in self.state.items()}}

    def load_state_dict(self, sd: dict) -> None:
        self.t, self.evals = sd["t"], sd["evals"]
        self._checked = sd.get("checked", self.t > 0)  # the closure check ran before the first step
        self.state = {k: list(v) for k, v in sd["state"].items()}

    def _seeds(self) -> list:
        return [self.seed * 1_000_000 + self.t * self.q + j for j in range(self.q)]

    def _dense_state(self, name: str) -> list:
        if name not in self.state:
            self.state[name] = [torch.zeros_like(p) for p in self.space.params]
        return self.state[name]

    @torch.no_grad()
    def _decay(self) -> None:
        if self.weight_decay:
            for p in self.space.params:
                p.mul_(1 - self.lr * self.weight_decay)

    @torch.no_grad()
    def _apply(self, est, sign: float = 1.0) -> None:
        """θ ← θ - sign · η · update(ĝ) for the stateless and dense-state methods."""
        sp, lr = self.space, self.lr
        if self.method in ("zo_sgd", "zo_cons", "forward_grad"):
            for c, s in zip(est.coefs, est.seeds):
                add_(sp, s, -sign * lr * c)
            return
        for i, p in enumerate(sp.params):
            g = torch.zeros_like(p)
            for c, s in zip(est.coefs, est.seeds):
                g.add_(sp.z(i, s), alpha=c)
            if self.method == "zo_sign":
                p.add_(torch.sign(g), alpha=-sign * lr)
            elif self.method == "zo_mmt":
                m = self._dense_state("m")[i]
                m.mul_(self.momentum).add_(g)
                p.add_(m, alpha=-sign * lr)
            elif self.method == "zo_adam":
                b1, b2 = self.betas
                m, v = self._dense_state("m")[i], self._dense_state("v")[i]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                mhat = m / (1 - b1 ** self.t)
                vhat = v / (1 - b2 ** self.t)
                p.addcdiv_(mhat, vhat.sqrt_().add_(self.adam_eps), value=-sign * lr)

    def step(self, closure=None, loss_fn=None) -> float:
        """One step. closure() -> scalar loss on the current batch (at the current parameters);
        forward_grad needs loss_fn(params_tuple) -> scalar instead (a functional loss for jvp)."""
        if self.method == "forward_grad":
            if loss_fn is None:
                raise ConfigError("method forward_grad needs loss_fn(params) (a functional loss for torch.func.jvp)")
            self.t += 1
            est = forward_grad(loss_fn, self.space, self._seeds()[0])
            self.evals += 1
            self._decay()
            self._apply(est)
            return est.loss
        if closure is None:
            raise ConfigError(f"method {self.method} needs a loss closure")
        f0 = None
        if not self._checked or self.method == "zo_cons" or not self.two_sided:
            with torch.no_grad():  # the first call also checks the closure before any parameter moves
                f0 = scalar(closure())
            self.evals += 1
            self._checked = True
        self.t += 1
        est = rge(closure, self.model, self.space, self._seeds(), self.eps, self.two_sided, self.inplace,
                  f0 if not self.two_sided else None)
        self.evals += est.evals
        self._decay()
        if self.method != "zo_cons":
            self._apply(est)
            return est.loss
        # conservative: try θ - η ĝ and θ + η ĝ, keep the best of the three on this batch
        self._apply(est, +1.0)
        with torch.no_grad():
            f_minus = scalar(closure())
        self._apply(est, -2.0)
        with torch.no_grad():
            f_plus = scalar(closure())
        self.evals += 2
        best = min((f0, 0.0), (f_minus, 1.0), (f_plus, -1.0))
        if best[1] != -1.0:
            self._apply(est, 1.0 + best[1])  # from θ + η ĝ: back to θ (+1) or on to θ - η ĝ (+2) or stay (0)
        return best[0]
