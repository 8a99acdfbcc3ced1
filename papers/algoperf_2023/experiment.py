"""algoperf_2023: one row per optimizer in the registry (the table says `rows_from: optimizers`),
one seed per tuning study. A run tunes its optimizer on every workload of common.optim.algoperf
with the same trial budget and records steps and time to the validation target of the fastest
trial. `report_extra` turns all rows into performance profiles, scores and a ranking."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.optim import algoperf, resolve
from optrepro.report.compare import seed_values
from optrepro.report.figure import figure


@dataclass
class Config(BaseConfig):
    optimizer: str = "adam"
    """Any name in the optimizer registry."""
    trials: int = 3
    """Tuning trials per workload (the same for every optimizer)."""
    workloads: list = field(default_factory=lambda: list(algoperf.WORKLOADS))
    max_steps_scale: float = 1.0
    """Multiplies every workload's step budget (smoke scale shrinks it)."""


def preflight(cfg: Config) -> None:
    resolve(cfg.optimizer)
    bad = [w for w in cfg.workloads if w not in algoperf.WORKLOADS]
    if bad:
        raise ConfigError(f"workloads: unknown {bad}; valid: {', '.join(algoperf.WORKLOADS)}")
    if cfg.trials < 1:
        raise ConfigError("trials must be >= 1")


def run(cfg: Config, ctx) -> dict:
    out = {}
    for i in ctx.steps(len(cfg.workloads), {"out": out}):  # one checkpointed step per workload
        name = cfg.workloads[i - 1]
        wl = algoperf.WORKLOADS[name]
        r = algoperf.tune(wl, cfg.optimizer, cfg.trials, cfg.seed, max(1, int(wl.max_steps * cfg.max_steps_scale)))
        reached = math.isfinite(r["time_s"])
        # finite stand-ins when the target is missed (results must be finite); `_reached` says which
        out[f"{name}_reached"] = float(reached)
        out[f"{name}_steps"] = r["steps"] if reached else float(wl.max_steps)
        out[f"{name}_time_s"] = r["time_s"] if reached else 0.0
        out[f"{name}_best"] = r["best"] if math.isfinite(r["best"]) else 1e9
        out.update({f"{name}_hp_{k}": float(v) for k, v in r["hparams"].items() if isinstance(v, (int, float))})
        ctx.log(i, **{k: v for k, v in out.items() if k.startswith(name) and math.isfinite(v)})
    out["solved"] = sum(out[f"{w}_reached"] for w in cfg.workloads)
    return out


def _times(doc: dict, key: str) -> dict:
    """{optimizer: {workload: median over studies of the best trial's value}} from a report doc.
    A study that misses the target counts as ∞ (a mean over seeds cannot carry that, so the report
    doc keeps per-seed values under 'per_seed')."""
    out = {}
    for row, a in doc["rows"].items():
        per = a.get("per_seed", {})
        vals = {}
        for w in algoperf.WORKLOADS:
            hit, val = seed_values(a, f"{w}_reached"), seed_values(a, f"{w}_{key}")
            xs = sorted(val[s] if hit[s] else math.inf for s in val if s in hit)
            if xs:
                vals[w] = xs[len(xs) // 2]
        if vals:
            out[row] = vals
    return out


def report_extra(doc: dict, png_path) -> list[str]:
    """Markdown lines: the ranking by AlgoPerf score (time) with the score on steps beside it, and
    a performance-profile figure."""
    times, steps = _times(doc, "time_s"), _times(doc, "steps")
    if not times:
        return []
    rt, rs = algoperf.ratios(times), algoperf.ratios(steps)
    ranking = sorted(times, key=lambda s: (-algoperf.score(rt[s]), -algoperf.score(rs[s]), s))
    wls = sorted({w for t in times.values() for w in t})
    L = ["## Ranking (AlgoPerf score on time-to-target; 1 = fastest everywhere)", "",
         "| rank | optimizer | score (time) | score (steps) | " + " | ".join(f"{w} steps / s" for w in wls) + " |",
         "|---|---|---|---|" + "---|" * len(wls)]
    for i, s in enumerate(ranking, 1):
        cells = [f"{steps[s][w]:.0f} / {times[s][w]:.2f}" if math.isfinite(times[s].get(w, math.inf)) else "not reached"
                 for w in wls]
        L.append(f"| {i} | `{s}` | {algoperf.score(rt[s]):.3f} | {algoperf.score(rs[s]):.3f} | " + " | ".join(cells) + " |")
    L.append("")
    taus = [1 + 3 * i / 300 for i in range(301)]
    with figure(png_path, figsize=(7, 4.5)) as (fig, ax):
        for s in ranking:
            ax.step(taus, algoperf.profile(rt[s], taus), where="post", label=f"{s} ({algoperf.score(rt[s]):.2f})")
        ax.set_xlabel("τ (time ratio to the fastest)")
        ax.set_ylabel("fraction of workloads within τ")
        ax.set_title("Performance profiles (time-to-target)")
        ax.legend(fontsize=7, ncol=2)
    L += [f"![performance profiles]({png_path.name})", ""]
    return L
