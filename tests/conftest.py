"""Shared fixtures. The suite runs on CPU with compilation off by default (the fused-vs-eager
reference test turns it on for itself), one torch thread per worker and no progress bars."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("REPRO_COMPILE", "0")
os.environ.setdefault("REPRO_PROGRESS", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
REPRO = Path(sys.executable).with_name("repro")


class StubCtx:
    """Just enough of a RunContext to call a task's run() in a test without files: log() calls are
    recorded, steps() counts 1..total, checkpoints are not written."""
    seed = 0
    no_checkpoint_reason = None

    def __init__(self):
        self.logged = []

    def log(self, step, **kw):
        self.logged.append((step, kw))

    def steps(self, total, state, **kw):
        return range(1, total + 1)

    def no_checkpoint(self, reason):
        self.no_checkpoint_reason = reason

    def progress(self, n):
        return None


@pytest.fixture
def cli(capsys):
    """Run `repro ARGS` in-process; returns (exit code, stdout, stderr)."""
    from optrepro.cli import main

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own usage errors
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def row_dir(row: str, *overrides: str) -> str:
    """The run-directory name of `row` run with these command-line overrides (`<row>@<hash>`)."""
    from optrepro.overrides import parse, variant
    return row + variant(parse([o for o in overrides if "=" in o])[0])


def repro_subprocess(*args, cwd=ROOT, env=None, **kw):
    """The real `repro` executable (a few tests only: the rest run in-process)."""
    e = dict(os.environ, **(env or {}))
    return subprocess.run([str(REPRO), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, **kw)


def paper_tables():
    from optrepro.registry import all_papers
    return [(pid, t) for pid, p in all_papers().items() for t in p.tables]
