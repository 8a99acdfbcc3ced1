"""`repro new`: copy papers/_template and configs/_template, filling in pid, title and family."""
from __future__ import annotations

import shutil
from pathlib import Path

from optrepro import ROOT
from optrepro.errors import UsageError
from optrepro.registry import FAMILIES, PID_RE, configs_dir, papers_dir

PLACEHOLDERS = ("__PID__", "__TITLE__", "__FAMILY__", "__YEAR__")


def new_paper(pid: str, family: str, title: str = "") -> list[Path]:
    from optrepro.config import closest
    if not PID_RE.match(pid):
        raise UsageError(f"pid '{pid}' must be <shortname>_<year> in snake_case, e.g. sophia_2023")
    if family not in FAMILIES:
        raise UsageError(f"unknown family '{family}'{closest(family, FAMILIES)}; valid: {', '.join(FAMILIES)}")
    dest, cdest = papers_dir() / pid, configs_dir() / pid
    if dest.exists() or cdest.exists():
        raise UsageError(f"papers/{pid} or configs/{pid} already exists")
    values = {"__PID__": pid, "__TITLE__": (title or pid).replace('"', "'"), "__FAMILY__": family,
              "__YEAR__": pid.rsplit("_", 1)[1]}
    created = []
    for src_root, dst_root in ((papers_dir() / "_template", dest), (configs_dir() / "_template", cdest)):
        shutil.copytree(src_root, dst_root, ignore=shutil.ignore_patterns("__pycache__"))
        for f in sorted(dst_root.rglob("*")):
            if f.is_file():
                text = f.read_text()
                for k, v in values.items():
                    text = text.replace(k, v)
                f.write_text(text)
                created.append(f.relative_to(ROOT))
    return created
