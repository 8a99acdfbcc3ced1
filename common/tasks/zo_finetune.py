"""Prompt-based fine-tuning of a pretrained byte-level LM with one method, one seed (common.zo.prompt:
the LM pretrained in the repo and cached, the 'which package is this code from' task).

Methods:
- zero_shot: the pretrained LM's verbalizer argmax, no training.
- linear_probe: logistic regression (sklearn) on the last hidden state at the prompt's end.
- ft_sgd, ft_adam: first-order fine-tuning of every parameter on the prompt loss.
- zo_sgd (MeZO), zo_sign, zo_mmt, zo_cons, zo_adam, forward_grad: common.zo.ZOOptimizer; `mask`
  restricts the perturbation (magnitude: Sparse MeZO; random; sensitivity: largest |grad|).

Every row also measures, on the same model and training batch, the peak tensor memory of one of its
own steps and of one inference pass (common.zo.memory, allocator events), and the wall time of a step
against one forward pass; result.json reports them beside the accuracies.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.zo.estimators import check_eps
from optrepro.zo.masks import magnitude_masks, random_masks, sensitivity_masks
from optrepro.zo.memory import optimizer_state, peak_tensor_bytes
from optrepro.zo.optim import METHODS, ZOOptimizer
from optrepro.zo.prompt import LMSpec, TaskSpec, accuracy, check_specs, last_hidden, pretrained_lm, prompt_data, prompt_loss

FO = ("ft_sgd", "ft_adam")
NO_TRAIN = ("zero_shot", "linear_probe")
ALL_METHODS = NO_TRAIN + FO + METHODS
MASKS = ("none", "magnitude", "random", "sensitivity")


@dataclass
class ZOFinetuneConfig(BaseConfig):
    method: str = "zo_sgd"
    """zero_shot | linear_probe | ft_sgd | ft_adam | zo_sgd | zo_sign | zo_mmt | zo_cons | zo_adam | forward_grad"""
    lm: LMSpec = field(default_factory=LMSpec)
    task: TaskSpec = field(default_factory=TaskSpec)
    steps: int = 4000
    batch_size: int = 16
    lr: float = 1e-3
    eps: float = 1e-3
    """ZO perturbation scale ε."""
    q: int = 1
    """ZO queries (directions) per step."""
    momentum: float = 0.9
    weight_decay: float = 0.0
    mask: str = "none"
    """none | magnitude (Sparse MeZO: small |w|) | random | sensitivity (largest |grad| on one batch)."""
    density: float = 1.0
    """Share of each weight matrix the mask keeps (biases and norms stay dense)."""
    eval_every: int = 500
    probe_c: float = 1.0
    """linear_probe: inverse L2 strength of the logistic regression."""


def preflight(cfg: ZOFinetuneConfig) -> None:
    if cfg.method not in ALL_METHODS:
        raise ConfigError(f"method '{cfg.method}' unknown; valid: {', '.join(ALL_METHODS)}")
    check_specs(cfg.lm, cfg.task)
    check_eps(cfg.lr, "lr")
    check_eps(cfg.eps)
    if cfg.mask not in MASKS:
        raise ConfigError(f"mask '{cfg.mask}' unknown; valid: {', '.join(MASKS)}")
    if not 0 < cfg.density <= 1:
        raise ConfigError(f"density must be in (0, 1], got {cfg.density}")
    if (cfg.mask == "none") != (cfg.density == 1):
        raise ConfigError(f"mask '{cfg.mask}' with density {cfg.density}: a mask needs density < 1, and density < 1 "
                          "needs a mask (magnitude, random or sensitivity)")
    if cfg.mask != "none" and cfg.method not in METHODS:
        raise ConfigError(f"mask '{cfg.mask}' applies to the ZO methods only, not {cfg.method}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.q < 1 or cfg.eval_every < 1:
        raise ConfigError("steps, batch_size, q and eval_every must be >= 1")


def _masks(cfg, model, batch):
    params = [p for p in model.parameters()]
    if cfg.mask == "magnitude":
        return magnitude_masks(params, cfg.density)
    if cfg.mask == "random":
        return random_masks(params, cfg.density, seed=cfg.seed)
    if cfg.mask == "sensitivity":
        model.zero_grad(set_to_none=True)
        batch()().backward()
        grads = [p.grad.detach().clone() for p in params]
        model.zero_grad(set_to_none=True)
        return sensitivity_masks(params, grads, cfg.density)
    return None


def closures(model, verb):
    """closure_for(x, y) -> the prompt loss of `model` on that batch; with params=, the same loss
    through functional_call (what forward gradients differentiate)."""
    def closure_for(xb, yb, params=None):
        if params is None:
            return lambda: prompt_loss(model, xb, yb, verb)
        return lambda: prompt_loss(lambda ids: torch.func.functional_call(model, params, (ids,)), xb, yb, verb)
    return closure_for


def make_stepper(cfg, model, verb, mask_batch):
    """(step(batch_ids, batch_y) -> loss, optimizer) for a training method; a sensitivity mask is
    chosen on `mask_batch` (x, y)."""
    closure_for = closures(model, verb)
    if cfg.method in FO:
        opt = (torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum) if cfg.method == "ft_sgd"
               else torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay))

        def fo_step(xb, yb):
            loss = closure_for(xb, yb)()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return float(loss.detach())
        return fo_step, opt
    names = [n for n, _ in model.named_parameters()]
    masks = _masks(cfg, model, lambda: closure_for(*mask_batch)) if cfg.mask != "none" else None
    opt = ZOOptimizer(model, cfg.lr, cfg.method, cfg.eps, cfg.q, masks=masks, momentum=cfg.momentum,
                      weight_decay=cfg.weight_decay, seed=cfg.seed)

    def zo_step(xb, yb):
        closure = closure_for(xb, yb)
        loss_fn = None
        if cfg.method == "forward_grad":
            def loss_fn(ps):
                return closure_for(xb, yb, params=dict(zip(names, ps)))()
        return opt.step(closure, loss_fn=loss_fn)
    return zo_step, opt


def run(cfg: ZOFinetuneConfig, ctx) -> dict:
    root = getattr(ctx, "out_root", None) or Path("runs")
    model, info = pretrained_lm(cfg.lm, cfg.task.packages, cfg.seed, root,
                                log=lambda s, loss: ctx.log(s, pretrain_loss=loss))
    data = prompt_data(cfg.task, cfg.seed)
    verb = data.verbalizer
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    xb0, yb0 = data.x_train[: cfg.batch_size], data.y_train[: cfg.batch_size]

    out = {"zero_shot_acc": accuracy(model, data.x_test, data.y_test, verb), **info}
    mem_infer = peak_tensor_bytes(lambda: _infer(model, xb0), [list(model.parameters()), xb0])
    t_fwd = _time(lambda: _infer(model, xb0))
    out.update(mem_infer_mb=mem_infer / 2 ** 20, fwd_ms=1e3 * t_fwd)
    if cfg.method in ("zero_shot", "linear_probe"):
        ctx.no_checkpoint("evaluation (and a probe fit) of the cached pretrained LM: seconds")
    if cfg.method == "zero_shot":
        acc, dev = out["zero_shot_acc"], accuracy(model, data.x_dev, data.y_dev, verb)
        ctx.log(0, acc=acc, dev_acc=dev)
        return {**out, "acc": acc, "dev_acc": dev, "mem_mb": out["mem_infer_mb"], "mem_ratio": 1.0,
                "step_ms": 0.0, "step_fwd_ratio": 0.0}
    if cfg.method == "linear_probe":
        return {**out, **_linear_probe(cfg, model, data, ctx), "mem_mb": out["mem_infer_mb"], "mem_ratio": 1.0,
                "step_ms": 0.0, "step_fwd_ratio": 0.0}

    # memory of one step, measured on a copy (the real run must not take an extra step)
    twin = copy.deepcopy(model)
    step_twin, opt_twin = make_stepper(cfg, twin, verb, (xb0, yb0))
    step_twin(xb0, yb0)  # warm-up: optimizer state (Adam's moments, ZO momentum) exists from here on
    mem_step = peak_tensor_bytes(lambda: step_twin(xb0, yb0),
                                 [list(twin.parameters()), xb0, optimizer_state(opt_twin)])
    del twin, opt_twin, step_twin

    step, opt = make_stepper(cfg, model, verb, (xb0, yb0))
    n = len(data.y_train)
    lp = {"perm": torch.randperm(n, generator=gen), "pos": 0, "t_train": 0.0, "loss": float("nan"), "curve": [],
          "dev": float("nan")}
    for s in ctx.steps(cfg.steps, {"model": model, "opt": opt, "gen": gen, "loop": lp}):
        if lp["pos"] + cfg.batch_size > n:
            lp["perm"], lp["pos"] = torch.randperm(n, generator=gen), 0
        idx = lp["perm"][lp["pos"]:lp["pos"] + cfg.batch_size]
        lp["pos"] += cfg.batch_size
        t0 = time.perf_counter()
        lp["loss"] = step(data.x_train[idx], data.y_train[idx])
        lp["t_train"] += time.perf_counter() - t0
        if s % cfg.eval_every == 0 or s == cfg.steps:
            lp["curve"].append(accuracy(model, data.x_test, data.y_test, verb))
            lp["dev"] = accuracy(model, data.x_dev, data.y_dev, verb)
            ctx.log(s, loss=lp["loss"], acc=lp["curve"][-1], dev_acc=lp["dev"])
    curve, dev, loss, t_train = lp["curve"], lp["dev"], lp["loss"], lp["t_train"]
    acc = curve[-1]  # the last evaluation is at s == cfg.steps
    step_ms = 1e3 * t_train / cfg.steps
    evals = getattr(opt, "evals", None)
    return {**out, "acc": acc, "dev_acc": dev, "acc_auc": sum(curve) / len(curve), "train_loss": loss,
            "mem_mb": mem_step / 2 ** 20, "mem_ratio": mem_step / mem_infer, "step_ms": step_ms, "step_fwd_ratio": step_ms / out["fwd_ms"],
            **({"evals_per_step": evals / cfg.steps} if evals is not None else {})}


def _infer(model, xb):
    with torch.no_grad():
        model(xb)


def _time(fn, reps: int = 20) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def _linear_probe(cfg, model, data, ctx) -> dict:
    from sklearn.linear_model import LogisticRegression
    ftr, fte, fdv = (last_hidden(model, x).numpy() for x in (data.x_train, data.x_test, data.x_dev))
    clf = LogisticRegression(C=cfg.probe_c, max_iter=2000).fit(ftr, data.y_train.numpy())
    acc, dev = float(clf.score(fte, data.y_test.numpy())), float(clf.score(fdv, data.y_dev.numpy()))
    ctx.log(0, acc=acc, dev_acc=dev)
    return {"acc": acc, "dev_acc": dev}
