"""Conditional denoisers trained with label dropout, and their per-seed cache.

One network gives both predictions: class c in 0..K-1, or K ("no label", seen with probability
`p_uncond` in training). `mlp` is a small MLP for 2-D data; `unet` is diffusers' UNet2DModel built
from a config (no weights downloaded) for 1x8x8 digits. `trained_denoiser(spec, seed, root)` trains
once per (spec, seed), saving EMA weights at the `snapshots` steps under <root>/_cache/diffusion/, so
every table that uses the same spec and seed reuses one model (early snapshots serve "under-trained"
rows).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from optrepro.diffusion.mixture import GaussianMixture
from optrepro.diffusion.process import PARAMETERIZATIONS, Process
from optrepro.errors import ConfigError
from optrepro import checkpoint
from optrepro.io import cached_torch

ARCHS = ("mlp", "unet")
OBJECTIVES = ("dsm", "gft")
FULL_SCALE = {"imagenet64": "ImageNet 64x64 class-conditional diffusion model",
              "imagenet256": "ImageNet 256x256 class-conditional latent model",
              "text2image": "a text-to-image model such as Stable Diffusion"}


@dataclass
class ModelSpec:
    data: str = "mixture"
    """mixture (GaussianMixture.ring) | digits (sklearn 8x8, train split, scaled to [-1, 1])."""
    process: str = "vp"
    param: str = "eps"
    arch: str = "mlp"
    width: int = 256
    """mlp: hidden units (3 hidden layers); unet: channels of the first block (second: 2x)."""
    p_uncond: float = 0.1
    steps: int = 4000
    batch: int = 256
    lr: float = 1e-3
    ema: float = 0.999
    snapshots: list = field(default_factory=list)
    """Extra steps whose EMA weights are kept (the last step always is)."""
    objective: str = "dsm"
    """dsm: the denoising loss with label dropout (CFG's training) | gft: Guidance-Free Training (Chen et
    al. 2025): the network takes β and is trained so that β ε(x|c,β) + (1 - β) sg[ε(x|∅)] fits the target
    (mlp only)."""
    beta_range: list = field(default_factory=lambda: [0.0, 1.0])
    """gft: β is drawn uniformly from this [low, high] per training example."""
    init: dict = field(default_factory=dict)
    """Fine-tuning: the spec (same data, arch and width) of a base model whose last EMA weights, for the
    same seed, start this training ({}: from scratch). The base is trained and cached on first use."""


def check_data(data: str, full_scale: dict, valid: tuple) -> None:
    """`data` must be one of `valid` (mini scale); a key of `full_scale` (name -> the pretrained model it
    needs) is the paper's setting, refused with a clear message (exit 2)."""
    if data in full_scale:
        raise ConfigError(f"data '{data}' is the paper's full-scale setting: it needs the paper's pretrained model "
                          f"({full_scale[data]}), which this repository does not download or load yet; "
                          "run --scale mini")
    if data not in valid:
        raise ConfigError(f"data '{data}' unknown; valid: {', '.join(valid)}")


