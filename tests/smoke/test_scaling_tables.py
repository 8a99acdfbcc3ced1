"""Fit tables of the scaling papers that read another table's runs: they use the numbers the sweep's
report shows (its tuning protocol), and bad settings exit 2 before anything runs."""
import json

import pytest

from optrepro.scaling import tuned_results

pytestmark = pytest.mark.smoke

P = "diloco_scaling_2025"


def test_tuned_results_are_the_numbers_the_sweep_report_shows(cli, tmp_path):
    code, out, err = cli("run", P, "sweep", "--scale", "smoke", "--out", tmp_path / "runs", "--rows", "dp_s,m2_s")
    assert code == 0, out + err
    code, out, err = cli("compare", P, "sweep", "--scale", "smoke", "--out", tmp_path / "runs", "--reports", tmp_path / "rep")
    assert code == 0, err
    doc = json.loads((tmp_path / "rep" / P / "sweep.json").read_text())
    got = tuned_results(tmp_path / "runs", P, "sweep", "smoke", rows=["dp_s", "m2_s"])
    for row in ("dp_s", "m2_s"):
        assert got[row]["val_loss"] == doc["rows"][row]["per_seed"]["val_loss"]
        chosen = doc["rows"][row]["tuned"]["chosen"]
        assert got[row]["val_loss"] == doc["rows"][f"{row}@{chosen}"]["per_seed"]["val_loss"]


def test_a_fit_before_its_sweep_finished_names_the_command(tmp_path):
    from optrepro.errors import DataMissing
    with pytest.raises(DataMissing, match=f"repro run {P} sweep --scale smoke"):
        tuned_results(tmp_path / "runs", P, "sweep", "smoke")


@pytest.mark.parametrize("override,needle", [
    ("sizes=[dp_s,dp_m]", "at least 3 model sizes"),
    ("baseline=[dp_s]", "give data-parallel's row at every size"),
])
def test_bad_law_settings_exit_2(cli, tmp_path, override, needle):
    code, out, err = cli("run", P, "laws", "--scale", "smoke", "--rows", "dp", "--out", tmp_path / "runs", override)
    assert code == 2 and needle in err and "Traceback" not in err


def test_tuned_results_refuses_unknown_rows(tmp_path):
    from optrepro.errors import ConfigError
    with pytest.raises(ConfigError, match="no row"):
        tuned_results(tmp_path / "runs", P, "sweep", "smoke", rows=["dp_xl"])
