"""Optimizer construction from config: torch built-ins plus every optimizer a paper registers
in its paper.yaml (`optimizers: {name: papers.<pid>.method:Class}`), and LR schedules."""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field

import torch

from optrepro.config import closest
from optrepro.errors import ConfigError

BUILTINS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


@dataclass
class OptimConfig:
    name: str = "adam"
    """sgd | adam | adamw | any optimizer registered by a paper (see `repro list`)."""
    lr: float = 1e-3
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    """SGD only."""
    kwargs: dict = field(default_factory=dict)
    """Extra constructor arguments for this optimizer (checked against its signature)."""
    schedule: str = "constant"
    """constant | cosine | linear (1 - t/T after the warm-up) | step (x0.1 at each fraction in `milestones`)."""
    warmup_steps: int = 0
    milestones: list = field(default_factory=lambda: [0.5, 0.75])


NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
"""Registered optimizer names: lower case (lookups are case-insensitive)."""


def owners() -> dict[str, list[str]]:
    """name -> who registers it: 'torch' for the built-ins, else the pids whose paper.yaml lists it."""
    from optrepro.registry import all_papers
    out = {n: ["torch"] for n in BUILTINS}
    for paper in all_papers().values():
        for name in paper.meta.get("optimizers") or {}:
            out.setdefault(str(name).lower(), []).append(paper.pid)
    return out


def problems() -> list[str]:
    """Registry violations `repro check` reports: a name registered twice (a new paper's `lion` would
    otherwise silently replace lion_2023's in its tables) or not lower case."""
    errs = [f"optimizer '{n}' is registered by {' and '.join(who)}: names are global, give the new one "
            f"its own (e.g. {n}_{who[-1].rsplit('_', 1)[0]})" for n, who in owners().items() if len(who) > 1]
    from optrepro.registry import all_papers
    for paper in all_papers().values():
        errs += [f"{paper.pid}: optimizer name '{n}' must be lower case letters, digits and _"
                 for n in paper.meta.get("optimizers") or {} if not NAME_RE.match(str(n))]
    return errs


def _entries() -> dict:
    """name -> paper.yaml `optimizers:` entry: "module:Class", or a mapping {class: "module:Class",
    search: {hparam: [low, high]}, fixed: {hparam: value}} that also declares the benchmark's
    search space (common.optim.algoperf). A name registered twice is left out (`problems`)."""
    from optrepro.registry import all_papers
    out, dup = {}, {n for n, who in owners().items() if len(who) > 1}
    for paper in all_papers().values():
        for name, entry in (paper.meta.get("optimizers") or {}).items():
            if str(name).lower() not in dup:
                out[str(name).lower()] = entry
    return out


def registry() -> dict:
    """name -> optimizer class (or its "module:Class", imported lazily): built-ins first, then each
    paper's `optimizers:` entries."""
    reg = dict(BUILTINS)
    for name, entry in _entries().items():
        reg[name] = entry if isinstance(entry, str) else entry["class"]
    return reg


def registry_spaces() -> dict:
    """name -> {'search': ..., 'fixed': ...} for registry entries that declare a search space."""
    return {n: e for n, e in _entries().items() if isinstance(e, dict) and ("search" in e or "fixed" in e)}


def resolve(name: str):
    """The optimizer class registered as `name` (case-insensitive)."""
    reg = registry()
    key = str(name).lower()
    if key not in reg:
        who = owners().get(key)
        if who:
            raise ConfigError(f"optimizer '{name}' is registered by {' and '.join(who)}: ambiguous "
                              f"(`repro check` reports it)")
        raise ConfigError(f"unknown optimizer '{name}'{closest(key, reg)}; valid: {', '.join(sorted(reg))}")
    target = reg[key]
    if isinstance(target, str):
        from optrepro import import_target
        target = import_target(target)
    return target


def create_optimizer(name: str, params, **kwargs) -> torch.optim.Optimizer:
    """`create_optimizer("Lion", model.parameters(), lr=1e-4)`: any registered optimizer by name
    (case-insensitive; `repro list --optimizers` lists them) with its own constructor arguments."""
    cls = resolve(name)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    unknown = [] if takes_any else [k for k in kwargs if k not in arguments(cls)]
    if unknown:
        raise TypeError(f"{name}: unknown argument(s) {', '.join(unknown)}; valid: {', '.join(arguments(cls))}")
    return cls(params, **kwargs)