def check_spec(m: ModelSpec) -> None:
    Process(m.process)
    if m.param not in PARAMETERIZATIONS:
        raise ConfigError(f"param '{m.param}' unknown; valid: {', '.join(PARAMETERIZATIONS)}")
    if m.arch not in ARCHS:
        raise ConfigError(f"arch '{m.arch}' unknown; valid: {', '.join(ARCHS)}")
    check_data(m.data, FULL_SCALE, ("mixture", "digits"))
    if not 0 <= m.p_uncond <= 1:
        raise ConfigError(f"p_uncond must be in [0, 1] (1: an unconditional model), got {m.p_uncond}")
    if m.steps < 1 or any(not 0 < s <= m.steps for s in m.snapshots):
        raise ConfigError(f"need steps >= 1 and snapshots in (0, steps], got {m.steps}, {m.snapshots}")
    if m.objective not in OBJECTIVES:
        raise ConfigError(f"objective '{m.objective}' unknown; valid: {', '.join(OBJECTIVES)}")
    if m.objective == "gft":
        if m.arch != "mlp":
            raise ConfigError("objective gft needs arch mlp (the UNet has no temperature input)")
        if not (len(m.beta_range) == 2 and 0 <= m.beta_range[0] < m.beta_range[1] <= 1) or m.p_uncond in (0, 1):
            raise ConfigError(f"objective gft needs 0 <= beta_range[0] < beta_range[1] <= 1 and 0 < p_uncond < 1 "
                              f"(it learns the unconditional branch too), got {m.beta_range}, {m.p_uncond}")
    if m.init:
        base = base_spec(m)
        check_spec(base)
        for k in ("data", "arch", "width"):
            if getattr(base, k) != getattr(m, k):
                raise ConfigError(f"model.init: a fine-tuned model keeps its base's {k} "
                                  f"(base {getattr(base, k)!r}, model {getattr(m, k)!r})")


def base_spec(m: ModelSpec) -> ModelSpec:
    """The ModelSpec of `m.init` (unknown keys: a clear error)."""
    names = {f.name for f in fields(ModelSpec)}
    bad = sorted(set(m.init) - names)
    if bad:
        raise ConfigError(f"model.init: unknown key(s) {', '.join(bad)}; valid: {', '.join(sorted(names))}")
    return ModelSpec(**m.init)


def _time_embedding(t, dim: int):
    half = dim // 2
    f = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = 1000.0 * t.float()[:, None] * f[None]
    return torch.cat([a.sin(), a.cos()], 1)


class MLPDenoiser(nn.Module):
    def __init__(self, dim: int, n_classes: int, width: int = 256, temb: int = 64, has_uncond: bool = True,
                 beta_input: bool = False):
        super().__init__()
        self.n_classes, self.has_uncond, self.temb = n_classes, has_uncond, temb
        self.cemb = nn.Embedding(n_classes + 1, temb)
        self.net = nn.Sequential(nn.Linear(dim + temb, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, dim))
        self.tproj = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.beta_input = beta_input  # GFT's temperature input (built last: the other layers' init is unchanged)
        self.bproj = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb)) if beta_input else None

    def forward(self, x, t, c, beta=None, cond_embed=None):
        """cond_embed: a [n, temb] class embedding used instead of the table's (a perturbed condition, as in
        CADS-style condition noise); None: the embedding of c."""
        h = self.tproj(_time_embedding(t, self.temb)) + (self.cemb(c) if cond_embed is None else cond_embed)
        if self.beta_input:
            beta = torch.ones(len(x)) if beta is None else torch.as_tensor(beta, dtype=torch.float32).expand(len(x))
            h = h + self.bproj(_time_embedding(beta, self.temb))
        return self.net(torch.cat([x.float(), h], 1)).to(x.dtype)


class UNetDenoiser(nn.Module):
    def __init__(self, n_classes: int, width: int = 32, has_uncond: bool = True):
        super().__init__()
        from diffusers import UNet2DModel
        self.n_classes, self.has_uncond = n_classes, has_uncond
        self.net = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                               block_out_channels=(width, 2 * width), down_block_types=("DownBlock2D", "DownBlock2D"),
                               up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                               num_class_embeds=n_classes + 1)

    def forward(self, x, t, c):
        return self.net(x.float(), 1000.0 * t.float(), class_labels=c).sample.to(x.dtype)


def gft_implied(sampling_pred, uncond_pred, beta):
    """GFT's implicit conditional prediction β ε^s + (1 - β) ε^u (any prediction affine in ε at fixed x, t)."""
    b = torch.as_tensor(beta, dtype=sampling_pred.dtype).reshape(-1, *([1] * (sampling_pred.dim() - 1)))
    return b * sampling_pred + (1 - b) * uncond_pred


