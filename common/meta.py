"""Provenance recorded beside every result: git sha, package versions, hardware."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata

from optrepro import ROOT

PACKAGES = ("torch", "numpy", "omegaconf", "transformers", "gymnasium", "stable-baselines3", "scikit-learn", "mnist1d")


def generated(path: str) -> bool:
    """Files `repro compare` / `repro report` write (reports/, the paper READMEs' results blocks): a
    change there does not make the code a run used uncommitted."""
    return path.startswith("reports/") or (path.startswith("papers/") and path.endswith("/README.md"))


def dirty_paths() -> list[str] | None:
    """Tracked files with uncommitted changes, leaving out generated output; None when git cannot tell
    (or this is an installed copy, not a checkout)."""
    from optrepro import IS_CHECKOUT
    if not IS_CHECKOUT:
        return None
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [p for p in (line[3:] for line in out.stdout.splitlines() if line.strip()) if not generated(p)]


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """The checkout's commit (+ '-dirty'); an installed copy records its version instead (never the
    commit of a git repository it happens to be installed inside)."""
    from optrepro import IS_CHECKOUT
    if not IS_CHECKOUT:
        try:
            return f"installed-optrepro-{metadata.version('optrepro')}"
        except metadata.PackageNotFoundError:
            return "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = dirty_paths()
    return (sha + ("-dirty" if dirty or dirty is None else "")) if sha else "unknown"


@functools.lru_cache(maxsize=1)
def packages() -> dict:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


@functools.lru_cache(maxsize=1)
def hardware() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    if torch.cuda.is_available():
        desc += f", {torch.cuda.get_device_name(0)}"
    return desc


def collect() -> dict:
    return {"git_sha": git_sha(), "packages": packages(), "hardware": hardware()}