def describe() -> list[tuple[str, str, str]]:
    """(name, registered by, class path) of every optimizer, sorted by name."""
    reg, who = registry(), owners()
    rows = []
    for n in sorted(reg):
        t = reg[n]
        path = t if isinstance(t, str) else f"{t.__module__}:{t.__qualname__}"
        rows.append((n, ", ".join(who.get(n, ["torch"])), path))
    return rows


def arguments(cls) -> list[str]:
    """The constructor arguments of an optimizer class, less self and params."""
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]


def build_optimizer(params, oc: OptimConfig) -> torch.optim.Optimizer:
    cls = resolve(oc.name)
    sig = arguments(cls)
    common = {"lr": oc.lr, "betas": tuple(oc.betas), "eps": oc.eps, "weight_decay": oc.weight_decay,
              "momentum": oc.momentum}
    kw = {k: v for k, v in common.items() if k in sig}
    for k, v in oc.kwargs.items():
        if k not in sig:
            raise ConfigError(f"optim.kwargs.{k}: not an argument of {oc.name}{closest(k, sig)}; "
                              f"valid: {', '.join(sig)}")
        kw[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(params, **kw)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"optimizer {oc.name}: {e}") from None


def params_for(cls, model: torch.nn.Module):
    """What to construct optimizer class `cls` with for `model`: the parameter groups of its
    `model_groups(model)` when it defines one (optimizers that treat layers by role, e.g. the output
    layer: common.optim.layers), else model.parameters()."""
    groups = getattr(cls, "model_groups", None)
    return groups(model) if callable(groups) else model.parameters()


def optimizer_params(model: torch.nn.Module, oc: OptimConfig):
    """`params_for` the optimizer `oc` names: what to hand `build_optimizer` for `model`."""
    return params_for(resolve(oc.name), model)


def lr_factor(oc: OptimConfig, step: int, total: int) -> float:
    """Multiplier of the base LR at `step` (0-based) of `total`."""
    if oc.warmup_steps and step < oc.warmup_steps:
        return (step + 1) / oc.warmup_steps
    if oc.schedule == "constant":
        return 1.0
    if oc.schedule == "cosine":
        t = (step - oc.warmup_steps) / max(1, total - oc.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if oc.schedule == "linear":
        t = (step - oc.warmup_steps) / max(1, total - oc.warmup_steps)
        return max(0.0, 1.0 - t)
    if oc.schedule == "step":
        return 0.1 ** sum(step >= m * total for m in oc.milestones)
    raise ConfigError(f"optim.schedule '{oc.schedule}' unknown; valid: constant, cosine, linear, step")


def preflight_outside_registry(cfg, task_preflight, make) -> None:
    """Preflight a task config whose `optim.name` names an optimizer outside the registry (built by
    `make(params, model=model)`, e.g. a second-order paper's): the task's own checks with a registered
    stand-in name, then the optimizer built on a dummy one-unit linear model (bad arguments:
    ConfigError, exit 2)."""
    saved, kwargs = cfg.optim.name, cfg.optim.kwargs
    cfg.optim.name, cfg.optim.kwargs = "adam", {}  # the optimizer's own arguments are checked by make()
    try:
        task_preflight(cfg)
    finally:
        cfg.optim.name, cfg.optim.kwargs = saved, kwargs
    dummy = torch.nn.Linear(1, 1)
    try:
        make(list(dummy.parameters()), model=dummy)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"optimizer {saved}: {e}") from None


def make_scheduler(opt, oc: OptimConfig, total: int):
    lr_factor(oc, 0, total)  # validates the schedule name
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(oc, s, total))


def check(oc: OptimConfig) -> None:
    """Preflight: build the optimizer on a dummy parameter so bad names/arguments exit 2 early."""
    build_optimizer([torch.nn.Parameter(torch.zeros(1))], oc)
    lr_factor(oc, 0, 1)
