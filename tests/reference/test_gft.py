"""gft_2025 against its literal equations and against CFG in closed form.

- The loss: gft_loss equals || β ε_θ(x|c,β) + (1 - β) ε_θ(x|∅,1) - target ||² written out, and its gradient
  flows only through the sampling branch (the unconditional prediction is stop-gradient).
- The minimiser: a 'network' whose sampling prediction is CFG's at γ = 1/β on the exact mixture makes the
  implicit conditional model the exact conditional, so its GFT loss equals the exact conditional model's
  denoising loss on the same batch, and sampling it at β (one evaluation per step) gives CFG's samples at
  γ = 1/β (two evaluations per step) to rounding.
"""
import pytest
import torch

from optrepro.diffusion.guidance import CFG
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.models import AtTemperature, ModelSpec, build, check_spec, gft_implied, gft_loss, train
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import sample
from optrepro.errors import ConfigError
from optrepro.tasks.guidance import GuidanceConfig, preflight

pytestmark = pytest.mark.reference
MIX = GaussianMixture.ring()
NULL = MIX.n_classes


class CFGOptimum(torch.nn.Module):
    """ε(x|c, β) = u + (c - u) / β from the exact mixture: the GFT loss's minimiser."""
    n_classes, has_uncond = NULL, True

    def __init__(self, process):
        super().__init__()
        self.exact = ExactDenoiser(MIX, process, "eps")

    def forward(self, x, t, c, beta=None):
        beta = torch.ones(len(x)) if beta is None else torch.as_tensor(beta).expand(len(x))
        u = self.exact(x, t, torch.full_like(c, NULL))
        cond = self.exact(x, t, c)
        return u + (cond - u) / beta.to(x.dtype)[:, None]


def _batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pr = Process("vp")
    c = torch.randint(0, NULL, (n,), generator=g)
    x0 = MIX.sample(c, g)
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    beta = 0.1 + 0.9 * torch.rand(n, generator=g, dtype=torch.float64)
    return pr, pr.noisy(x0, eps, t), t, c, eps, beta


def test_loss_is_the_literal_equation_with_a_stop_gradient():
    torch.manual_seed(0)
    net = build(ModelSpec(width=16, objective="gft"))
    pr, xt, t, c, eps, beta = _batch()
    xt, t, eps, beta = xt.float(), t.float(), eps.float(), beta.float()
    loss = gft_loss(net, xt, t, c, beta, eps, NULL)
    s = net(xt, t, c, beta)
    u = net(xt, t, torch.full_like(c, NULL), torch.ones_like(beta))
    want = ((beta[:, None] * s + (1 - beta[:, None]) * u - eps) ** 2).mean()
    full = ((beta[:, None] * s + (1 - beta[:, None]) * u - eps) ** 2).mean()  # the same loss, u not detached
    torch.testing.assert_close(loss, want, rtol=1e-6, atol=0)
    # gradient: only through s (u detached)
    loss.backward()
    got = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    ((beta[:, None] * s + (1 - beta[:, None]) * u.detach() - eps) ** 2).mean().backward(retain_graph=True)
    for a, p in zip(got, net.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-7)
    net.zero_grad()
    full.backward()  # without the stop-gradient the gradient differs
    assert any(not torch.allclose(a, p.grad, rtol=1e-5, atol=1e-7) for a, p in zip(got, net.parameters()))


def test_cfg_optimum_makes_the_implied_model_exact_and_the_loss_the_conditional_loss():
    pr, xt, t, c, eps, beta = _batch(256)
    opt = CFGOptimum(pr)
    exact = ExactDenoiser(MIX, pr, "eps")
    implied = gft_implied(opt(xt, t, c, beta), opt(xt, t, torch.full_like(c, NULL)), beta)
    torch.testing.assert_close(implied, exact(xt, t, c), rtol=0, atol=1e-12)
    gft = gft_loss(opt, xt, t, c, beta, eps, NULL)
    dsm = ((exact(xt, t, c) - eps) ** 2).mean()
    torch.testing.assert_close(gft, dsm, rtol=1e-12, atol=0)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 4.0])
def test_sampling_at_beta_is_cfg_at_one_over_beta_with_half_the_evaluations(gamma):
    pr = Process("vp")
    labels = torch.arange(NULL).repeat(25)
    times = pr.grid("uniform", 20)
    a, ia = sample(AtTemperature(CFGOptimum(pr), 1 / gamma), pr, "eps", CFG(1.0), times, labels,
                   torch.Generator().manual_seed(3), "ddpm", shape=(2,), dtype=torch.float64)
    b, ib = sample(ExactDenoiser(MIX, pr, "eps"), pr, "eps", CFG(gamma), times, labels,
                   torch.Generator().manual_seed(3), "ddpm", shape=(2,), dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert ia["nfe"] == 20 and ib["nfe"] == (20 if gamma == 1 else 40)


def test_gft_training_runs_and_bad_settings_fail_clearly():
    spec = ModelSpec(width=16, steps=3, batch=8, objective="gft")
    blob = train(spec, 0)
    assert len(blob["loss"]) == 3 and all(v == v for v in blob["loss"])
    net = build(spec)
    net.load_state_dict(blob["snapshots"][3])
    x = torch.zeros(2, 2)
    t = torch.full((2,), 0.5)
    c = torch.zeros(2, dtype=torch.long)
    assert not torch.equal(net(x, t, c, torch.full((2,), 0.2)), net(x, t, c, torch.ones(2)))  # β is an input
    with pytest.raises(ConfigError, match="arch mlp"):
        check_spec(ModelSpec(arch="unet", data="digits", objective="gft"))
    with pytest.raises(ConfigError, match="beta_range"):
        check_spec(ModelSpec(objective="gft", beta_range=[0.5, 0.2]))
    with pytest.raises(ConfigError, match="objective 'cfg' unknown"):
        check_spec(ModelSpec(objective="cfg"))
    with pytest.raises(ConfigError, match="temperature beta must be in"):
        AtTemperature(net, 0.0)
    with pytest.raises(ConfigError, match="GFT-trained"):
        preflight(GuidanceConfig(temperature=0.5))
    with pytest.raises(ConfigError, match="scale 1"):
        preflight(GuidanceConfig(model=ModelSpec(objective="gft"), temperature=0.5, scale=3.0))


def test_default_specs_keep_their_cache_keys():
    """Fields added later (objective, beta_range, init) stay out of the key at their defaults."""
    from optrepro.diffusion.models import spec_key
    import hashlib
    import json
    from dataclasses import asdict
    spec = ModelSpec()
    old = {k: v for k, v in asdict(spec).items() if k not in ("objective", "beta_range", "init")}
    want = hashlib.sha256(json.dumps({**old, "seed": 0, "v": 1}, sort_keys=True).encode()).hexdigest()[:16]
    assert spec_key(spec, 0) == want
    assert spec_key(ModelSpec(objective="gft"), 0) != want