def gft_loss(net, xt, t, c, beta, target, null: int):
    """Guidance-Free Training's loss: the denoising loss of the implicit conditional model
    β ε_θ(x|c, β) + (1 - β) sg[ε_θ(x|∅, 1)]; rows with c = ∅ carry β = 1, i.e. the plain unconditional loss.
    Its minimiser has ε_θ(x|c, β) = ε^u + (ε^c - ε^u) / β: CFG at scale γ = 1 / β in one evaluation."""
    pred = net(xt, t, c, beta)
    with torch.no_grad():
        uncond = net(xt, t, torch.full_like(c, null), torch.ones_like(beta))
    return (gft_implied(pred, uncond, beta) - target).pow(2).mean()


class AtTemperature(nn.Module):
    """A GFT network sampled at temperature β: forward(x, t, c) = ε_θ(x|c, β) (one evaluation: sample it
    with CFG at scale 1, the conditional branch alone). The 'no label' query keeps β = 1."""

    def __init__(self, net: nn.Module, beta: float):
        super().__init__()
        if not 0 < beta <= 1:
            raise ConfigError(f"GFT temperature beta must be in (0, 1], got {beta}")
        self.net, self.beta = net, float(beta)
        self.n_classes, self.has_uncond = net.n_classes, net.has_uncond

    def forward(self, x, t, c):
        beta = torch.where(c == self.n_classes, 1.0, self.beta)
        return self.net(x, t, c, beta)


def n_classes(data: str) -> int:
    """Number of labels of a dataset (the 'no label' index is this number)."""
    return GaussianMixture.ring().n_classes if data == "mixture" else 10


def build(spec: ModelSpec) -> nn.Module:
    has_uncond = spec.p_uncond > 0
    if spec.arch == "mlp":
        net = MLPDenoiser(2, n_classes(spec.data), spec.width, has_uncond=has_uncond, beta_input=spec.objective == "gft")
    else:
        net = UNetDenoiser(n_classes(spec.data), spec.width, has_uncond=has_uncond)
    net.has_cond = spec.p_uncond < 1  # p_uncond = 1: an unconditional model, its class embeddings untrained
    return net


class UncondSwap(nn.Module):
    """A conditional model whose unconditional prediction comes from another model (Phunyaphibarn et al.
    2025, "Unconditional Priors Matter!"): forward(x, t, c) is `model` for c < n_classes and `prior`
    with the "no label" index for c = n_classes. Both must predict the same quantity (`param`) on the
    same process; any guidance rule then mixes the fine-tuned conditional branch with the prior's."""

    def __init__(self, model: nn.Module, prior: nn.Module):
        super().__init__()
        if not getattr(prior, "has_uncond", False):
            raise ConfigError("the unconditional prior was trained without the 'no label' class (p_uncond = 0)")
        if prior.n_classes != model.n_classes:
            raise ConfigError(f"the prior has {prior.n_classes} classes, the model {model.n_classes}")
        self.model, self.prior = model, prior
        self.n_classes, self.has_uncond = model.n_classes, True
        self.has_cond = getattr(model, "has_cond", True)

    def forward(self, x, t, c):
        null = c == self.n_classes
        if null.all():
            return self.prior(x, t, c)
        if not null.any():
            return self.model(x, t, c)
        out = torch.empty_like(x)
        out[~null] = self.model(x[~null], t[~null], c[~null]).to(x.dtype)
        out[null] = self.prior(x[null], t[null], c[null]).to(x.dtype)
        return out


def digits_tensors(split: str = "train"):
    """(images in [-1, 1] as [n, 1, 8, 8], labels) of the fixed digits split used by every diffusion table."""
    from optrepro.data.core import digits
    d = digits(seed=0)
    x, y = (d.x_train, d.y_train) if split == "train" else (d.x_test, d.y_test)
    return torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8), torch.as_tensor(y, dtype=torch.long)


KEY_DEFAULTS = {"objective": "dsm", "beta_range": [0.0, 1.0], "init": {}}
"""Fields added after models were first cached: left out of the key at their default, so older caches stay valid."""


