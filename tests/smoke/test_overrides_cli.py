"""Overrides through the CLI: a run with overrides is stored, shown and reported as its own variant,
and `repro compare` writes the committed reports/ only for a table's reproduction."""
import json
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.smoke
P, T = "adabelief_2020", "toy2d"


def _reports_status():
    return subprocess.run(["git", "status", "--porcelain", "reports"], cwd=ROOT, capture_output=True,
                          text=True).stdout


def test_overrides_change_the_run_identity_and_compare_writes_under_out(cli, tmp_path):
    out = tmp_path / "runs"
    before = _reports_status()
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", "adam", "--out", out, "optim.lr=0.05")
    assert code == 0, o + e
    dirs = [d.name for d in (out / P / T / "smoke").iterdir()]
    assert len(dirs) == 1 and dirs[0].startswith("adam@"), dirs
    res = json.loads((out / P / T / "smoke" / dirs[0] / "seed0" / "result.json").read_text())
    assert res["overrides"] == {"optim.lr": 0.05} and res["variant"] == dirs[0][4:]
    assert "optim.lr=0.05" in o and dirs[0] in o
    # the plain run is another directory, with other numbers
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", "adam", "--out", out)
    assert code == 0
    plain = json.loads((out / P / T / "smoke" / "adam" / "seed0" / "result.json").read_text())
    assert "overrides" not in plain and plain["metrics"] != res["metrics"]
    # compare with the overrides reads the variant's runs and writes under --out, never reports/
    code, o, e = cli("compare", P, T, "--scale", "smoke", "--out", out, "optim.lr=0.05")
    assert code == 0, o + e
    doc = json.loads((out / "reports" / P / f"{T}.json").read_text())
    assert doc["overrides"] == {"optim.lr": 0.05}
    assert doc["rows"]["adam"]["per_seed"]["mean_log10_dist"]["0"] == res["metrics"]["mean_log10_dist"]
    md = (out / "reports" / P / f"{T}.md").read_text()
    assert "overrides: `optim.lr=0.05`" in md and "not reports/" in o
    # a smoke compare without overrides also stays out of reports/
    code, o, e = cli("compare", P, T, "--scale", "smoke", "--out", out)
    assert code == 0, o + e
    assert json.loads((out / "reports" / P / f"{T}.json").read_text())["rows"]["adam"]["per_seed"][
        "mean_log10_dist"]["0"] == plain["metrics"]["mean_log10_dist"]
    assert _reports_status() == before
    # overrides nobody ran: exit 2 naming them
    code, o, e = cli("compare", P, T, "--scale", "smoke", "--out", out, "optim.lr=0.07")
    assert code == 2 and "optim.lr=0.07" in e


def test_multirun_runs_each_value_as_its_own_variant(cli, tmp_path):
    out = tmp_path / "runs"
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", "sgdm", "--out", out, "-m", "optim.lr=0.01,0.02")
    assert code == 0, o + e
    dirs = sorted(d.name for d in (out / P / T / "smoke").iterdir())
    assert len(dirs) == 2 and all(d.startswith("sgdm@") for d in dirs)
    lrs = {json.loads((out / P / T / "smoke" / d / "seed0" / "result.json").read_text())["overrides"]["optim.lr"]
           for d in dirs}
    assert lrs == {0.01, 0.02}


@pytest.mark.parametrize("args,needle", [
    (("optim.lr=0.01,0.02",), "pass -m"),
    (("~optim.lr",), "removing a key is not supported"),
    (("+optim.lr",), "is not key=value"),
    (("seed=5",), "the seed comes from --seeds"),
    (("optim={name: lion, lrr: 1}",), "unknown config key 'optim.lrr'"),
])
def test_unsupported_override_syntax_exits_2(cli, tmp_path, args, needle):
    code, o, e = cli("run", P, T, "--scale", "smoke", "--out", tmp_path / "runs", *args)
    assert code == 2 and needle in e and "Traceback" not in e, e
    assert not (tmp_path / "runs").exists()


def test_a_mini_compare_does_not_replace_a_committed_full_report(tmp_path, monkeypatch):
    from optrepro.registry import get_paper
    from optrepro.report import compare as cmp
    monkeypatch.setattr(cmp, "ROOT", tmp_path)
    (tmp_path / "reports" / P).mkdir(parents=True)
    paper = get_paper(P)
    out = tmp_path / "runs"
    assert cmp.destination(paper, T, "mini", out, None) == (tmp_path / "reports", "")
    (tmp_path / "reports" / P / f"{T}.json").write_text(json.dumps({"scale": "full"}))
    where, why = cmp.destination(paper, T, "mini", out, None)
    assert where == out / "reports" and "full scale" in why
    assert cmp.destination(paper, T, "full", out, None) == (tmp_path / "reports", "")
    assert cmp.destination(paper, T, "mini", out, None, {"optim": {"lr": 1}})[0] == out / "reports"
    assert cmp.destination(paper, T, "smoke", out, tmp_path / "mine") == (tmp_path / "mine", "")


def test_run_without_a_table_says_which_table_it_runs_and_names_the_others(cli, tmp_path):
    code, out, err = cli("run", "lion_k_2023", "--scale", "smoke", "--rows", "lion_l1_lam1", "--out", tmp_path / "r")
    assert code == 0 and "no table named" not in err  # a one-table paper: nothing to say
    code, out, err = cli("run", "innaprop_2024", "--scale", "smoke", "--out", tmp_path / "r")
    assert code == 0 and "running innaprop_2024's first, digits (also: lm" in err, err
    assert (tmp_path / "r" / "innaprop_2024" / "digits" / "smoke").exists()
    assert not (tmp_path / "r" / "innaprop_2024" / "lm").exists()
