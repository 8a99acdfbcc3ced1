"""Strict, typed configs.

A paper's `experiment.py` declares `Config`, a dataclass that subclasses `BaseConfig`; every field
has a default and a docstring-comment. A table YAML (`configs/<pid>/<table>.yaml`) fills it in
layers, each layer checked for unknown keys and wrong types before anything runs:

    Config defaults < base < rows[row] < scales[scale].set < scales[scale].row_set[row] < CLI key=value

Rows name the variants a table compares; a scale sets the budget (steps, data, model size) and
so comes after the rows.

Overrides use Hydra's dotted syntax (`optim.lr=3e-4`), parsed by OmegaConf, without a Hydra app.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from optrepro.errors import ConfigError

SCALES = ("smoke", "mini", "full")


@dataclass
class BaseConfig:
    """Fields every experiment has. Papers subclass this."""

    seed: int = 0
    """Seed for python, numpy and torch; set by the runner from --seeds."""
    tracker: str = "jsonl"
    """'jsonl' (always written) or 'wandb' (JSONL plus wandb, offline unless WANDB_MODE says otherwise)."""
    ckpt_every: int = 0
    """Checkpoint every N steps (0: only on SIGTERM/SIGINT). `--resume` continues from the last one."""
    device: str = "cpu"
    """'cpu' or 'cuda'."""


_NONNEG = re.compile(
    r"^(lr|.*_lr|lr_.*|step_size|eta_max|seed|ckpt_every|n_.*|.*_steps|steps|.*epochs|batch|batches|.*batch|"
    r".*batch_size|.*_every|.*episodes|trajectories|trials|draws|budget|tokens|.*terms|.*_iters|iters|width|"
    r"d_model|context|seq_len|hidden|.*per_class|.*_queries|q|.*eps|weight_decay|tol|ema|max_grad_norm|"
    r"max_kl|.*damping|clip|ent_coef|vf_coef|mu|.*_frac|p_uncond|density)$")
"""Hyper-parameters that are never negative, by name (the last part of a dotted key, or a key of a
`grid`/`hp` mapping): learning rates and step sizes, counts and sizes, epsilons, decays, fractions."""
_UNIT = re.compile(r"^(.*_frac|p_uncond|density)$")
"""... and the ones that are fractions, in [0, 1]."""


def check_numbers(cfg, where: str) -> None:
    """Preflight for every numeric hyper-parameter of a resolved config (nested dataclasses, lists, and
    the values of mappings such as a bilevel `grid`, each under its key's name): finite, and not
    negative (or outside [0, 1]) where its name says it cannot be. A ConfigError (exit 2) names it."""
    def walk(v, name, path):
        if isinstance(v, bool):
            return
        if dataclasses.is_dataclass(v):
            for f in dataclasses.fields(v):
                walk(getattr(v, f.name), f.name, f"{path}.{f.name}")
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, str(k), f"{path}.{k}")
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, name, f"{path}[{i}]")
        elif isinstance(v, (int, float)):
            if not math.isfinite(v):
                raise ConfigError(f"{where}: {path} must be a finite number, got {v}")
            if _NONNEG.match(name) and v < 0:
                raise ConfigError(f"{where}: {path} must be >= 0, got {v:g}")
            if _UNIT.match(name) and v > 1:
                raise ConfigError(f"{where}: {path} is a fraction and must be in [0, 1], got {v:g}")
    for f in dataclasses.fields(cfg):
        walk(getattr(cfg, f.name), f.name, f.name)


def require_at_least(cfg, names, minimum: int = 1) -> None:
    """ConfigError (exit 2) naming the first of `names` (integer fields of cfg) below `minimum`."""
    for name in names:
        value = getattr(cfg, name)
        if int(value) < minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {value}")


def closest(name: str, valid) -> str:
    """' (did you mean X?)' or ''."""
    m = difflib.get_close_matches(str(name), [str(v) for v in valid], n=3, cutoff=0.5)
    return f" (did you mean {', '.join(m)}?)" if m else ""


def _check_keys(cls, data: dict, where: str, prefix: str = "") -> None:
    """Recursively reject keys that are not fields of the dataclass `cls`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at '{prefix or '<root>'}', got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, val in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown config key '{path}'{closest(key, fields)}; "
                f"valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(fields))}"
            )
        sub = _dataclass_type(cls, key)
        if sub is not None and isinstance(val, dict):
            _check_keys(sub, val, where, f"{path}.")


def _dataclass_type(cls, name):
    hints = _hints(cls)
    t = hints.get(name)
    return t if dataclasses.is_dataclass(t) else None


