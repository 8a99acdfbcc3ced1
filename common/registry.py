"""Paper discovery: every papers/<pid>/ with a paper.yaml is a paper; its tables are
configs/<pid>/<table>.yaml in the order paper.yaml lists them."""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from optrepro import ROOT
from optrepro.config import TableSpec, closest, parse_table
from optrepro.errors import ConfigError, UsageError

FAMILIES = (
    "optimizer", "second-order", "zeroth-order", "bilevel", "meta-learning", "policy-gradient",
    "diffusion-guidance", "unlearning", "scaling-law", "distributed", "other",
)
EXTRAS = {"gymnasium": "rl", "stable_baselines3": "rl", "sb3_contrib": "rl", "mujoco": "rl",
          "transformers": "lm", "safetensors": "lm", "diffusers": "diffusion", "wandb": "tracking",
          "submitit": "slurm"}
"""Top-level modules of the optional extras (pyproject.toml): a table that needs a missing one exits 2
naming the extra to install."""
PID_RE = re.compile(r"^[a-z][a-z0-9_]*_(19|20)\d\d$")
PAPER_KEYS = {
    "title": str, "arxiv": str, "venue": str, "year": int, "family": str, "code": str,
    "reproduces": str, "tables": dict, "deviations": list, "optimizers": dict,
    "second_order": dict,  # {name: "papers.<pid>.method:Class"}: optimizers outside the registry (`repro bench second-order`)
}
REQUIRED_KEYS = ("title", "arxiv", "venue", "year", "family", "code", "reproduces", "tables")


def papers_dir() -> Path:
    return ROOT / "papers"


def configs_dir() -> Path:
    return ROOT / "configs"


@dataclass
class Paper:
    pid: str
    dir: Path
    meta: dict = field(repr=False)

    @property
    def title(self) -> str:
        return self.meta.get("title", "")

    @property
    def family(self) -> str:
        return self.meta.get("family", "")

    @property
    def tables(self) -> list[str]:
        return list((self.meta.get("tables") or {}).keys())

    def caption(self, table: str) -> str:
        return (self.meta.get("tables") or {}).get(table, "")

    def table_path(self, table: str) -> Path:
        return configs_dir() / self.pid / f"{table}.yaml"

    def resolve_table(self, table: str | None) -> str:
        if table is None:
            if not self.tables:
                raise UsageError(f"{self.pid} lists no tables in paper.yaml")
            return self.tables[0]
        if table not in self.tables:
            raise UsageError(
                f"unknown table '{table}' for {self.pid}{closest(table, self.tables)}; "
                f"tables: {', '.join(self.tables)}")
        return table

    def load_table(self, table: str) -> TableSpec:
        path = self.table_path(table)
        if not path.exists():
            raise ConfigError(f"{self.pid}: paper.yaml lists table '{table}' but {path.relative_to(ROOT)} is missing")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path.relative_to(ROOT)}: not valid YAML: {str(e).splitlines()[0]}") from None
        return parse_table(raw, str(path.relative_to(ROOT)))

    @cached_property
    def experiment(self):
        try:
            return importlib.import_module(f"optrepro.papers.{self.pid}.experiment")
        except ModuleNotFoundError as e:
            extra = EXTRAS.get((e.name or "").split(".")[0])
            if extra is None:
                raise
            raise UsageError(f"{self.pid} needs {e.name}, which is not installed: "
                             f"pip install 'optrepro[{extra}]' (or optrepro[all])") from None

    def _resolve(self, name: str, what: str):
        """`name` in papers/<pid>/experiment.py, or `common.tasks.<task>:<name>` for a shared task
        used as it is (e.g. a sweep of plain charlm runs)."""
        if ":" in name:
            mod, attr = name.split(":", 1)
            if not mod.startswith("common.tasks."):
                raise ConfigError(f"{self.pid}: {what} '{name}': only common.tasks.<task>:<name> may be named")
            from optrepro import module_name
            try:
                obj = getattr(importlib.import_module(module_name(mod)), attr, None)
            except ImportError:
                obj = None
            if obj is None:
                raise ConfigError(f"{self.pid}: {what} '{name}' does not exist")
            return obj
        obj = getattr(self.experiment, name, None)
        if obj is None:
            raise ConfigError(f"papers/{self.pid}/experiment.py has no {what} '{name}'")
        return obj

    def config_class(self, spec: TableSpec):
        return self._resolve(spec.config, "config class")

    def run_fn(self, spec: TableSpec):
        return self._resolve(spec.experiment, "function")

    def preflight_fn(self, spec: TableSpec):
        """The checks run before a table's runs: common.tasks.preflight for a shared task's config,
        else the paper's `preflight` (if any)."""
        if ":" in spec.config:
            from optrepro.tasks import preflight
            return preflight
        return getattr(self.experiment, "preflight", None)


def _load_meta(path: Path) -> dict:
    try:
        meta = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: must be a mapping")
    return meta


def all_papers() -> dict[str, Paper]:
    out = {}
    for d in sorted(papers_dir().iterdir()):
        if d.name.startswith(("_", ".")) or not (d / "paper.yaml").exists():
            continue
        out[d.name] = Paper(d.name, d, _load_meta(d / "paper.yaml"))
    return out


def get_paper(pid: str) -> Paper:
    papers = all_papers()
    if pid not in papers:
        raise UsageError(f"unknown paper '{pid}'{closest(pid, papers)}; `repro list` shows all {len(papers)}")
    return papers[pid]


def validate_meta(meta: dict) -> list[str]:
    """Contract problems in a paper.yaml (empty list: fine)."""
    errs = []
    for k in REQUIRED_KEYS:
        if k not in meta or meta[k] in (None, ""):
            errs.append(f"paper.yaml: missing '{k}'")
    for k, v in meta.items():
        if k not in PAPER_KEYS:
            errs.append(f"paper.yaml: unknown key '{k}'{closest(k, PAPER_KEYS)}")
        elif v is not None and not isinstance(v, PAPER_KEYS[k]):
            errs.append(f"paper.yaml: '{k}' should be {PAPER_KEYS[k].__name__}")
    if meta.get("family") and meta["family"] not in FAMILIES:
        errs.append(f"paper.yaml: family '{meta['family']}' not in {', '.join(FAMILIES)}")
    return errs
