r"""AdaFisher (Gomes, Zhang, Belilovsky, Wolf and Hosseini, ICLR 2025): Adam's first moment divided by a
diagonal, Kronecker-factored Fisher estimate instead of Adam's root mean square.

For each supported layer (Linear, Conv2d), every `refresh_every` steps (steps 0, T, 2T, ...; in the
forward and backward passes that precede the optimizer's step) two diagonals are estimated:

    H_new[i] = mean over samples (and, for a convolution, output positions) of a[i]^2,
               a = the layer's input (a convolution's input patches), with a constant 1 appended
               when the layer has a bias;
    S_new[o] = mean over samples (and positions) of s[o]^2, s = dLoss/d(output) as autograd gives it;

each is min-max normalized to [0, 1] (x - min) / (max - min + 1e-6) and folded into a running value,
which starts at ones:

    H <- (gamma / 10) H + (gamma / 100) minmax(H_new)        (the same for S)

The preconditioner of weight entry (o, i) is F[o, i] = S[o] H[i] + Lambda (the bias: S[o] H[last] +
Lambda), the diagonal of the Kronecker-factored Fisher H ⊗ S (damped), and the update is

    m <- beta m + (1 - beta) (g + wd theta),     theta <- theta - lr / (1 - beta^t) * m / F

(no square root: F stands in for the curvature itself). Parameters of other layers use F = 1, i.e.
momentum SGD. These are the equations of the authors' released optimizers/AdaFisher.py (read, not
copied; our tests write them out independently, tests/reference/test_adafisher.py).

A consequence worth knowing (measured in the tests and the README): the running value's fixed point
is gamma/100 / (1 - gamma/10) times the normalized estimate, 0.0087 for gamma = 0.8, so after the
first refresh S[o] H[i] <= 7.6e-5, far below Lambda = 1e-3: F lies in [Lambda, 1.08 Lambda] and the
step is momentum SGD at rate lr / Lambda modulated by at most 8% per coordinate."""
from __future__ import annotations

import math

import torch
from torch import nn

SUPPORTED = (nn.Linear, nn.Conv2d)


def minmax(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(x - min) / (max - min + eps), +inf read as 1 and -inf as 0 first (as the authors do)."""
    x = torch.where(x == math.inf, torch.ones_like(x), torch.where(x == -math.inf, torch.zeros_like(x), x))
    lo = x.min()
    return (x - lo) / (x.max() - lo + eps)


def conv_patches(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The inputs a Conv2d multiplies by its kernel: (batch * positions, in/groups * kh * kw), ordered
    as the flattened kernel (channel, row, column); grouped convolutions stack the groups' patches."""
    if isinstance(conv.padding, str):
        raise ValueError("AdaFisher: Conv2d with string padding is not supported")
    cols = nn.functional.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                                stride=conv.stride)  # (B, C*kh*kw, L), channel-major
    B, _, L = cols.shape
    g = conv.groups
    cols = cols.view(B, g, -1, L).permute(0, 1, 3, 2)  # (B, g, L, C/g*kh*kw)
    return cols.reshape(-1, cols.shape[-1])


def activation_diag(a: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """H_new: the mean square of each input feature (a 1 appended for the bias)."""
    if isinstance(layer, nn.Conv2d):
        rows = conv_patches(a, layer)
    else:
        rows = a.reshape(-1, a.shape[-1])
    if layer.bias is not None:
        rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], 1)
    return rows.pow(2).mean(0)


