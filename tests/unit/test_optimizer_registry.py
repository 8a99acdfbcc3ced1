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

from optrepro.optim import registry, resolve
from optrepro.optim.base import set_mode

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


# ---- scenarios of real use (issue 31): every registered optimizer, today's and future ones ----------

LR = {"dog": 1.0, "ldog": 1.0, "sgd_schedulefree": 0.1, "sgdp": 0.05}


def _kernels(cls):
    """The @fused kernels an optimizer's module uses (they count compiled and eager calls)."""
    import sys
    return [k for k in vars(sys.modules[cls.__module__]).values() if hasattr(k, "calls") and hasattr(k, "eager")]


@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_param_group_given_a_generator_trains_every_parameter(name, monkeypatch):
    monkeypatch.setenv("REPRO_COMPILE", "0")
    cls = resolve(name)
    m = _model()
    opt = cls([{"params": m.parameters()}], lr=LR.get(name, 1e-2))
    assert len(opt.param_groups[0]["params"]) == len(list(m.parameters()))
    before = [p.detach().clone() for p in m.parameters()]
    _train(m, opt, 3, seed=0)
    set_mode(opt, False)
    assert all(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_missing_gradients_leave_a_parameter_and_the_other_groups_alone(name, monkeypatch):
    """Two independent models in two groups (the loss is a sum, so neither's gradient depends on the
    other): with the second group's gradients None on odd steps, its parameters do not move on those
    steps and the first group's trajectory is exactly the one it has when every gradient is there."""
    monkeypatch.setenv("REPRO_COMPILE", "0")
    cls = resolve(name)
    traj = []
    for drop_odd in (False, True):
        torch.manual_seed(0)
        a, b = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
        opt = cls([{"params": list(a.parameters())}, {"params": list(b.parameters())}], lr=LR.get(name, 1e-2))
        set_mode(opt, True)
        g = torch.Generator().manual_seed(4)
        seen = []
        for t in range(6):
            x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
            held = [p.detach().clone() for p in b.parameters()]
            opt.zero_grad()
            (torch.nn.functional.cross_entropy(a(x), y) + torch.nn.functional.cross_entropy(b(x), y)).backward()
            if drop_odd and t % 2:
                for p in b.parameters():
                    p.grad = None
            opt.step()
            if drop_odd and t % 2:
                assert all(torch.equal(h, p) for h, p in zip(held, b.parameters())), "moved without a gradient"
            seen.append([p.detach().clone() for p in a.parameters()])
        traj.append(seen)
    for s1, s2 in zip(*traj):
        for x, y in zip(s1, s2):
            assert torch.equal(x, y)


@pytest.mark.parametrize("layer", [0, 2])
@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_unfreezing_a_layer_mid_run(name, layer, monkeypatch):
    """The first or the last layer frozen for 3 steps (grads None), then unfrozen: no error, the layer
    trains, and the state of the layers that trained all along is kept, not re-initialised."""
    monkeypatch.setenv("REPRO_COMPILE", "0")
    cls = resolve(name)
    m = _model()
    for p in m[layer].parameters():
        p.requires_grad_(False)
    opt = cls(m.parameters(), lr=LR.get(name, 1e-2))
    _train(m, opt, 3, seed=5)
    other = 2 - layer
    kept = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[m[other].weight].items()}
    group_before = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    frozen = [p.detach().clone() for p in m[layer].parameters()]
    for p in m[layer].parameters():
        p.requires_grad_(True)
    _train(m, opt, 3, seed=6)
    set_mode(opt, False)
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(frozen, m[layer].parameters()))
    after = opt.state[m[other].weight]
    for k in ("step", "G", "rbar"):  # counters and accumulated statistics only grow
        if k in kept:
            assert float(after[k]) >= float(kept[k]), f"state '{k}' was re-initialised"
    for k in ("G", "rbar", "t", "k"):
        if isinstance(group_before.get(k), (int, float)):
            assert opt.param_groups[0][k] >= group_before[k], f"group '{k}' was re-initialised"


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_add_param_group_mid_run(name, mode, monkeypatch):
    monkeypatch.setenv("REPRO_COMPILE", "0")
    cls = resolve(name)
    m = _model()
    extra = torch.nn.Parameter(torch.zeros(3))
    opt = cls(m.parameters(), lr=LR.get(name, 1e-2))
    _train(m, opt, 3, seed=7)
    set_mode(opt, mode == "train")
    opt.add_param_group({"params": [extra]})
    modes = {g.get("train_mode") for g in opt.param_groups}
    assert len(modes) == 1, f"the new group's train_mode differs from the others: {modes}"
    set_mode(opt, True)
    g = torch.Generator().manual_seed(8)
    for _ in range(3):
        x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x) + extra, y).backward()
        opt.step()
    y_point = extra.detach().clone()
    set_mode(opt, False)
    set_mode(opt, True)
    torch.testing.assert_close(extra.detach(), y_point, rtol=1e-5, atol=1e-6)  # eval/train round trip
    assert torch.isfinite(extra).all() and not torch.equal(extra.detach(), torch.zeros(3))


