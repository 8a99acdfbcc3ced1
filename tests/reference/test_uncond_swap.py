"""unconditional_priors_2025's swap against its literal equation: with UncondSwap(model, prior), one
sampler step under CFG equals the step taken with ε̃ = ε_prior(x, ∅) + γ (ε_model(x, c) - ε_prior(x, ∅))
written out by hand; the prior's evaluations are counted as the unconditional branch's. Fine-tuning
(ModelSpec.init) starts from the base's weights; an unconditional model (p_uncond = 1) refuses a
conditional rule; guided_reference's distance is 0 for the exact model itself."""
import pytest
import torch

from optrepro.diffusion.guidance import CFG, APG
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.models import ModelSpec, UncondSwap, build, train, trained_denoiser
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import Guided, sample
from optrepro.errors import ConfigError
from optrepro.tasks.guidance import GuidanceConfig, preflight, sample_and_score

pytestmark = pytest.mark.reference
MIX = GaussianMixture.ring()


class Affine(torch.nn.Module):
    """pred = a x + b t + d c (c = 4: no label): a stand-in network with a chosen unconditional branch."""
    n_classes, has_uncond = 4, True

    def __init__(self, a, b, d):
        super().__init__()
        self.a, self.b, self.d = a, b, d

    def forward(self, x, t, c):
        return self.a * x + self.b * t[:, None].to(x.dtype) + self.d * c[:, None].to(x.dtype)


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0])
def test_swapped_cfg_equals_the_literal_equation(scale):
    model, prior = Affine(0.3, 0.1, 0.05), Affine(-0.2, 0.4, 0.7)
    pr = Process("vp")
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    t = 0.6
    tt = torch.full((6,), t, dtype=torch.float64)
    g = Guided(UncondSwap(model, prior), pr, "eps", CFG(scale), labels)
    g.rule.start(6, 1)
    x0, eps = g(x, t, 0)
    u = prior(x, tt, torch.full_like(labels, 4))
    c = model(x, tt, labels)
    want = u + scale * (c - u)
    torch.testing.assert_close(eps, want, rtol=0, atol=1e-15)
    torch.testing.assert_close(x0, pr.split(want, x, tt, "eps")[0], rtol=0, atol=1e-15)
    assert g.evals == 6 * ((scale != 0) + (scale != 1))


def test_swap_routes_mixed_batches_and_leaves_the_conditional_branch_alone():
    model, prior = Affine(0.3, 0.1, 0.05), Affine(-0.2, 0.4, 0.7)
    swap = UncondSwap(model, prior)
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.full((5,), 0.3, dtype=torch.float64)
    c = torch.tensor([4, 1, 4, 0, 2])
    out = swap(x, t, c)
    null = c == 4
    torch.testing.assert_close(out[null], prior(x[null], t[null], c[null]))
    torch.testing.assert_close(out[~null], model(x[~null], t[~null], c[~null]))
    # any rule sees the prior's branch: APG with a swapped exact prior equals APG on the exact model
    pr = Process("vp")
    exact = ExactDenoiser(MIX, pr, "eps")
    labels = torch.arange(4).repeat(3)
    a, _ = sample(UncondSwap(exact, exact), pr, "eps", APG(3.0, eta=0.5), pr.grid("uniform", 8), labels,
                  torch.Generator().manual_seed(1), "ddim", shape=(2,), dtype=torch.float64)
    b, _ = sample(exact, pr, "eps", APG(3.0, eta=0.5), pr.grid("uniform", 8), labels,
                  torch.Generator().manual_seed(1), "ddim", shape=(2,), dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_prior_without_unconditional_branch_is_refused():
    class NoNull(Affine):
        has_uncond = False
    with pytest.raises(ConfigError, match="no label"):
        UncondSwap(Affine(1, 0, 0), NoNull(1, 0, 0))


SMALL = dict(data="mixture", process="vp", param="eps", arch="mlp", width=16, steps=3, batch=8)


def test_fine_tuning_starts_from_the_base_weights(tmp_path):
    base = {**SMALL, "p_uncond": 1.0}
    net, _ = trained_denoiser(ModelSpec(**base), 0, tmp_path)
    # lr 0: the fine-tuned weights never move, so its EMA is the base's last EMA (up to the EMA's rounding)
    blob = train(ModelSpec(**{**SMALL, "lr": 0.0, "init": base}), 0, root=tmp_path)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(blob["snapshots"][3][k], v, rtol=1e-6, atol=1e-7)
    scratch = build(ModelSpec(**SMALL)).state_dict()
    assert any(not torch.equal(scratch[k], v) for k, v in net.state_dict().items())


def test_bad_fine_tuning_and_unconditional_specs_fail_clearly(tmp_path):
    from optrepro.diffusion.models import check_spec
    with pytest.raises(ConfigError, match="unknown key"):
        check_spec(ModelSpec(**{**SMALL, "init": {"widht": 16}}))
    with pytest.raises(ConfigError, match="keeps its base's width"):
        check_spec(ModelSpec(**{**SMALL, "init": {**SMALL, "width": 32}}))
    with pytest.raises(ConfigError, match=r"p_uncond must be in \[0, 1\]"):
        check_spec(ModelSpec(**{**SMALL, "p_uncond": 1.5}))
    uncond = build(ModelSpec(**{**SMALL, "p_uncond": 1.0}))
    pr = Process("vp")
    with pytest.raises(ConfigError, match="unconditional"):
        sample(uncond, pr, "eps", CFG(2.0), pr.grid("uniform", 3), torch.zeros(2, dtype=torch.long),
               torch.Generator(), "ddim", shape=(2,))
    cfg = GuidanceConfig(uncond_from="model", uncond_model=ModelSpec(**{**SMALL, "param": "x0"}))
    with pytest.raises(ConfigError, match="uncond_model.param"):
        preflight(cfg)
    with pytest.raises(ConfigError, match="uncond_from 'base' unknown"):
        preflight(GuidanceConfig(uncond_from="base"))


class Ctx:
    def __init__(self, d):
        self.dir, self.out_root, self.logged = d, d, []

    def no_checkpoint(self, why):
        pass

    def log(self, step, **kw):
        self.logged.append((step, kw))


def test_guided_reference_is_the_exact_models_own_samples(tmp_path):
    """The exact model scored against itself: the distance is that of two independent sample sets of the
    same law (small), and a model with a wrong unconditional branch is further away."""
    pr = Process("vp")
    cfg = GuidanceConfig(exact=True, scale=3.0, sampler="ddim", steps=20, per_class=200, guided_reference=True)
    exact = ExactDenoiser(MIX, pr, "eps")
    times = pr.grid("uniform", 20)
    same = sample_and_score(cfg, Ctx(tmp_path), exact, pr, times)["sw_guided"]
    wrong = sample_and_score(cfg, Ctx(tmp_path), UncondSwap(exact, Affine(0.0, 0.0, 0.0)), pr, times)["sw_guided"]
    assert same < 0.1 < wrong