def _hints(cls):
    import typing
    return typing.get_type_hints(cls)


def build_config(cls, layers: list[tuple[str, dict]]):
    """Merge `layers` ([(where, dict)]) onto the dataclass `cls`; strict on keys and types.

    Returns an instance of `cls` (a plain dataclass, so experiments use attribute access)."""
    cfg = OmegaConf.structured(cls)
    for where, data in layers:
        if not data:
            continue
        _check_keys(cls, data, where)
        try:
            cfg = OmegaConf.merge(cfg, data)
        except OmegaConfBaseException as e:
            key = getattr(e, "full_key", None) or "?"
            msg = str(e).splitlines()[0]
            raise ConfigError(f"{where}: wrong value for '{key}': {msg}") from None
    return OmegaConf.to_object(cfg)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------- table spec (configs/<pid>/<table>.yaml)

@dataclass
class MetricSpec:
    """One reported metric of a table."""

    higher_is_better: bool = True
    label: str = ""
    """Human-readable name for reports."""
    saturated: Optional[float] = None
    """The metric's ceiling: a claim whose compared rows are all past this level (>= for
    higher-is-better, <= otherwise; e.g. 0.99 for a test accuracy) is flagged `saturated`."""


@dataclass
class ClaimSpec:
    """A check `repro compare` prints a verdict for. See common/report/claims.py for the types."""

    id: str = ""
    type: str = ""
    """better | vs_best | comparable | within | bound | monotone | ratio | differs | close | tighter |
    gap_increases | in_interval | matches_reported"""
    text: str = ""
    """The paper's claim in words."""
    scale: str = "mini"
    metric: str = ""
    a: str = ""
    b: str = ""
    rows: list = field(default_factory=list)
    rows_b: list = field(default_factory=list)
    """tighter: the rows whose range `rows`' range is compared with."""
    pairs: list = field(default_factory=list)
    margin: float = 0.0
    value: float = 0.0
    tol: float = 0.0
    direction: str = "increasing"
    """monotone: increasing | decreasing; bound: above | below (row a's mean beyond `value`)."""
    lo: str = ""
    hi: str = ""
    """in_interval: the metrics holding the lower and upper ends of row a's interval (e.g. a fit's
    bootstrap 5% and 95%)."""


@dataclass
class ScaleSpec:
    seeds: list = field(default_factory=list)
    """Seeds at this scale (empty: the table's seeds)."""
    rows: list = field(default_factory=list)
    """Subset of rows run at this scale (empty: all)."""
    set: dict = field(default_factory=dict)
    """Config values for every row at this scale."""
    row_set: dict = field(default_factory=dict)
    """Per-row config values at this scale: {row: {key: value}}."""
    grid: Any = field(default_factory=dict)
    """Sweep rows at this scale, one per point of a Cartesian product (a list of mappings: the union
    of several products). Each axis is `{dotted.key: [values]}` (row name part `<last key><value>`)
    or `{axis: {name: {key: value, ...}}}` (named presets, row name part `<name>`). The rows join
    the table's rows and are this scale's rows; every point is a normal run (resumable with --resume)."""


@dataclass
class TuneSpec:
    """The shared tuning protocol for one row: run the row at every point of `grid`, choose the point
    with the best mean `select` (a validation metric) over seeds, and report that point's values (its
    test metrics) as the row. Rows a claim compares get grids of the same size (the same budget)."""

    grid: Any = field(default_factory=dict)
    """`{dotted.key: [values]}` (a Cartesian product, as in ScaleSpec.grid); point rows are named
    `<row>@<key><value>` and are normal runs."""
    select: str = ""
    """The metric the point is chosen on (e.g. val_acc): never a test metric."""
    maximize: Optional[bool] = None
    """Whether a larger `select` is better (default: the table metric's direction; a metric the table
    does not declare must say it, unless its name ends in 'acc')."""
    select_from: str = ""
    """Take the point another tuned row chose instead of choosing (e.g. a schedule-free run stopped
    early must use the learning rate chosen at the full budget, which it does not know)."""


@dataclass
class PlotSpec:
    kind: str = "bar"
    """bar: final metric per row; curve: a metrics.jsonl series per row (mean over seeds)."""
    metric: str = ""
    x: str = "step"
    logy: bool = False
    logx: bool = False
    """Curves: a log-scaled x axis (iterations spanning decades)."""
    also: list = field(default_factory=list)
    """Curves: more metrics.jsonl series drawn for every row beside `metric` (dashed, dotted)."""
    xlabel: str = ""
    """Axis labels; default: the x key and the metric's label."""
    ylabel: str = ""