@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_state_keeps_its_dtypes_through_a_state_dict(name, monkeypatch):
    """torch's load_state_dict casts floating state tensors to the parameter's dtype: state kept in
    another dtype (e.g. float64 statistics of float32 weights) must not be a tensor."""
    monkeypatch.setenv("REPRO_COMPILE", "0")
    cls = resolve(name)
    m = _model()
    opt = cls(m.parameters(), lr=LR.get(name, 1e-2))
    _train(m, opt, 3, seed=9)
    saved = copy.deepcopy(opt.state_dict())
    opt2 = cls(_model().parameters(), lr=LR.get(name, 1e-2))
    opt2.load_state_dict(saved)
    for k, st in saved["state"].items():
        for key, v in st.items():
            w = opt2.state_dict()["state"][k][key]
            assert type(v) is type(w), key
            if isinstance(v, torch.Tensor):
                assert v.dtype == w.dtype, f"state '{key}' came back {w.dtype}, was {v.dtype}"
    assert saved["param_groups"] == opt2.state_dict()["param_groups"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_half_precision_parameters(name, dtype, monkeypatch):
    """Parameters and state stay in their half dtype, finite, and the run tracks the float32 run as
    closely as torch.optim.Adam's does in the same scenario (or within 3e-2). In float16 an eps of 1e-8
    is 0 and g^2 underflows, so Adam-like steps divide 0 by 0 (torch.optim.Adam gives NaN too):
    float16 runs use eps 1e-4, and there g^2's underflow still moves Adam ~1 off its float32 run."""
    monkeypatch.setenv("REPRO_COMPILE", "0")
    cls = resolve(name)
    kw = {"eps": 1e-4} if dtype == torch.float16 and "eps" in inspect.signature(cls.__init__).parameters else {}
    tol = max(3e-2, 1.5 * _half_deviation(torch.optim.Adam, dtype, {"eps": 1e-4} if dtype == torch.float16 else {}))
    runs = {}
    for dt in (torch.float32, dtype):
        m = _model().to(dt)
        opt = cls(m.parameters(), lr=LR.get(name, 1e-2), **kw)
        g = torch.Generator().manual_seed(10)
        set_mode(opt, True)
        for _ in range(3):
            x, y = torch.randn(16, 6, generator=g).to(dt), torch.randint(0, 3, (16,), generator=g)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x).float(), y).backward()
            opt.step()
        set_mode(opt, False)
        for st in opt.state.values():
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() > 0:
                    assert v.dtype == dt, f"state '{k}' is {v.dtype} for {dt} parameters"
        runs[dt] = [p.detach() for p in m.parameters()]
    for p, q in zip(runs[dtype], runs[torch.float32]):
        assert p.dtype == dtype and torch.isfinite(p.float()).all()
        assert float((p.float() - q).abs().max()) <= tol


def _half_deviation(cls, dtype, kw) -> float:
    """Largest |half-precision run - float32 run| of `cls` over the parameters, 3 steps at lr 1e-2."""
    out = []
    for dt in (torch.float32, dtype):
        m = _model().to(dt)
        opt = cls(m.parameters(), lr=1e-2, **kw)
        g = torch.Generator().manual_seed(10)
        for _ in range(3):
            x, y = torch.randn(16, 6, generator=g).to(dt), torch.randint(0, 3, (16,), generator=g)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x).float(), y).backward()
            opt.step()
        out.append([p.detach().float() for p in m.parameters()])
    return max(float((a - b).abs().max()) for a, b in zip(*out))


