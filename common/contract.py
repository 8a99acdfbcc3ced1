"""`repro check`: every paper against the contract (files, metadata, configs at every scale,
claims, reported.csv, import rules)."""
from __future__ import annotations

import re

from optrepro import ROOT
from optrepro.config import SCALES, build_config, row_layers, run_rows
from optrepro.errors import ConfigError, UsageError
from optrepro.registry import PID_RE, Paper, all_papers, configs_dir, validate_meta
from optrepro.report import claims as claims_mod
from optrepro.report.reported import load as load_reported

REQUIRED_FILES = ("__init__.py", "paper.yaml", "reported.csv", "method.py", "experiment.py", "README.md")
IMPORT_RE = re.compile(r"^\s*(?:from|import)\s+(?:optrepro\.)?papers\.([a-z0-9_]+)", re.M)


def check_paper(paper: Paper) -> list[str]:
    errs = []
    if not PID_RE.match(paper.pid):
        errs.append("pid must be <shortname>_<year> in snake_case")
    for f in REQUIRED_FILES:
        if not (paper.dir / f).exists():
            errs.append(f"missing papers/{paper.pid}/{f}")
    errs += validate_meta(paper.meta)
    for py in paper.dir.rglob("*.py"):
        for other in IMPORT_RE.findall(py.read_text()):
            if other != paper.pid:
                errs.append(f"{py.relative_to(ROOT)} imports papers.{other}: a paper never imports another "
                            "paper; move the shared piece into common/")
    for extra in sorted((configs_dir() / paper.pid).glob("*.yaml")) if (configs_dir() / paper.pid).exists() else []:
        if extra.stem not in paper.tables:
            errs.append(f"configs/{paper.pid}/{extra.name} is not listed under tables in paper.yaml")
    reported = []
    if (paper.dir / "reported.csv").exists():
        try:
            reported = load_reported(paper.dir / "reported.csv")
        except ValueError as e:
            errs.append(f"reported.csv: {e}")
    specs = {}
    for t in paper.tables:
        try:
            spec = paper.load_table(t)
        except (ConfigError, UsageError) as e:
            errs.append(str(e))
            continue
        specs[t] = spec
        try:
            cls = paper.config_class(spec)
            paper.run_fn(spec)
        except Exception as e:  # import errors included
            errs.append(f"{t}: experiment: {type(e).__name__}: {e}")
            continue
        where = f"configs/{paper.pid}/{t}.yaml"
        for scale in SCALES:
            for row in run_rows(spec, scale):
                try:
                    build_config(cls, row_layers(spec, where, scale, row, {}))
                except ConfigError as e:
                    errs.append(str(e))
        errs += [f"{t}: {e}" for e in claims_mod.validate(spec)]
    for t, spec in specs.items():
        needed_by = [u for u, us in specs.items() if t in us.needs]
        if not any(c.scale == "mini" for c in spec.claims) and not needed_by:
            errs.append(f"{t}: no claim at mini scale (the paper's qualitative claim on the small task; "
                        "a sweep that another table `needs` is exempt: the claims are on the fit)")
        for n in spec.needs:
            if n not in paper.tables:
                errs.append(f"{t}: needs '{n}', which is not a table of {paper.pid}")
    for r in reported:
        src = r.source.lower()
        if r.kind == "reported" and ("github.com" in src or "released" in src or "readme" in src):
            errs.append(f"reported.csv: {r.table}/{r.row}/{r.metric} comes from released data or a repository "
                        f"('{r.source[:60]}'): its kind is third_party, not reported")
        if r.table not in specs:
            if r.table not in paper.tables:
                errs.append(f"reported.csv: table '{r.table}' is not in paper.yaml")
            continue
        if r.row not in specs[r.table].rows:
            errs.append(f"reported.csv: row '{r.row}' is not a row of {r.table}")
        if r.metric not in specs[r.table].metrics:
            errs.append(f"reported.csv: metric '{r.metric}' is not a metric of {r.table}")
    return errs


def check_common() -> list[str]:
    from optrepro.optim import problems as optimizer_problems
    errs = optimizer_problems()
    for py in (ROOT / "common").rglob("*.py"):
        if re.search(r"^\s*(from|import)\s+(optrepro\.)?papers\b", py.read_text(), re.M):
            errs.append(f"{py.relative_to(ROOT)} imports papers: common never imports papers")
    return errs


def check_all() -> dict[str, list[str]]:
    out = {}
    c = check_common()
    if c:
        out["common"] = c
    for pid, paper in all_papers().items():
        e = check_paper(paper)
        if e:
            out[pid] = e
    return out