@dataclass
class TableSpec:
    title: str = ""
    experiment: str = "run"
    """Function in papers/<pid>/experiment.py: run(cfg, ctx) -> dict[str, float]; or a shared task
    used as it is, `common.tasks.<task>:<function>` (with `config` named the same way)."""
    config: str = "Config"
    """Dataclass in papers/<pid>/experiment.py."""
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    base: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    claims: list = field(default_factory=list)
    scales: dict = field(default_factory=dict)
    plot: dict = field(default_factory=dict)
    notes: str = ""
    needs: list = field(default_factory=list)
    """Tables of the same paper that `repro run` runs first at the same scale (finished runs kept),
    e.g. the sweep a fit table reads."""
    tune: dict = field(default_factory=dict)
    """{row: TuneSpec}: rows tuned by the shared protocol (see TuneSpec)."""
    deterministic: bool = False
    """The rows' metrics do not depend on the seed (closed forms, fits to fixed data): claims are decided
    without a noise test, so one seed is enough. Otherwise a claim on one-seed rows is inconclusive."""
    rows_from: str = ""
    """"optimizers": add one row per optimizer in the registry, {optimizer: <name>} (rows given
    explicitly are kept and override). New optimizers then join the table with no edit."""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _set_dotted(d: dict, key: str, value) -> None:
    *head, last = key.split(".")
    for h in head:
        d = d.setdefault(h, {})
    d[last] = value


def expand_grid(grid, where: str) -> dict:
    """{row name: config values} for a `grid` (see ScaleSpec.grid). Every row gets its own copy of
    the presets' values, so a dotted axis (`optim.lr`) never writes into a dict another row shares."""
    import copy
    import itertools
    products = grid if isinstance(grid, list) else [grid]
    rows = {}
    for g in products:
        if not isinstance(g, dict) or not g:
            raise ConfigError(f"{where}: a grid is a non-empty mapping of axes (or a list of them)")
        axes = []
        for axis, vals in g.items():
            if isinstance(vals, dict) and vals and all(isinstance(v, dict) for v in vals.values()):
                axes.append([(str(name), dict(v)) for name, v in vals.items()])
            elif isinstance(vals, list) and vals:
                short = axis.split(".")[-1]
                axes.append([(f"{short}{_fmt(v)}", {axis: v}) for v in vals])
            else:
                raise ConfigError(f"{where}: grid axis '{axis}' must be a non-empty list of values "
                                  "or a mapping of named presets")
        for combo in itertools.product(*axes):
            values = {}
            for _, kv in combo:
                for k, v in kv.items():
                    _set_dotted(values, k, copy.deepcopy(v))
            rows["_".join(n for n, _ in combo)] = values
    return rows