def output_grad_diag(s: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """S_new: the mean square of each output's gradient (over samples and positions)."""
    if isinstance(layer, nn.Conv2d):
        s = s.movedim(1, -1)
    return s.reshape(-1, s.shape[-1]).pow(2).mean(0)


class AdaFisher(torch.optim.Optimizer):
    """AdaFisher on `model`'s parameters (the model is needed for the layers' hooks)."""

    takes_model = True
    """Built on the model, not its parameters (`repro bench second-order` and the experiment do so)."""

    def __init__(self, model: nn.Module, lr: float = 1e-3, beta: float = 0.9, damping: float = 1e-3,
                 gamma: float = 0.8, refresh_every: int = 100, weight_decay: float = 0.0):
        from optrepro.optim.base import check_args
        check_args(lr=lr, weight_decay=weight_decay)
        for name, v in (("beta", beta), ("gamma", gamma)):
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if not (isinstance(damping, (int, float)) and math.isfinite(damping) and damping > 0):
            raise ValueError(f"damping must be a finite number > 0, got {damping!r}")
        if not (isinstance(refresh_every, int) and refresh_every >= 1):
            raise ValueError(f"refresh_every must be an integer >= 1, got {refresh_every!r}")
        if not isinstance(model, nn.Module):
            raise ValueError(f"AdaFisher needs the model (for its layers' hooks), got {type(model).__name__}")
        super().__init__(list(model.parameters()), dict(lr=lr, beta=beta, weight_decay=weight_decay))
        self.damping, self.gamma, self.refresh_every = float(damping), float(gamma), refresh_every
        self.steps = 0
        self.layers = [m for m in model.modules() if isinstance(m, SUPPORTED)]
        self._hooks = [m.register_forward_hook(self._forward_hook(i)) for i, m in enumerate(self.layers)]
        self._fisher: dict[int, torch.Tensor] = {}
        """Layer i's S H' + damping, computed once per refresh (the factors change only then)."""
        self._owner = {}
        for i, m in enumerate(self.layers):
            self._owner[id(m.weight)] = (i, "weight")
            if m.bias is not None:
                self._owner[id(m.bias)] = (i, "bias")

    # -- the factors -------------------------------------------------------------------------------
    def _refreshing(self) -> bool:
        return self.steps % self.refresh_every == 0

    def _fold(self, key: str, i: int, new: torch.Tensor) -> None:
        """Fold a new estimate into layer i's running factor (kept in its weight's optimizer state, so
        checkpoints and state counts include it)."""
        st = self.state[self.layers[i].weight]
        if key not in st:
            st[key] = torch.ones_like(new)
        st[key].mul_(self.gamma / 10).add_(minmax(new), alpha=self.gamma / 100)
        self._fisher.pop(i, None)

    @property
    def H(self) -> dict[int, torch.Tensor]:
        """{layer index: running activation factor}."""
        return {i: self.state[m.weight]["H"] for i, m in enumerate(self.layers) if "H" in self.state[m.weight]}

    @property
    def S(self) -> dict[int, torch.Tensor]:
        """{layer index: running output-gradient factor}."""
        return {i: self.state[m.weight]["S"] for i, m in enumerate(self.layers) if "S" in self.state[m.weight]}

    def _forward_hook(self, i):
        """On a refresh step's training forward pass: fold H from the layer's input, and hook the
        output so that the backward pass folds S from its gradient."""
        def hook(module, inputs, output):
            if torch.is_grad_enabled() and module.training and self._refreshing() and output.requires_grad:
                self._fold("H", i, activation_diag(inputs[0].detach(), module))
                output.register_hook(lambda g: self._fold("S", i, output_grad_diag(g.detach(), module)))
        return hook

    def fisher_diag(self, p: torch.Tensor) -> torch.Tensor | None:
        """F for parameter p (None: p is not a supported layer's, F = 1)."""
        owner = self._owner.get(id(p))
        if owner is None:
            return None
        i, kind = owner
        st = self.state[self.layers[i].weight]
        if "H" not in st or "S" not in st:
            return None
        if i not in self._fisher:
            self._fisher[i] = torch.outer(st["S"], st["H"]) + self.damping  # (out, in [+1])
        F = self._fisher[i]
        if kind == "bias":
            return F[:, -1].reshape(p.shape)
        layer = self.layers[i]
        return (F[:, :-1] if layer.bias is not None else F).reshape(p.shape)

    # -- the step --------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        from optrepro.optim.base import eval_closure, params_with_grad
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            if "step" not in st:
                st.update(step=0, exp_avg=torch.zeros_like(p))
            st["step"] += 1
            g = p.grad
            if group["weight_decay"]:
                g = g.add(p, alpha=group["weight_decay"])
            b = group["beta"]
            st["exp_avg"].mul_(b).add_(g, alpha=1 - b)
            F = self.fisher_diag(p)
            step = group["lr"] / (1 - b ** st["step"])
            if F is None:
                p.add_(st["exp_avg"], alpha=-step)
            else:
                p.addcdiv_(st["exp_avg"], F, value=-step)
        self.steps += 1
        return loss

    # -- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self):
        sd = super().state_dict()
        sd["adafisher_steps"] = self.steps
        return sd

    def load_state_dict(self, sd):
        sd = dict(sd)
        steps = sd.pop("adafisher_steps", None)
        super().load_state_dict(sd)
        self._fisher.clear()
        if steps is not None:
            self.steps = int(steps)
