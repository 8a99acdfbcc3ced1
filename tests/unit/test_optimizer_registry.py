"""Contracts every optimizer a paper registers must meet, parametrized over the registry (a new
paper's optimizer is tested the moment its paper.yaml names it):

- bad hyper-parameters raise ValueError naming the argument;
- state_dict() / load_state_dict() mid-training continues bit for bit;
- the fused (torch.compile) step equals the eager step."""
import copy
import inspect
import math

import pytest
import torch

from common.optim import registry, resolve
from common.optim.base import set_mode

PAPER_OPTIMIZERS = sorted(n for n, t in registry().items() if isinstance(t, str))


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _train(model, opt, steps, seed):
    g = torch.Generator().manual_seed(seed)
    set_mode(opt, True)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_every_wave1_optimizer_is_registered():
    for name in ["adabelief", "lion", "diffgrad", "adamp", "sgdp", "adabound", "amsbound", "sgd_schedulefree",
                 "adamw_schedulefree", "dog", "ldog", "cadamw", "clion", "grams"]:
        assert name in PAPER_OPTIMIZERS


@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_bad_hyperparameters_raise_value_error_naming_them(name):
    cls = resolve(name)
    sig = inspect.signature(cls.__init__).parameters
    p = [torch.nn.Parameter(torch.zeros(2))]
    for bad in (-1.0, math.nan, math.inf, "0.1"):
        with pytest.raises(ValueError, match="lr"):
            cls(p, lr=bad)
    if "betas" in sig:
        for bad in ((1.5, 0.9), (0.9, -0.1), (math.nan, 0.9), (0.9,)):
            with pytest.raises(ValueError, match="beta"):
                cls(p, betas=bad)
    for arg in ("eps", "weight_decay", "momentum"):
        if arg in sig:
            with pytest.raises(ValueError, match=arg):
                cls(p, **{arg: -0.5})
    with pytest.raises(TypeError, match="params"):
        cls(torch.zeros(2))
    with pytest.raises(TypeError, match="params"):
        cls(["not a tensor"])


@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_state_dict_round_trip_continues_identically(name, monkeypatch):
    monkeypatch.setenv("REPRO_COMPILE", "0")
    cls = resolve(name)
    lr = {"dog": 1.0, "ldog": 1.0, "sgd_schedulefree": 0.1, "sgdp": 0.05}.get(name, 1e-2)
    a = _model()
    opt_a = cls(a.parameters(), lr=lr)
    _train(a, opt_a, 7, seed=1)
    saved_model, saved_opt = copy.deepcopy(a.state_dict()), copy.deepcopy(opt_a.state_dict())
    b = _model()
    b.load_state_dict(saved_model)
    opt_b = cls(b.parameters(), lr=lr)
    opt_b.load_state_dict(saved_opt)
    _train(a, opt_a, 5, seed=2)
    _train(b, opt_b, 5, seed=2)
    set_mode(opt_a, False), set_mode(opt_b, False)
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)


@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_fused_step_equals_eager(name, monkeypatch):
    cls = resolve(name)
    lr = {"dog": 1.0, "ldog": 1.0, "sgd_schedulefree": 0.1, "sgdp": 0.05}.get(name, 1e-2)
    models = []
    for flag in ("1", "0"):
        monkeypatch.setenv("REPRO_COMPILE", flag)
        m = _model()
        opt = cls(m.parameters(), lr=lr)
        _train(m, opt, 5, seed=3)
        set_mode(opt, False)
        models.append(m)
    for x, y in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
