"""The torchrun launcher against the simulated workers: `repro run diloco_2023 lm --scale smoke
--launcher torchrun --nproc 2` (2 gloo processes, one worker each) gives the simulated run's numbers
bit for bit, its logs and communication counts included (and so do eager_diloco_2025's overlapped
rows and co2_2024's, noloco_2025's pairs, whose workers keep their own copies, and zeropp_2023's
sharded, quantized collectives); with 2 workers per process the sums are
added in another order, so the numbers agree to float rounding; a 2-process run killed halfway
resumes to the uninterrupted result; and what cannot run over processes exits 2 before starting."""
import json

import pytest

pytestmark = pytest.mark.smoke
P, T = "diloco_2023", "lm"
ROWS = "diloco@lr0.01,sync@lr0.01"


def _runs(out, rows=("diloco@lr0.01", "sync@lr0.01"), variant="", pid=P):
    got = {}
    for r in rows:
        d = out / pid / T / "smoke" / (r + variant) / "seed0"
        res = json.loads((d / "result.json").read_text())
        assert res["status"] == "ok", res
        got[r] = (res["metrics"], (d / "metrics.jsonl").read_text())
    return got


def test_torchrun_equals_simulated_bit_for_bit(cli, tmp_path):
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", ROWS, "--out", tmp_path / "sim")
    assert code == 0, o + e
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", ROWS, "--out", tmp_path / "tr",
                     "--launcher", "torchrun", "--nproc", "2")
    assert code == 0, o + e
    sim, tr = _runs(tmp_path / "sim"), _runs(tmp_path / "tr")
    assert sim == tr
    m = sim["diloco@lr0.01"][0]
    assert m["comm_rounds"] == 2 and sim["sync@lr0.01"][0]["comm_rounds"] == 6  # 6 steps, H = 3
    res = json.loads((tmp_path / "tr" / P / T / "smoke" / "diloco@lr0.01" / "seed0" / "result.json").read_text())
    assert res["meta"]["processes"] == 2


@pytest.mark.parametrize("pid,rows,rounds", [("eager_diloco_2025", ("eager@lr0.01", "delayed@lr0.01"), 2),
                                              ("noloco_2025", ("noloco@lr0.01",), 2),
                                              ("co2_2024", ("co2@lr0.01",), 2),
                                              ("zeropp_2023", ("zeropp", "zero3"), 18)])
def test_per_worker_copies_torchrun_equals_simulated(cli, tmp_path, pid, rows, rounds):
    """eager_diloco_2025 (2 workers, one per process) and noloco_2025 (4 workers in random pairs, two
    per process): each worker's own copy of the global model and outer state live in the process
    hosting it; the runs over 2 processes equal the simulated ones bit for bit (NoLoCo's group
    exchange sums the same numbers in the same order in both)."""
    for name, extra in (("sim", ()), ("tr", ("--launcher", "torchrun", "--nproc", "2"))):
        code, o, e = cli("run", pid, T, "--scale", "smoke", "--rows", ",".join(rows), "--out", tmp_path / name, *extra)
        assert code == 0, o + e
    sim, tr = _runs(tmp_path / "sim", rows, pid=pid), _runs(tmp_path / "tr", rows, pid=pid)
    assert sim == tr
    assert sim[rows[0]][0]["comm_rounds"] == rounds


def test_two_workers_per_process_agree_to_rounding(cli, tmp_path):
    args = ("run", P, T, "--scale", "smoke", "--rows", "diloco@lr0.01", "workers=4")
    code, o, e = cli(*args, "--out", tmp_path / "sim")
    assert code == 0, o + e
    code, o, e = cli(*args, "--out", tmp_path / "tr", "--launcher", "torchrun", "--nproc", "2")
    assert code == 0, o + e
    from tests.conftest import row_dir
    v = row_dir("", "workers=4")
    a = _runs(tmp_path / "sim", ["diloco@lr0.01"], v)["diloco@lr0.01"][0]
    b = _runs(tmp_path / "tr", ["diloco@lr0.01"], v)["diloco@lr0.01"][0]
    assert a.keys() == b.keys() and a["comm_mib"] == b["comm_mib"]
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5), k


def test_killed_torchrun_run_resumes_to_the_same_result(cli, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", "diloco@lr0.01", "--out", ref)
    assert code == 0, o + e
    out = tmp_path / "tr"
    monkeypatch.setenv("REPRO_FAULT", "kill-halfway")
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", "diloco@lr0.01", "--out", out,
                     "--launcher", "torchrun", "--nproc", "2")
    run_dir = out / P / T / "smoke" / "diloco@lr0.01" / "seed0"
    assert code != 0 and not (run_dir / "result.json").exists(), o + e
    assert (run_dir / "checkpoint" / "last.pt").exists()
    monkeypatch.delenv("REPRO_FAULT")
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", "diloco@lr0.01", "--out", out,
                     "--launcher", "torchrun", "--nproc", "2", "--resume")
    assert code == 0, o + e
    res = json.loads((run_dir / "result.json").read_text())
    assert res["resumed"] is True
    assert _runs(out, ["diloco@lr0.01"]) == _runs(ref, ["diloco@lr0.01"])


def test_sigterm_stops_every_rank_at_one_step_and_resumes(cli, tmp_path, monkeypatch):
    """Each rank signals itself halfway (REPRO_FAULT=sigterm-halfway): the ranks agree, checkpoint the
    same step, the sweep stops as interrupted (exit 130) and --resume finishes to the plain result."""
    ref = tmp_path / "ref"
    code, o, e = cli("run", P, T, "--scale", "smoke", "--rows", "sync@lr0.01", "--out", ref)
    assert code == 0, o + e
    out = tmp_path / "tr"
    args = ("run", P, T, "--scale", "smoke", "--rows", "sync@lr0.01", "--out", out, "--launcher", "torchrun",
            "--nproc", "2")
    monkeypatch.setenv("REPRO_FAULT", "sigterm-halfway")
    code, o, e = cli(*args)
    assert code == 130 and "interrupted" in e, o + e
    res = json.loads((out / P / T / "smoke" / "sync@lr0.01" / "seed0" / "result.json").read_text())
    assert res["status"] == "interrupted" and res["step"] == 3
    monkeypatch.delenv("REPRO_FAULT")
    code, o, e = cli(*args, "--resume")
    assert code == 0, o + e
    assert _runs(out, ["sync@lr0.01"]) == _runs(ref, ["sync@lr0.01"])


@pytest.mark.parametrize("args, msg", [
    (("diloco_2023", "lm", "--nproc", "2"), "--nproc only applies with --launcher torchrun"),
    (("adabelief_2020", "toy2d", "--launcher", "torchrun"), "does not run over several processes"),
    (("diloco_2023", "lm", "--launcher", "torchrun", "--nproc", "2", "workers=3"), "workers=3 cannot be split"),
    (("diloco_2023", "lm", "--launcher", "torchrun", "--jobs", "2"), "--jobs does not combine"),
    (("diloco_2023", "lm", "--launcher", "torchrun", "--nproc", "0"), "--nproc must be >= 1"),
])
def test_what_cannot_run_over_processes_exits_2(cli, tmp_path, args, msg):
    code, o, e = cli("run", *args, "--scale", "smoke", "--out", tmp_path)
    assert code == 2 and msg in e, e
    assert not any(tmp_path.rglob("result.json"))
