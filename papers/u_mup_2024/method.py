"""u-muP (Blake et al., 2024): the maximal update parametrization written with unit scaling.

Every weight is initialized with unit variance, N(0, 1), and the width dependence muP puts in the
initialization moves into fixed multipliers in the forward pass; each op also scales its
gradients so that they are unit-scale in the backward pass. For a decoder-only transformer with L
pre-norm layers (no positional embedding, RMSNorm without gain, SwiGLU MLP of width 4d):

    embedding        h0 = E[x]                                   E: vocab x d, lookup unscaled
    linear           y = W x / sqrt(fan_in)                      grad_x scaled like the output
    MLP in/gate      y = W x / sqrt(fan_in)                      grad_x * 1/sqrt(fan_out) (no constraint)
    SwiGLU           y = s a silu(g),  s = 2^(3/4)               grad_a, grad_g * s
    attention        y = s softmax(q k^T / d_head) v             q, k, v grads * s,
                     s = 1 / loginterp(1/(1 + 4 d_head), sqrt(log(T)/T), 1)   (causal, length T)
    residual i       x <- tau/c f(norm(x)) + 1/c x,  c = sqrt(1 + tau^2); in backward the branch
                     and the skip are scaled again by tau/c and 1/c at the split
    tau              tau_i = 1 / sqrt(L + floor((i+1)/2) + floor(i/2)) for sub-layer i = 0..2L-1
    readout          logits = W h / fan_in                       grad_h * 1/sqrt(vocab)
    loss             cross-entropy summed, divided by the token count in forward only;
                     grad_logits * vocab / sqrt(vocab - 1)
    weight grads     * 1/sqrt(tokens in the batch) (linear, readout); embedding * sqrt(vocab/tokens)

loginterp(a, lo, hi) = exp(a log hi + (1 - a) log lo). With Adam the per-tensor learning rate is
eta * rule(W): eta / sqrt(fan_in) for hidden weights and the embedding (whose fan-in is d),
eta for the readout, and an extra 1/sqrt(L) for every weight inside the L-layer stack. That rule is
what makes eta transfer across width.

The standard parametrization (SP) used for comparison is the same network as PyTorch builds it by
default: nn.Linear's uniform init (std 1/sqrt(3 fan_in)), nn.Embedding's N(0, 1), attention
scale 1/sqrt(d_head), x <- x + f(norm(x)), a mean cross-entropy, and one Adam learning rate for
every tensor.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

PARAMETRIZATIONS = ("umup", "sp")


class _Scale(torch.autograd.Function):
    """Multiply by `fwd` in the forward pass and the incoming gradient by `bwd` in the backward
    pass, independently."""

    @staticmethod
    def forward(ctx, x, fwd: float, bwd: float):
        ctx.bwd = bwd
        return x * fwd if fwd != 1.0 else x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.bwd, None, None


def scaled(x: torch.Tensor, fwd: float = 1.0, bwd: float = 1.0) -> torch.Tensor:
    return _Scale.apply(x, fwd, bwd)


def loginterp(alpha: float, lo: float, hi: float) -> float:
    return math.exp(alpha * math.log(hi) + (1 - alpha) * math.log(lo))


def residual_tau(index: int, n_sublayers: int) -> float:
    """Branch weight of sub-layer `index` (attention even, MLP odd) so that the embedding, all
    attention and all MLP branches contribute equal variance (the paper's default rule)."""
    n_attn, n_mlp = (index + 1) // 2, index // 2
    return 1.0 / math.sqrt(n_sublayers / 2 + n_attn + n_mlp)


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def unit_linear(x: torch.Tensor, w: torch.Tensor, readout: bool = False, constrained: bool = True):
    """Unit-scaled x W^T: output / fan_in^p (p = 1 for the readout, 1/2 otherwise); the input's
    gradient scaled like the output when `constrained`, by 1/sqrt(fan_out) otherwise; the weight's
    gradient by 1/sqrt(rows of x)."""
    fan_out, fan_in = w.shape
    out_scale = fan_in ** (-1.0 if readout else -0.5)
    in_grad = out_scale if constrained else fan_out ** -0.5
    rows = x.numel() // fan_in
    y = F.linear(scaled(x, bwd=in_grad), scaled(w, bwd=rows ** -0.5))
    return scaled(y, fwd=out_scale)


def unit_attention(q, k, v):
    """Causal attention with the 1/d_head (muP) logit scale, rescaled to unit output."""
    T, d_head = v.shape[-2], v.shape[-1]
    s = 1.0 / loginterp(1.0 / (1.0 + 4.0 * d_head), math.sqrt(math.log(T) / T), 1.0)
    q, k, v = (scaled(t, bwd=s) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / d_head)
    return scaled(out, fwd=s)


def unit_swiglu(a, g):
    s = 2.0 ** 0.75  # loginterp(1/2, 2, sqrt 2): the output std of a silu(g) with unit inputs
    return scaled(scaled(a, bwd=s) * F.silu(scaled(g, bwd=s)), fwd=s)


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.linear_qkv = nn.Linear(d, 3 * d, bias=False)
        self.linear_o = nn.Linear(d, d, bias=False)


class _MLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.linear_1 = nn.Linear(d, 4 * d, bias=False)
        self.linear_gate = nn.Linear(d, 4 * d, bias=False)
        self.linear_2 = nn.Linear(4 * d, d, bias=False)


class _Layer(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.mhsa = _Attention(d, heads)
        self.mlp = _MLP(d)


class TinyDecoder(nn.Module):
    """A pre-norm decoder-only transformer in u-muP or in the standard parametrization. `forward`
    returns logits (batch, T, vocab); `loss` the training loss whose gradients the optimizer sees
    (under u-muP the unit-scaled backward, not the plain derivative of the mean cross-entropy).
    Parameter names follow unit_scaling.TransformerDecoder, so its state dict loads here."""

    def __init__(self, vocab: int, d: int, n_layer: int, heads: int, parametrization: str = "umup"):
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {parametrization!r}")
        if d % heads:
            raise ValueError(f"width {d} is not divisible by {heads} heads")
        self.p, self.d, self.n_layer, self.heads = parametrization, d, n_layer, heads
        self.embedding = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(_Layer(d, heads) for _ in range(n_layer))
        self.projection = nn.Linear(d, vocab, bias=False)
        if parametrization == "umup":
            for w in self.parameters():
                nn.init.normal_(w)  # unit variance everywhere
        self.taus = [(residual_tau(2 * i, 2 * n_layer), residual_tau(2 * i + 1, 2 * n_layer)) for i in range(n_layer)]

    # --- u-muP -------------------------------------------------------------------------------
    def _umup_attention(self, m: _Attention, x):
        b, t, d = x.shape
        qkv = unit_linear(x, m.linear_qkv.weight)
        q, k, v = qkv.view(b, t, 3, m.heads, d // m.heads).permute(2, 0, 3, 1, 4)
        y = unit_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        return unit_linear(y, m.linear_o.weight)

    def _umup_mlp(self, m: _MLP, x):
        a = unit_linear(x, m.linear_1.weight, constrained=False)
        g = unit_linear(x, m.linear_gate.weight, constrained=False)
        return unit_linear(unit_swiglu(a, g), m.linear_2.weight, constrained=False)

    @staticmethod
    def _residual(f, x, tau):
        c = math.sqrt(1 + tau * tau)
        branch, skip = scaled(x, bwd=tau / c), scaled(x, bwd=1 / c)
        return scaled(f(rms_norm(branch)), fwd=tau / c) + scaled(skip, fwd=1 / c)

    def _umup_forward(self, idx):
        vocab = self.embedding.num_embeddings
        h = F.embedding(idx, scaled(self.embedding.weight, bwd=math.sqrt(vocab / idx.numel())))
        for layer, (tau_a, tau_m) in zip(self.layers, self.taus):
            h = self._residual(lambda z: self._umup_attention(layer.mhsa, z), h, tau_a)
            h = self._residual(lambda z: self._umup_mlp(layer.mlp, z), h, tau_m)
        return unit_linear(rms_norm(h), self.projection.weight, readout=True, constrained=False)

    # --- standard parametrization ------------------------------------------------------------
    def _sp_forward(self, idx):
        h = self.embedding(idx)
        for layer in self.layers:
            a = layer.mhsa
            z = rms_norm(h)
            b, t, d = z.shape
            q, k, v = a.linear_qkv(z).view(b, t, 3, a.heads, d // a.heads).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = h + a.linear_o(y.transpose(1, 2).reshape(b, t, d))
            m = layer.mlp
            z = rms_norm(h)
            h = h + m.linear_2(m.linear_1(z) * F.silu(m.linear_gate(z)))
        return self.projection(rms_norm(h))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self._umup_forward(idx) if self.p == "umup" else self._sp_forward(idx)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(idx).flatten(0, 1)
        y = targets.flatten()
        if self.p == "sp":
            return F.cross_entropy(logits, y)
        vocab = logits.shape[-1]
        logits = scaled(logits, bwd=vocab / math.sqrt(vocab - 1))
        return scaled(F.cross_entropy(logits, y, reduction="sum"), fwd=1.0 / y.numel())

    def lr_groups(self, lr: float) -> list:
        """Adam parameter groups: under u-muP each tensor's rate is lr times its rule (module
        docstring); under SP one rate for all."""
        if self.p == "sp":
            return [{"params": list(self.parameters()), "lr": lr}]
        depth = self.n_layer ** -0.5
        groups = [{"params": [self.embedding.weight], "lr": lr * self.d ** -0.5},
                  {"params": [self.projection.weight], "lr": lr}]
        for w in self.layers.parameters():
            groups.append({"params": [w], "lr": lr * depth * w.shape[1] ** -0.5})
        return groups
