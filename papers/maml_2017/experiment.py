"""One row, one seed: the MAML paper's sinusoid regression (Section 5.1), `run`, or N-way K-shot
classification on sklearn digits, `run_digits` (below).

Sinusoid regression. Tasks y = A sin(x - phi),
A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]; a 1-40-40-1 ReLU network.

- maml / fomaml: `iterations` meta-steps of Adam (meta_lr) on the mean query loss of `meta_batch`
  tasks after `inner_steps` SGD steps (inner_lr) on each task's K = `shots` support points
  (common.bilevel.meta; fomaml drops the second-order terms);
- pretrained: the paper's baseline, the same network trained with Adam to regress the same sampled
  tasks' support and query points jointly, without adaptation.

Evaluation (the same for every row): `eval_tasks` new tasks per seed, each adapted from the trained
initialization by s SGD steps at inner_lr on K support points and scored on `eval_query` query
points; mse_s for s in 0, 1, 10 (the paper's figure shows up to 10 steps). Tasks at meta-step t come
from a generator seeded by (seed, t), so a resumed run draws the same tasks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optrepro.bilevel import meta
from optrepro.config import BaseConfig, require_at_least
from optrepro.errors import ConfigError

from . import method

EVAL_STEPS = (0, 1, 10)


@dataclass
class MetaConfig(BaseConfig):
    """What both tables set: the method, meta-training and evaluation sizes (sinusoid defaults)."""
    method: str = "maml"
    """maml | fomaml | pretrained."""
    iterations: int = 3000
    meta_batch: int = 25
    shots: int = 10
    """K: support points (per class, for classification) per task."""
    inner_lr: float = 0.01
    inner_steps: int = 1
    meta_lr: float = 1e-3
    hidden: int = 40
    eval_tasks: int = 100
    log_every: int = 100


@dataclass
class SinusoidConfig(MetaConfig):
    eval_query: int = 100


Config = SinusoidConfig


def preflight(cfg) -> None:
    if cfg.method not in method.METHODS:
        raise ConfigError(f"method must be one of {', '.join(method.METHODS)}, got {cfg.method!r}")
    names = ("iterations", "meta_batch", "shots", "inner_steps", "hidden", "eval_tasks", "log_every")
    names += ("eval_query",) if isinstance(cfg, SinusoidConfig) else ("n_way", "query")
    if isinstance(cfg, FewShotConfig) and not cfg.n_way <= len(TEST_CLASSES):
        raise ConfigError(f"n_way must be <= {len(TEST_CLASSES)} (the classes held out for evaluation), got {cfg.n_way}")
    require_at_least(cfg, names)
    if not (cfg.inner_lr > 0 and cfg.meta_lr > 0):
        raise ConfigError(f"inner_lr and meta_lr must be > 0, got {cfg.inner_lr}, {cfg.meta_lr}")


def net(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def evaluate(model: nn.Module, cfg: SinusoidConfig) -> dict:
    """mse_s after s adaptation steps on fresh tasks (the same tasks for every row of a seed)."""
    support, query, _ = meta.sinusoid_tasks(cfg.eval_tasks, cfg.shots, eval_generator(cfg), query=cfg.eval_query)
    curve = meta.adaptation_curve(model, meta.mse_per_task, support, query, cfg.inner_lr, EVAL_STEPS,
                                  lambda out, y: meta.mse_per_task(out, y).mean())
    return {f"mse_{s}": v for s, v in curve.items()}


def meta_train(cfg: MetaConfig, ctx, model: nn.Module, batch_loss) -> None:
    """`cfg.iterations` Adam steps (meta_lr) on batch_loss(generator); the batch of step t comes from a
    generator seeded by (seed, t), so a resumed run draws the same tasks."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)
    for t in ctx.steps(cfg.iterations, {"model": model, "opt": opt}):
        loss = batch_loss(torch.Generator().manual_seed(cfg.seed * 1_000_003 + t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if t % cfg.log_every == 0 or t == cfg.iterations:
            ctx.log(t, train_loss=float(loss.detach()))


def eval_generator(cfg: MetaConfig) -> torch.Generator:
    """The evaluation tasks' generator: the same tasks for every row of a seed."""
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + 999_983)


def run(cfg: SinusoidConfig, ctx) -> dict:
    torch.manual_seed(cfg.seed)
    model = net(cfg.hidden)

    def batch_loss(g):
        support, query, _ = meta.sinusoid_tasks(cfg.meta_batch, cfg.shots, g)
        return method.objective(cfg.method, model, support, query, cfg.inner_steps, cfg.inner_lr)
    meta_train(cfg, ctx, model, batch_loss)
    res = evaluate(model, cfg)
    ctx.log(cfg.iterations, **res)
    return res


# -- few-shot digits ---------------------------------------------------------------------------------

EVAL_STEPS_CLS = (0, 1, 5)


@dataclass
class FewShotConfig(MetaConfig):
    """method pretrained: a classifier of the 20 meta-training classes whose body gets a zero N-way
    head at evaluation, then is adapted like the others."""
    iterations: int = 2000
    meta_batch: int = 16
    shots: int = 5
    inner_lr: float = 0.4
    hidden: int = 128
    eval_tasks: int = 200
    n_way: int = 5
    query: int = 10
    """query examples per class (training and evaluation tasks)."""


ROTATIONS = 4
TRAIN_CLASSES = [d * ROTATIONS + r for d in range(5) for r in range(ROTATIONS)]
TEST_CLASSES = [d * ROTATIONS + r for d in range(5, 10) for r in range(ROTATIONS)]


def _digits():
    """All 1797 sklearn digits, each also rotated by 90, 180 and 270 degrees; a (digit, rotation) pair
    is a class (as the MAML paper augments Omniglot): digits 0-4 give the 20 meta-training classes,
    5-9 the 20 evaluation classes."""
    from optrepro import data
    s = data.load("digits", seed=0)
    x, y = torch.cat([s.x_train, s.x_test]), torch.cat([s.y_train, s.y_test])
    xs = [torch.rot90(x, r, dims=(-2, -1)).flatten(1) for r in range(ROTATIONS)]
    ys = [y * ROTATIONS + r for r in range(ROTATIONS)]
    return torch.cat(xs), torch.cat(ys)


def classifier(hidden: int, n_way: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_way))


