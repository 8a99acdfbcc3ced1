"""Sweep tables: grid rows, resuming point by point only when a point's config is unchanged,
fit tables that need their sweep, and the messages when a sweep is missing."""
import json

import pytest

from optrepro.config import expand_grid, parse_table
from optrepro.errors import ConfigError, DataMissing
from optrepro.scaling import load_sweep

pytestmark = pytest.mark.unit

BASE = {"rows": {}, "metrics": {"val_loss": {}}, "scales": {"smoke": {}, "mini": {}, "full": {}}}


def test_grid_rows_are_the_product_of_axes_with_named_presets():
    rows = expand_grid({"model": {"s": {"d_model": 8}, "m": {"d_model": 16}}, "optim.lr": [0.1, 0.01]}, "t")
    assert list(rows) == ["s_lr0.1", "s_lr0.01", "m_lr0.1", "m_lr0.01"]
    assert rows["m_lr0.01"] == {"d_model": 16, "optim": {"lr": 0.01}}
    union = expand_grid([{"a": [1, 2]}, {"a": [3]}], "t")
    assert list(union) == ["a1", "a2", "a3"]


def test_a_dotted_axis_never_writes_into_a_preset_other_rows_share():
    """A preset that sets a nested mapping (optim: {name}) and a dotted axis into the same mapping
    (optim.lr): each row keeps its own lr (a shared dict once gave every row the last lr)."""
    rows = expand_grid({"opt": {"adam": {"optim": {"name": "adam"}}}, "optim.lr": [0.1, 0.01, 0.001]}, "t")
    assert [r["optim"]["lr"] for r in rows.values()] == [0.1, 0.01, 0.001]
    assert all(r["optim"]["name"] == "adam" for r in rows.values())


def test_grid_at_a_scale_becomes_that_scales_rows():
    spec = parse_table({**BASE, "scales": {"smoke": {"grid": {"optim.lr": [1, 2]}}, "mini": {}, "full": {}}}, "t.yaml")
    assert spec.scales["smoke"].rows == ["lr1", "lr2"] and set(spec.rows) == {"lr1", "lr2"}


@pytest.mark.parametrize("grid", [{"optim.lr": []}, {"optim.lr": 3}, {}])
def test_bad_grid_is_a_config_error(grid):
    with pytest.raises(ConfigError, match="grid"):
        parse_table({**BASE, "rows": {"x": {}}, "scales": {"smoke": {"grid": grid or [1]}, "mini": {}, "full": {}}},
                    "t.yaml")


def test_resume_skips_finished_points_and_reruns_changed_ones(cli, tmp_path):
    args = ("run", "steplaw_2025", "sweep", "--scale", "smoke", "--out", tmp_path, "--rows",
            "t8_tokens8192_lr0.003_batch_size4,t8_tokens8192_lr0.01_batch_size4")
    assert cli(*args)[0] == 0
    res = sorted(tmp_path.glob("steplaw_2025/sweep/smoke/*/seed0/result.json"))
    first = [json.loads(p.read_text())["meta"]["finished"] + str(p.stat().st_mtime_ns) for p in res]
    assert cli(*args, "--resume")[0] == 0  # nothing changed: both reused
    assert [json.loads(p.read_text())["meta"]["finished"] + str(p.stat().st_mtime_ns) for p in res] == first
    # overrides make other runs (<row>@<hash>/): the plain ones stay as they are
    assert cli(*args, "--resume", "eval_batches=3")[0] == 0
    assert len(list(tmp_path.glob("steplaw_2025/sweep/smoke/*@*/seed0/result.json"))) == 2
    assert [json.loads(p.read_text())["meta"]["finished"] + str(p.stat().st_mtime_ns) for p in res] == first
    # a run whose stored config differs from today's (the table's yaml changed since): rerun
    for p in res:
        cfg = p.with_name("config.yaml")
        cfg.write_text(cfg.read_text().replace("eval_batches:", "eval_batches: 99\nold_eval_batches:", 1))
    assert cli(*args, "--resume")[0] == 0
    after = [json.loads(p.read_text())["meta"]["finished"] + str(p.stat().st_mtime_ns) for p in res]
    assert all(a != b for a, b in zip(after, first))


def test_missing_sweep_says_which_command_to_run(tmp_path):
    with pytest.raises(DataMissing, match="repro run porian_2024 sweep --scale mini"):
        load_sweep(tmp_path, "porian_2024", "sweep", "mini", min_points=3)


def test_fit_table_runs_its_sweep_first(cli, tmp_path):
    code, out, err = cli("run", "porian_2024", "sweep_fit", "--scale", "smoke", "--out", tmp_path)
    assert code == 0, out + err
    assert "needs sweep" in out
    assert len(list(tmp_path.glob("porian_2024/sweep/smoke/*/seed0/result.json"))) == 3
    r = json.loads((tmp_path / "porian_2024/sweep_fit/smoke/tuned/seed0/result.json").read_text())
    assert r["status"] == "ok" and r["metrics"]["sweep_points"] == 3