def spec_key(spec: ModelSpec, seed: int) -> str:
    d = {k: v for k, v in asdict(spec).items() if not (k in KEY_DEFAULTS and v == KEY_DEFAULTS[k])}
    blob = json.dumps({**d, "seed": seed, "v": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(spec: ModelSpec, seed: int, log=None, cache_path=None, root=None) -> dict:
    """Trains from scratch (or from `spec.init`'s cached base model under `root`); returns
    {"spec", "seed", "snapshots": {step: EMA state dict}, "loss": [...]}.
    With `cache_path`, a killed training resumes from its partial checkpoint beside the cache entry."""
    base = trained_denoiser(base_spec(spec), seed, root)[0].state_dict() if spec.init else None
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    process = Process(spec.process)
    null = n_classes(spec.data)  # also the 'no label' index
    if spec.data == "mixture":
        mix = GaussianMixture.ring()
    else:
        xd, yd = digits_tensors("train")
    net = build(spec)
    if base is not None:
        net.load_state_dict(base)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    lo, hi = process.t_range()
    keep, losses = {}, []
    state = {"net": net, "opt": opt, "sched": sched, "ema": ema, "keep": keep, "losses": losses, "gen": gen}
    loop = (checkpoint.cached_steps(spec.steps, state, cache_path) if cache_path is not None
            else range(1, spec.steps + 1))
    for step in loop:
        if spec.data == "mixture":
            c = torch.randint(0, null, (spec.batch,), generator=gen)
            x0 = mix.sample(c, gen).float()
        else:
            idx = torch.randint(0, len(xd), (spec.batch,), generator=gen)
            x0, c = xd[idx], yd[idx]
        drop = torch.rand(spec.batch, generator=gen) < spec.p_uncond
        c = torch.where(drop, torch.full_like(c, null), c)
        t = lo + (hi - lo) * torch.rand(spec.batch, generator=gen, dtype=torch.float64)
        eps = torch.randn(x0.shape, generator=gen)
        xt = process.noisy(x0, eps, t).float()
        target = process.target(x0, eps, t, spec.param).float()
        if spec.objective == "gft":
            lo_b, hi_b = spec.beta_range
            beta = lo_b + (hi_b - lo_b) * torch.rand(spec.batch, generator=gen)
            loss = gft_loss(net, xt, t.float(), c, torch.where(drop, torch.ones_like(beta), beta), target, null)
        else:
            loss = (net(xt, t.float(), c) - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(spec.ema, (1 + step) / (10 + step))
            for k, v in net.state_dict().items():
                ema[k].mul_(d).add_(v.detach(), alpha=1 - d) if v.dtype.is_floating_point else ema[k].copy_(v)
        losses.append(float(loss.detach()))
        if step in spec.snapshots or step == spec.steps:
            keep[step] = {k: v.clone() for k, v in ema.items()}
        if log is not None and (step % 100 == 0 or step == spec.steps):
            log(step, sum(losses[-100:]) / len(losses[-100:]))
    return {"spec": asdict(spec), "seed": seed, "snapshots": keep, "loss": losses}


def trained_denoiser(spec: ModelSpec, seed: int, root, step: int | None = None, log=None) -> tuple[nn.Module, dict]:
    """The EMA model of (spec, seed) at `step` (default: the last), trained on first use and cached."""
    check_spec(spec)
    path = Path(root) / "_cache" / "diffusion" / f"{spec.data}-{spec.process}-{spec_key(spec, seed)}.pt"
    blob = cached_torch(path, lambda: train(spec, seed, log, cache_path=path, root=root))
    step = spec.steps if step is None else step
    if step not in blob["snapshots"]:
        raise ConfigError(f"no snapshot at step {step}; this spec keeps {sorted(blob['snapshots'])}")
    net = build(spec)
    net.load_state_dict(blob["snapshots"][step])
    net.eval()
    return net, {"path": str(path), "final_loss": sum(blob["loss"][-200:]) / len(blob["loss"][-200:])}
