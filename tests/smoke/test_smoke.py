"""Every table of every paper runs end to end at smoke scale through the CLI entry point
(in-process), writes finite metrics and renders its report."""
import json
import math

import pytest

from common.config import run_rows
from common.registry import all_papers
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
