"""Every table of every paper runs end to end at smoke scale through the CLI entry point
(in-process), writes finite metrics and renders its report; and its first smoke row, killed halfway
through its first resumable loop (after the checkpoint there), resumes to the uninterrupted result."""
import json
import math
import re

import pytest

from optrepro import checkpoint
from optrepro.config import run_rows
from optrepro.registry import all_papers
from tests.conftest import paper_tables

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize("pid,table", paper_tables())
def test_table_runs_at_smoke_scale(pid, table, cli, tmp_path):
    code, out, err = cli("run", pid, table, "--scale", "smoke", "--out", tmp_path / "runs")
    assert code == 0, out + err
    results = list((tmp_path / "runs" / pid / table / "smoke").glob("*/seed*/result.json"))
    spec = all_papers()[pid].load_table(table)
    assert len(results) == len(run_rows(spec, "smoke")) * len(spec.scales["smoke"].seeds or spec.seeds)
    for r in results:
        res = json.loads(r.read_text())
        assert res["status"] == "ok", res
        assert set(spec.metrics) <= set(res["metrics"])
        assert all(math.isfinite(v) for v in res["metrics"].values())
        assert res["meta"]["git_sha"] and res["meta"]["packages"]["torch"]
        assert (r.parent / "config.yaml").exists() and (r.parent / "metrics.jsonl").stat().st_size > 0
    code, out, err = cli("compare", pid, table, "--scale", "smoke", "--out", tmp_path / "runs",
                         "--reports", tmp_path / "rep")
    assert code == 0, err
    for ext in ("md", "json", "png"):
        assert (tmp_path / "rep" / pid / f"{table}.{ext}").stat().st_size > 0
    assert "## Results" in (tmp_path / "rep" / pid / f"{table}.md").read_text()

    _killed_run_resumes_to_the_same_result(pid, table, spec, cli, tmp_path)


TIMING = re.compile(r"(per_sec|_ms$|_s$|time|seconds|fwd_ratio)")
"""Metrics measured by the clock (and ratios of them): the only ones allowed to differ after a resume."""


def _killed_run_resumes_to_the_same_result(pid, table, spec, cli, tmp_path):
    row, seed = run_rows(spec, "smoke")[0], (spec.scales["smoke"].seeds or spec.seeds)[0]
    args = ["run", pid, table, "--scale", "smoke", "--rows", row, "--seeds", seed, "--out", tmp_path / "killed"]
    checkpoint.reset_fault()
    import os
    os.environ["REPRO_FAULT"] = "kill-halfway"
    try:
        cli(*args)
        killed = False
    except checkpoint.SimulatedKill:
        killed = True
    finally:
        del os.environ["REPRO_FAULT"]
    run_dir = f"{pid}/{table}/smoke/{row}/seed{seed}"
    res = json.loads((tmp_path / "runs" / run_dir / "result.json").read_text())
    if not killed:  # no resumable loop: only a run that says why may do without one
        assert res.get("no_checkpoint"), f"{run_dir} ran no resumable loop (ctx.steps) and gave no reason " \
                                         "(ctx.no_checkpoint)"
        return
    assert res.get("checkpointed") or spec.needs, res
    code, out, err = cli(*args, "--resume")
    assert code == 0, out + err
    again = json.loads((tmp_path / "killed" / run_dir / "result.json").read_text())
    assert again["status"] == "ok", again
    strip = lambda m: {k: v for k, v in m.items() if not TIMING.search(k)}
    assert strip(again["metrics"]) == strip(res["metrics"])
