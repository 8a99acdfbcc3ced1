"""SCALE (papers.scale_2025.method) against its literal equations on a tiny GPT-2, step by step, and
the layer roles it relies on (common.optim.layers):
- hidden matrices and the position table: W <- W(1 - lr wd) - lr G / rms(G) over each output unit's
  inputs (dim 0 of GPT-2's Conv1D (in, out) and of an embedding table, dim 1 of nn.Linear's);
- the output layer (the tied token table): an EMA momentum M, then M / rms(M) over its d inputs;
- vectors: torch.optim.AdamW's step exactly;
- momentum 0 is column-normalized SGD on every matrix; from plain parameters the last matrix is
  the output layer."""
import pytest
import torch

from optrepro.models import tiny_gpt
from optrepro.optim import OptimConfig, build_optimizer, optimizer_params
from optrepro.optim.layers import default_roles, layer_groups, layer_roles
from papers.scale_2025.method import SCALE
from tests.reference.lockstep import layerwise_lockstep

pytestmark = pytest.mark.reference

LR, WD, BETA, BETAS = 1e-2, 0.1, 0.9, (0.9, 0.95)


def _model():
    torch.manual_seed(0)
    return tiny_gpt(23, 8, 16, 1, 2, "gpt2").double()


def _loss(model, seed):  # (model, step) -> loss
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 23, (3, 8), generator=g)
    return torch.nn.functional.cross_entropy(model(x).flatten(0, 1), torch.randint(0, 23, (24,), generator=g))


def test_roles_of_a_tiny_gpt2():
    m = _model()
    roles = layer_roles(m)
    t = m.gpt.transformer
    assert roles[id(t.wte.weight)] == ("output", 1)  # tied to lm_head: logits = h W^T
    assert roles[id(t.wpe.weight)] == ("embedding", 0)
    assert roles[id(t.h[0].attn.c_attn.weight)] == ("matrix", 0)  # Conv1D stores (in, out)
    assert roles[id(t.h[0].ln_1.weight)] == ("vector", -1)
    llama = tiny_gpt(23, 8, 16, 1, 2, "llama")
    lr = layer_roles(llama)
    assert lr[id(llama.gpt.model.layers[0].self_attn.q_proj.weight)] == ("matrix", 1)
    groups = layer_groups(m)
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_steps_are_the_literal_equations(momentum):
    m = _model()
    opt = SCALE(layer_groups(m), lr=LR, momentum=momentum, betas=BETAS, eps=1e-8, weight_decay=WD)
    mom = {}

    def literal(name, role, in_dim, g, w):
        if role == "output" and momentum:
            mom[name] = BETA * mom.get(name, torch.zeros_like(g)) + (1 - BETA) * g
            g = mom[name]
        rms = torch.sqrt((g ** 2).sum(dim=in_dim, keepdim=True) / g.shape[in_dim])
        return w * (1 - LR * WD) - LR * g / rms

    layerwise_lockstep(m, opt, 4, _loss, literal, ("vector",), dict(lr=LR, betas=BETAS, eps=1e-8, weight_decay=WD),
                       rtol=1e-10, atol=1e-12)
    if momentum:
        assert sum("momentum_buffer" in s for s in opt.state.values()) == 1  # the output layer only
    else:
        assert not any("momentum_buffer" in s for s in opt.state.values())


def test_the_task_builds_scale_with_the_model_roles():
    m = _model()
    opt = build_optimizer(optimizer_params(m, OptimConfig(name="scale")), OptimConfig(name="scale", lr=LR))
    assert opt.roles == layer_roles(m)


def test_plain_parameters_take_the_last_matrix_as_output():
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    ps = list(net.parameters())
    roles = default_roles(ps)
    assert roles[id(ps[0])] == ("matrix", 1) and roles[id(ps[2])] == ("output", 1)
    assert roles[id(ps[1])] == ("vector", -1)
    assert SCALE(net.parameters()).roles == roles


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="momentum"):
        SCALE([torch.nn.Parameter(torch.zeros(2, 2))], momentum=1.0)
    with pytest.raises(ValueError, match="role"):
        SCALE([{"params": [torch.nn.Parameter(torch.zeros(2, 2))], "role": "head"}])


def test_convolution_kernels_are_normalized_per_output_channel():
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).double()
    roles = layer_roles(net)
    assert roles[id(net[0].weight)] == ("matrix", 1)
    w0 = net[0].weight.detach().clone()
    opt = SCALE(layer_groups(net), lr=LR, momentum=0.0)
    x = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net(x).square().mean().backward()
    g = net[0].weight.grad.detach().clone()
    opt.step()
    flat = g.reshape(3, -1)
    ref = w0 - LR * (flat / flat.square().mean(dim=1, keepdim=True).sqrt()).view_as(g)
    torch.testing.assert_close(net[0].weight.detach(), ref)
