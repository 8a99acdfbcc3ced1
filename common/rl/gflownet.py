"""GFlowNets on a HyperGrid with an additive energy: the environment, the exact target and flows, a
policy, and the training losses (TB, DB, forward-looking DB), written from their equations.

HyperGrid (Bengio et al. 2021): states are points of {0..H-1}^D, starting at 0; an action adds 1 to one
coordinate or stops, and every state can stop (it is then the sample). The reward is R(x) = exp(-E(x))
with an additive energy E(x) = Σ_d e(x_d) (`band_energy`), so each step s -> s' has a local energy change
E(s') - E(s): the "partial reward" forward-looking GFlowNets use (Pan et al. 2023).

Losses over a batch of transitions (P_B fixed uniform over a state's parents, as is common on the grid):
- TB  (Malkin et al. 2022): (log Z + Σ log P_F - log R(x) - Σ log P_B)² per complete trajectory;
- DB  (Bengio et al. 2023): (log F(s) + log P_F(s'|s) - log F(s') - log P_B(s|s'))² per move, and
  (log F(s) + log P_F(stop|s) - log R(s))² per stop;
- FL-DB (Pan et al. 2023): the flow is reparameterised as log F(s) = log F̃(s) - E(s), so a move's residual is
  log F̃(s) + log P_F(s'|s) - log F̃(s') - log P_B(s|s') + (E(s') - E(s)) and a stop's log F̃(s) + log P_F(stop|s).
  Every transition carries its own credit, so a trajectory cut before it stops still trains the flow.
`exact_flows` gives the unique solution under uniform P_B (every loss is zero there) and
`terminal_distribution` the exact sampling distribution of any policy, by dynamic programming over the DAG.
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from optrepro.errors import ConfigError


class HyperGrid:
    def __init__(self, dim: int = 2, side: int = 8, low: float = 0.1, band: float = 0.3):
        if dim < 1 or side < 2:
            raise ConfigError(f"HyperGrid needs dim >= 1 and side >= 2, got {dim}, {side}")
        if not 0 < low <= 1 or not 0 <= band < 0.5:
            raise ConfigError(f"band_energy needs 0 < low <= 1 and 0 <= band < 0.5, got {low}, {band}")
        self.dim, self.side, self.low, self.band = dim, side, low, band
        self.n_actions = dim + 1  # + 1 on coordinate d, or stop (action dim)
        self.states = torch.tensor(list(itertools.product(range(side), repeat=dim)), dtype=torch.long)  # [S, D]

    def index(self, s: torch.Tensor) -> torch.Tensor:
        return (s * (self.side ** torch.arange(self.dim - 1, -1, -1))).sum(-1)

    def coordinate_energy(self, k: torch.Tensor) -> torch.Tensor:
        """e(k) = -log r(k), r(k) = 1 where |k / (H - 1) - 1/2| > band (the two outer bands), else `low`."""
        far = (k.double() / (self.side - 1) - 0.5).abs() > self.band
        return -torch.log(torch.where(far, torch.ones_like(k, dtype=torch.float64),
                                      torch.full_like(k, self.low, dtype=torch.float64)))

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        return self.coordinate_energy(s).sum(-1)

    def log_reward(self, s: torch.Tensor) -> torch.Tensor:
        return -self.energy(s)

    def forward_mask(self, s: torch.Tensor) -> torch.Tensor:
        """[n, D + 1]: the allowed actions (a coordinate at H - 1 cannot grow; stop is always allowed)."""
        return torch.cat([s < self.side - 1, torch.ones(len(s), 1, dtype=torch.bool)], 1)

    def n_parents(self, s: torch.Tensor) -> torch.Tensor:
        return (s > 0).sum(-1)

    def target(self) -> torch.Tensor:
        """R(x) / Z over all states (in `states` order)."""
        return torch.softmax(self.log_reward(self.states), 0)


def one_hot(env: HyperGrid, s: torch.Tensor) -> torch.Tensor:
    return nn.functional.one_hot(s, env.side).flatten(1).float()


class GridPolicy(nn.Module):
    """P_F logits over D + 1 actions and a log-flow head (log F for DB, log F̃ for FL-DB) from one-hot
    coordinates; log Z for TB."""

    def __init__(self, env: HyperGrid, hidden: int = 128, layers: int = 2):
        super().__init__()
        dims = [env.dim * env.side] + [hidden] * layers
        mods = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.LeakyReLU()]
        self.body = nn.Sequential(*mods)
        self.pf = nn.Linear(hidden, env.n_actions)
        self.flow = nn.Linear(hidden, 1)
        self.log_z = nn.Parameter(torch.zeros(()))
        self.env = env

    def forward(self, s):
        h = self.body(one_hot(self.env, s))
        logits = self.pf(h).masked_fill(~self.env.forward_mask(s), -math.inf)
        return torch.log_softmax(logits, -1), self.flow(h).squeeze(-1)


def sample_trajectories(env: HyperGrid, policy, n: int, gen: torch.Generator, explore: float = 0.0):
    """n complete trajectories from s0 with P_F (mixed with `explore` uniform over allowed actions). Returns a
    dict of per-transition tensors (traj, t: the transition's position in its trajectory, s, a, s_next, done)
    in order, and the terminal states."""
    s = torch.zeros(n, env.dim, dtype=torch.long)
    alive = torch.ones(n, dtype=torch.bool)
    rows = {"traj": [], "t": [], "s": [], "a": [], "s_next": [], "done": []}
    steps = 0
    while alive.any():
        idx = torch.nonzero(alive).flatten()
        with torch.no_grad():
            logp, _ = policy(s[idx])
        p = logp.exp()
        if explore > 0:
            m = env.forward_mask(s[idx]).double()
            p = (1 - explore) * p.double() + explore * m / m.sum(1, keepdim=True)
        a = torch.multinomial(p.float(), 1, generator=gen).squeeze(1)
        done = a == env.dim
        nxt = s[idx].clone()
        mv = ~done
        nxt[mv, a[mv]] += 1
        for k, v in zip(("traj", "t", "s", "a", "s_next", "done"),
                        (idx, torch.full_like(idx, steps), s[idx].clone(), a, nxt, done)):
            rows[k].append(v)
        s[idx] = nxt
        alive[idx[done]] = False
        steps += 1
    out = {k: torch.cat(v) for k, v in rows.items()}
    return out, s


def db_residuals(env: HyperGrid, policy, batch: dict, forward_looking: bool) -> torch.Tensor:
    """Per-transition DB residuals (FL-DB with `forward_looking`: the flow head is log F̃ and each move adds
    its energy change E(s') - E(s); a stop's target is 0 instead of log R(s))."""
    logp, logf = policy(batch["s"])
    lp = logp.gather(1, batch["a"][:, None]).squeeze(1)
    done = batch["done"]
    res = torch.empty_like(lp)
    if forward_looking:
        res[done] = logf[done] + lp[done]
    else:
        res[done] = logf[done] + lp[done] - env.log_reward(batch["s"][done]).float()
    mv = ~done
    if mv.any():
        _, logf_next = policy(batch["s_next"][mv])
        log_pb = -torch.log(env.n_parents(batch["s_next"][mv]).float())
        res[mv] = logf[mv] + lp[mv] - logf_next - log_pb
        if forward_looking:
            res[mv] = res[mv] + (env.energy(batch["s_next"][mv]) - env.energy(batch["s"][mv])).float()
    return res


def tb_residuals(env: HyperGrid, policy, batch: dict, n: int) -> torch.Tensor:
    """Per-trajectory TB residuals for trajectories 0..n-1 (each must have stopped)."""
    logp, _ = policy(batch["s"])
    lp = logp.gather(1, batch["a"][:, None]).squeeze(1)
    mv = ~batch["done"]
    log_pb = torch.zeros_like(lp)
    log_pb[mv] = -torch.log(env.n_parents(batch["s_next"][mv]).float())
    total = torch.zeros(n).index_add(0, batch["traj"], lp - log_pb)
    last = torch.zeros(n, env.dim, dtype=torch.long)
    last[batch["traj"][batch["done"]]] = batch["s"][batch["done"]]
    return policy.log_z + total - env.log_reward(last).float()


def _children(env: HyperGrid) -> list:
    """Per state i (`states` order), its moves [(d, j, parents of j)]: state i + 1 on coordinate d = state j."""
    out = []
    for s in env.states:
        moves = []
        for d in range(env.dim):
            if s[d] < env.side - 1:
                c = s.clone()
                c[d] += 1
                moves.append((d, int(env.index(c)), float(env.n_parents(c))))
        out.append(moves)
    return out


def exact_flows(env: HyperGrid):
    """(log F(s), log P_F [S, D + 1]) of the unique flow with uniform P_B: F(s) = R(s) + Σ_children F(s') / |parents(s')|,
    P_F(s'|s) = F(s') P_B(s|s') / F(s), P_F(stop|s) = R(s) / F(s)."""
    S, kids = env.states, _children(env)
    R = env.log_reward(S).exp()
    F = R.clone()
    for i in torch.argsort(S.sum(1), descending=True).tolist():  # children (larger coordinate sums) first
        for _, j, n_par in kids[i]:
            F[i] = F[i] + F[j] / n_par
    logpf = torch.full((len(S), env.n_actions), -math.inf, dtype=torch.float64)
    for i, moves in enumerate(kids):
        for d, j, n_par in moves:
            logpf[i, d] = math.log(F[j] / n_par / F[i])
    logpf[:, env.dim] = (R / F).log()
    return F.log(), logpf


def terminal_distribution(env: HyperGrid, logpf: torch.Tensor) -> torch.Tensor:
    """The exact distribution of the stopping state under P_F (log-probabilities [S, D + 1], `states` order):
    reach(s) by forward dynamic programming in order of coordinate sum, times P_F(stop | s)."""
    S, kids = env.states, _children(env)
    pf = logpf.double().exp()
    reach = torch.zeros(len(S), dtype=torch.float64)
    reach[int(env.index(torch.zeros(env.dim, dtype=torch.long)))] = 1.0
    for i in torch.argsort(S.sum(1)).tolist():
        for d, j, _ in kids[i]:
            reach[j] += reach[i] * pf[i, d]
    return reach * pf[:, env.dim]


def policy_table(env: HyperGrid, policy) -> torch.Tensor:
    with torch.no_grad():
        return policy(env.states)[0]


def l1_to_target(env: HyperGrid, policy) -> float:
    """Σ_x |P_T(x) - R(x) / Z|: the exact error of the sampler (no sampling noise)."""
    return float((terminal_distribution(env, policy_table(env, policy)) - env.target()).abs().sum())


def torchgfn_tb(env: HyperGrid, policy: GridPolicy, init_log_z: float = 0.0):
    """(torchgfn env, TBGFlowNet) for the same grid, reward and forward policy: torchgfn's HyperGrid with its
    reward replaced by this grid's, P_F from `policy`'s network (torchgfn applies the masks), P_B uniform over
    parents (a constant backward estimator). The reference implementation for TB (torchgfn 2.4.1, installed
    without its numpy < 2 pin: see the Makefile)."""
    try:
        from gfn.estimators import DiscretePolicyEstimator
        from gfn.gflownet import TBGFlowNet
        from gfn.gym import HyperGrid as TorchgfnGrid
        from gfn.preprocessors import IdentityPreprocessor
    except ImportError as e:
        raise ConfigError(f"torchgfn is not installed ({e}); `make install` installs it with the dev extra") from None

    class Forward(nn.Module):
        def forward(self, x):
            return policy.pf(policy.body(one_hot(env, x.long())))

    class Uniform(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], env.dim)

    tenv = TorchgfnGrid(ndim=env.dim, height=env.side, validate_modes=False)
    tenv.reward_fn = lambda t: env.log_reward(t.long()).exp().to(torch.get_default_dtype())
    pre = IdentityPreprocessor(output_dim=env.dim)
    pf = DiscretePolicyEstimator(Forward(), n_actions=env.n_actions, preprocessor=pre)
    pb = DiscretePolicyEstimator(Uniform(), n_actions=env.n_actions, preprocessor=pre, is_backward=True)
    return tenv, TBGFlowNet(pf=pf, pb=pb, init_logZ=init_log_z)


def from_torchgfn(trajectories) -> dict:
    """torchgfn Trajectories -> this module's per-transition batch (exit actions: done, s_next = s)."""
    S, A = trajectories.states.tensor.long(), trajectories.actions.tensor[..., 0].long()
    rows = {"traj": [], "s": [], "a": [], "s_next": [], "done": []}
    dim = S.shape[-1]
    for b in range(A.shape[1]):
        for t in range(A.shape[0]):
            a = int(A[t, b])
            if a < 0:
                break
            done = a == dim
            rows["traj"].append(b)
            rows["s"].append(S[t, b])
            rows["a"].append(a)
            rows["s_next"].append(S[t, b] if done else S[t + 1, b])
            rows["done"].append(done)
    return {"traj": torch.tensor(rows["traj"]), "s": torch.stack(rows["s"]), "a": torch.tensor(rows["a"]),
            "s_next": torch.stack(rows["s_next"]), "done": torch.tensor(rows["done"])}