def run_digits(cfg: FewShotConfig, ctx) -> dict:
    x, y = _digits()
    pool = torch.nonzero(y < len(TRAIN_CLASSES)).flatten()  # the training classes are the first 20
    torch.manual_seed(cfg.seed)
    pretrained = cfg.method == "pretrained"
    model = classifier(cfg.hidden, len(TRAIN_CLASSES) if pretrained else cfg.n_way)

    def batch_loss(g):
        if pretrained:  # plain 20-way classification of the training classes
            i = pool[torch.randint(0, len(pool), (cfg.meta_batch * cfg.n_way * (cfg.shots + cfg.query),), generator=g)]
            return nn.functional.cross_entropy(model(x[i]), y[i])
        support, query = meta.fewshot_tasks(x, y, TRAIN_CLASSES, cfg.n_way, cfg.shots, cfg.query, cfg.meta_batch, g)
        return meta.meta_loss(model, meta.ce_per_task, support, query, cfg.inner_steps, cfg.inner_lr,
                              first_order=cfg.method == "fomaml")
    meta_train(cfg, ctx, model, batch_loss)
    if pretrained:  # its body with a fresh N-way head (zero: chance before adaptation), then adapted alike
        body = model
        model = classifier(cfg.hidden, cfg.n_way)
        model.load_state_dict({k: v for k, v in body.state_dict().items() if not k.startswith("4.")}, strict=False)
        nn.init.zeros_(model[4].weight)
        nn.init.zeros_(model[4].bias)
    support, query = meta.fewshot_tasks(x, y, TEST_CLASSES, cfg.n_way, cfg.shots, cfg.query, cfg.eval_tasks,
                                        eval_generator(cfg))
    curve = meta.adaptation_curve(model, meta.ce_per_task, support, query, cfg.inner_lr, EVAL_STEPS_CLS,
                                  lambda out, y: 100.0 * (out.argmax(-1) == y).float().mean())
    res = {f"acc_{s}": v for s, v in curve.items()}
    ctx.log(cfg.iterations, **res)
    return res
