"""gflownet_local_credit_2023 (common.rl.gflownet) against closed forms and literal equations.

- The exact flow under uniform P_B (dynamic programming) is a fixed point of every objective: a policy
  that outputs it has zero TB, DB and FL-DB residuals on sampled trajectories, and its exact terminal
  distribution is R / Z.
- The residuals equal their equations written out, transition by transition.
- FL-DB is DB reparameterised: with log F̃(s) = log F(s) + E(s) the FL-DB residuals equal the DB ones.
- The exact terminal distribution of a random policy matches Monte Carlo sampling of it.
"""
import math

import pytest
import torch

from optrepro.rl.gflownet import (GridPolicy, HyperGrid, db_residuals, exact_flows, l1_to_target, sample_trajectories,
                                  tb_residuals, terminal_distribution)

pytestmark = pytest.mark.reference
ENV = HyperGrid(dim=2, side=5, low=0.1, band=0.3)


class TablePolicy(torch.nn.Module):
    """A policy read from tables over the states: log P_F [S, D + 1] and a log-flow per state."""

    def __init__(self, env, logpf, logflow, log_z=0.0):
        super().__init__()
        self.env, self.logpf, self.logflow = env, logpf.float(), logflow.float()
        self.log_z = torch.tensor(float(log_z))

    def forward(self, s):
        i = self.env.index(s)
        return self.logpf[i], self.logflow[i]


def _exact_policy(forward_looking=False):
    log_f, logpf = exact_flows(ENV)
    flow = log_f + ENV.energy(ENV.states) if forward_looking else log_f
    return TablePolicy(ENV, logpf, flow, log_z=float(log_f[int(ENV.index(torch.zeros(2, dtype=torch.long)))]))


def test_exact_flow_samples_the_target():
    _, logpf = exact_flows(ENV)
    assert torch.allclose(terminal_distribution(ENV, logpf), ENV.target(), atol=1e-12)
    assert l1_to_target(ENV, _exact_policy()) < 1e-5


@pytest.mark.parametrize("objective", ["tb", "db", "fldb"])
def test_exact_flow_zeroes_every_objective(objective):
    pol = _exact_policy(forward_looking=objective == "fldb")
    batch, _ = sample_trajectories(ENV, pol, 64, torch.Generator().manual_seed(0))
    res = tb_residuals(ENV, pol, batch, 64) if objective == "tb" else db_residuals(ENV, pol, batch, objective == "fldb")
    assert res.abs().max() < 1e-4


def _random_policy(seed=0):
    torch.manual_seed(seed)
    return GridPolicy(ENV, hidden=16, layers=1)


def test_residuals_are_their_equations():
    pol = _random_policy()
    batch, _ = sample_trajectories(ENV, pol, 8, torch.Generator().manual_seed(1))
    db, fl = db_residuals(ENV, pol, batch, False), db_residuals(ENV, pol, batch, True)
    tb = tb_residuals(ENV, pol, batch, 8)
    sums = [0.0] * 8
    with torch.no_grad():
        for k in range(len(batch["a"])):
            s, a, s2 = batch["s"][k:k + 1], int(batch["a"][k]), batch["s_next"][k:k + 1]
            logp, logf = pol(s)
            if batch["done"][k]:
                log_r = float(ENV.log_reward(s))
                assert float(db[k]) == pytest.approx(float(logf) + float(logp[0, a]) - log_r, abs=1e-5)
                assert float(fl[k]) == pytest.approx(float(logf) + float(logp[0, a]), abs=1e-5)
                sums[int(batch["traj"][k])] += float(logp[0, a])
            else:
                _, logf2 = pol(s2)
                log_pb = -math.log(int((s2 > 0).sum()))
                ref = float(logf) + float(logp[0, a]) - float(logf2) - log_pb
                assert float(db[k]) == pytest.approx(ref, abs=1e-5)
                de = float(ENV.energy(s2) - ENV.energy(s))
                assert float(fl[k]) == pytest.approx(ref + de, abs=1e-5)
                sums[int(batch["traj"][k])] += float(logp[0, a]) - log_pb
    last = {int(t): batch["s"][k] for k, t in enumerate(batch["traj"]) if batch["done"][k]}
    for j in range(8):
        assert float(tb[j].detach()) == pytest.approx(float(pol.log_z.detach()) + sums[j] - float(ENV.log_reward(last[j][None])), abs=1e-4)


def test_fldb_is_db_reparameterised():
    pol = _random_policy(2)
    batch, _ = sample_trajectories(ENV, pol, 16, torch.Generator().manual_seed(3))
    logpf = pol(ENV.states)[0].detach()
    logf = pol(ENV.states)[1].detach()
    db = db_residuals(ENV, TablePolicy(ENV, logpf, logf), batch, False)
    fl = db_residuals(ENV, TablePolicy(ENV, logpf, logf + ENV.energy(ENV.states).float()), batch, True)
    assert torch.allclose(db, fl, atol=1e-5)


def test_terminal_distribution_matches_sampling():
    pol = _random_policy(4)
    exact = terminal_distribution(ENV, pol(ENV.states)[0].detach())
    assert float(exact.sum()) == pytest.approx(1.0, abs=1e-6)
    _, ends = sample_trajectories(ENV, pol, 40_000, torch.Generator().manual_seed(5))
    freq = torch.bincount(ENV.index(ends), minlength=len(ENV.states)).double() / len(ends)
    assert float((freq - exact).abs().max()) < 0.01  # about 5 standard errors of the largest cell at n = 40,000


def test_bad_grid_is_a_config_error():
    from optrepro.errors import ConfigError
    with pytest.raises(ConfigError):
        HyperGrid(dim=0)
    with pytest.raises(ConfigError):
        HyperGrid(low=0.0)


def test_tb_equals_torchgfn():
    """torchgfn 2.4.1's TBGFlowNet loss on its own sampled trajectories equals our TB residuals' mean square on
    the same trajectories, for the same grid, reward, P_F network and uniform P_B."""
    pytest.importorskip("gfn")
    from optrepro.rl.gflownet import from_torchgfn, torchgfn_tb
    pol = _random_policy(6)
    tenv, gfn = torchgfn_tb(ENV, pol, init_log_z=0.3)
    torch.manual_seed(7)
    traj = gfn.sample_trajectories(tenv, n=32, epsilon=0.1)
    ref = gfn.loss(tenv, traj)
    with torch.no_grad():
        pol.log_z.fill_(0.3)
    batch = from_torchgfn(traj)
    assert bool(batch["done"].sum() == 32)
    ours = (tb_residuals(ENV, pol, batch, 32) ** 2).mean()
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    g_ref = torch.autograd.grad(ref, list(pol.pf.parameters()))
    g_ours = torch.autograd.grad(ours, list(pol.pf.parameters()))
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