def parse_table(raw: Any, where: str) -> TableSpec:
    """Validate a table YAML's structure (not the experiment keys: those are checked per run)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a table config must be a mapping")
    _check_keys(TableSpec, raw, where)
    spec = TableSpec(**raw)
    if spec.rows_from:
        if spec.rows_from != "optimizers":
            raise ConfigError(f"{where}: rows_from '{spec.rows_from}' unknown; valid: optimizers")
        from optrepro.optim import registry
        spec.rows = {**{name: {"optimizer": name} for name in registry()}, **(spec.rows or {})}
    for s_name, v in (spec.scales or {}).items():
        if isinstance(v, dict) and v.get("grid"):
            grid_rows = expand_grid(v["grid"], f"{where} scales.{s_name}.grid")
            for r, vals in grid_rows.items():
                if r in spec.rows and spec.rows[r] != vals:
                    raise ConfigError(f"{where}: grid row '{r}' conflicts with a row of the same name")
            spec.rows = {**(spec.rows or {}), **grid_rows}
            v["rows"] = list(dict.fromkeys(list(v.get("rows") or []) + list(grid_rows)))
    if not spec.rows:
        raise ConfigError(f"{where}: 'rows' is empty")
    for r, v in spec.rows.items():
        if v is not None and not isinstance(v, dict):
            raise ConfigError(f"{where}: rows.{r} must be a mapping of config values")
    spec.rows = {str(k): (v or {}) for k, v in spec.rows.items()}
    _expand_tuning(spec, where)
    for s in SCALES:
        if s not in spec.scales:
            raise ConfigError(f"{where}: missing scales.{s} (every table has smoke, mini and full)")
    scales = {}
    for s, v in spec.scales.items():
        if s not in SCALES:
            raise ConfigError(f"{where}: unknown scale '{s}'{closest(s, SCALES)}; valid: {', '.join(SCALES)}")
        _check_keys(ScaleSpec, v or {}, f"{where} scales.{s}")
        sc = ScaleSpec(**(v or {}))
        for r in list(sc.rows) + list(sc.row_set):
            if r not in spec.rows:
                raise ConfigError(f"{where}: scales.{s} names unknown row '{r}'{closest(r, spec.rows)}")
        scales[s] = sc
    spec.scales = scales
    metrics = {}
    for m, v in spec.metrics.items():
        _check_keys(MetricSpec, v or {}, f"{where} metrics.{m}")
        metrics[m] = MetricSpec(**(v or {}))
    if not metrics:
        raise ConfigError(f"{where}: 'metrics' is empty")
    spec.metrics = metrics
    claims = []
    for i, c in enumerate(spec.claims):
        _check_keys(ClaimSpec, c, f"{where} claims[{i}]")
        cl = ClaimSpec(**c)
        cl.id = cl.id or f"claim{i + 1}"
        claims.append(cl)
    spec.claims = claims
    if not isinstance(spec.needs, list):
        raise ConfigError(f"{where}: 'needs' must be a list of table names")
    _check_keys(PlotSpec, spec.plot, f"{where} plot")
    spec.plot = PlotSpec(**spec.plot)
    return spec


def _merge(a: dict, b: dict) -> dict:
    """a updated with b, recursively (a new dict; neither is modified)."""
    import copy
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _expand_tuning(spec: TableSpec, where: str) -> None:
    """Turn `tune` into TuneSpecs and add every grid point as a row `<row>@<point>`."""
    spec.tune_parent = {}
    tune = {}
    for r, t in (spec.tune or {}).items():
        if r not in spec.rows:
            raise ConfigError(f"{where}: tune names unknown row '{r}'{closest(r, spec.rows)}")
        _check_keys(TuneSpec, t or {}, f"{where} tune.{r}")
        ts = TuneSpec(**(t or {}))
        if not ts.grid or not ts.select:
            raise ConfigError(f"{where}: tune.{r} needs a grid and the metric to select on (select)")
        if ts.maximize is None and ts.select not in (spec.metrics or {}) and not ts.select.endswith("acc"):
            # the default for a metric the table does not declare is 'larger is better', which picks the
            # worst point of a loss: say the direction instead of guessing it
            raise ConfigError(f"{where}: tune.{r} selects on '{ts.select}', which is not a metric of the table: "
                              f"say which way is better (maximize: false for a loss, true for a score)")
        ts.points = {}
        for pname, vals in expand_grid(ts.grid, f"{where} tune.{r}.grid").items():
            name = f"{r}@{pname}"
            if name in spec.rows:
                raise ConfigError(f"{where}: tune point '{name}' conflicts with a row of the same name")
            spec.rows[name] = _merge(spec.rows[r], vals)
            ts.points[name] = pname
            spec.tune_parent[name] = r
        tune[r] = ts
    for r, ts in tune.items():
        if ts.select_from:
            src = tune.get(ts.select_from)
            if src is None or src.select_from:
                raise ConfigError(f"{where}: tune.{r}.select_from must name a tuned row that selects itself")
            if sorted(src.points.values()) != sorted(ts.points.values()):
                raise ConfigError(f"{where}: tune.{r} and tune.{ts.select_from} need the same grid points")
    spec.tune = tune


def run_rows(spec: TableSpec, scale: str, rows=None) -> list[str]:
    """The rows actually run at `scale` (or of `rows`): a tuned row stands for its grid points."""
    sc = spec.scales[scale]
    names = list(rows or sc.rows or [r for r in spec.rows if r not in getattr(spec, "tune_parent", {})])
    out = []
    for r in names:
        out += list(spec.tune[r].points) if r in spec.tune else [r]
    return list(dict.fromkeys(out))


def row_layers(spec: TableSpec, table_path: str, scale: str, row: str, overrides: dict) -> list[tuple[str, dict]]:
    sc = spec.scales[scale]
    parent = getattr(spec, "tune_parent", {}).get(row)
    return [
        (f"{table_path} base", spec.base),
        (f"{table_path} rows.{row}", spec.rows[row]),
        (f"{table_path} scales.{scale}.set", sc.set),
        (f"{table_path} scales.{scale}.row_set.{row}", sc.row_set.get(row, sc.row_set.get(parent, {}))),
        ("command line", overrides),
    ]