def _layout_model(layout):
    torch.manual_seed(0)
    conv, lin = torch.nn.Conv2d(2, 4, 3), torch.nn.Linear(5, 4)
    if layout == "channels_last":
        conv.weight = torch.nn.Parameter(conv.weight.detach().to(memory_format=torch.channels_last))
    if layout == "transposed":
        lin.weight = torch.nn.Parameter(lin.weight.detach().t().contiguous().t())
    return conv, lin


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
@pytest.mark.parametrize("name", PAPER_OPTIMIZERS)
def test_non_contiguous_layouts_match_contiguous_and_stay_compiled(name, layout, monkeypatch):
    """The step on a channels_last / transposed weight equals the step on the same values laid out
    contiguously, compiled and eager; the compiled path really ran (when the optimizer has a fused
    kernel) and a layout compile cannot handle does not turn the kernel eager for everything."""
    cls = resolve(name)
    out = {}
    for flag in ("1", "0"):
        for lay in (layout, "contiguous"):
            monkeypatch.setenv("REPRO_COMPILE", flag)
            conv, lin = _layout_model(lay)
            ps = [conv.weight, conv.bias, lin.weight, lin.bias]
            opt = cls(ps, lr=LR.get(name, 1e-2))
            ks = _kernels(cls)
            before = sum(k.calls["compiled"] for k in ks)
            g = torch.Generator().manual_seed(11)
            set_mode(opt, True)
            for _ in range(4):
                x = torch.randn(3, 2, 6, 6, generator=g)
                opt.zero_grad()
                (conv(x).mean() + lin(torch.randn(7, 5, generator=g)).square().mean()).backward()
                opt.step()
            set_mode(opt, False)
            if flag == "1" and ks:
                assert sum(k.calls["compiled"] for k in ks) > before, "the fused kernel never ran compiled"
            out[flag, lay] = [p.detach().contiguous() for p in ps]
    for key in out:
        for a, b in zip(out[key], out["0", "contiguous"]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_create_optimizer_by_name_is_case_insensitive():
    from optrepro.errors import ConfigError
    from optrepro.optim import create_optimizer
    p = [torch.nn.Parameter(torch.zeros(3))]
    opt = create_optimizer("Lion", p, lr=1e-4, weight_decay=0.1)
    assert type(opt) is resolve("lion") and opt.param_groups[0]["lr"] == 1e-4
    assert type(create_optimizer("ADAMW", p)) is torch.optim.AdamW
    with pytest.raises(TypeError, match="unknown argument.*lrr"):
        create_optimizer("lion", p, lrr=1e-4)
    with pytest.raises(ConfigError, match="did you mean lion"):
        create_optimizer("lino", p)


def test_a_name_registered_twice_is_a_check_problem_not_a_silent_replacement(monkeypatch):
    """A new paper registering `lion` would hijack lion_2023's tables: `repro check` fails and the name
    resolves to neither."""
    from types import SimpleNamespace

    import optrepro.registry
    from optrepro.contract import check_all
    from optrepro.errors import ConfigError
    real = optrepro.registry.all_papers()
    fake = SimpleNamespace(pid="newlion_2026", meta={"optimizers": {"Lion": "torch.optim:SGD", "NewOpt": "torch.optim:SGD"}})
    monkeypatch.setattr(optrepro.registry, "all_papers", lambda: {**real, fake.pid: fake})
    from optrepro.optim import problems
    errs = problems()
    assert any("'lion' is registered by lion_2023 and newlion_2026" in e for e in errs), errs
    assert any("'NewOpt' must be lower case" in e for e in errs), errs
    with pytest.raises(ConfigError, match="ambiguous"):
        resolve("lion")
    assert any("lion_2023 and newlion_2026" in e for e in check_all().get("common", []))


def test_list_optimizers_names_each_owner(cli):
    code, out, err = cli("list", "--optimizers")
    assert code == 0
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert lines["lion"][0] == "lion_2023" and lines["adam"][0] == "torch"
    assert set(lines) == set(registry())
