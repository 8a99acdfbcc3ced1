"""Checkpoints that can be trusted, and bad input refused before anything runs (issue 32).

The registry-wide kill/resume check is in test_smoke.py (every table's first smoke row); these are the
faults around it: unusable checkpoints, signals in loops other than the classifier's, preflight of
hyper-parameters and flags, file modes and durability."""
import json
import os

import pytest

from optrepro import checkpoint
from tests.conftest import row_dir

pytestmark = pytest.mark.smoke
P, T, ROW = "adabelief_2020", "cifar10", "adam_mnist1d"
ARGS = ("run", P, T, "--scale", "smoke", "--rows", ROW, "train.steps=40", "ckpt_every=5")


def _run_dir(out, seed=0):
    return out / P / T / "smoke" / row_dir(ROW, *ARGS) / f"seed{seed}"


def _metrics(out, seed=0):
    res = json.loads((_run_dir(out, seed) / "result.json").read_text())
    assert res["status"] == "ok", res
    return res["metrics"]


def _killed(cli, out, *extra, monkeypatch):
    checkpoint.reset_fault()
    monkeypatch.setenv("REPRO_FAULT", "kill-halfway")
    with pytest.raises(checkpoint.SimulatedKill):
        cli(*ARGS, "--out", out, *extra)
    monkeypatch.delenv("REPRO_FAULT")


@pytest.mark.parametrize("damage", ["half", "empty", "garbage"])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_over(cli, tmp_path, monkeypatch, damage):
    assert cli(*ARGS, "--out", tmp_path / "ref")[0] == 0
    out = tmp_path / "k"
    _killed(cli, out, monkeypatch=monkeypatch)
    ck = _run_dir(out) / "checkpoint" / "last.pt"
    raw = ck.read_bytes()
    ck.write_bytes({"half": raw[: len(raw) // 2], "empty": b"", "garbage": raw[:200] + b"x" * 50 + raw[250:]}[damage])
    code, _, err = cli(*ARGS, "--out", out, "--resume")
    assert code == 0, err
    assert f"checkpoint {ck}" in err and "set aside as last.pt.bad-" in err and "starting over" in err
    assert len(list(ck.parent.glob("last.pt.bad-*"))) == 1  # kept for inspection, not deleted
    res = json.loads((_run_dir(out) / "result.json").read_text())
    assert res["resumed"] is False and _metrics(out) == _metrics(tmp_path / "ref")
    assert (_run_dir(out) / "metrics.jsonl").read_text() == (_run_dir(tmp_path / "ref") / "metrics.jsonl").read_text()


def test_another_seeds_checkpoint_is_refused(cli, tmp_path, monkeypatch):
    assert cli(*ARGS, "--out", tmp_path / "ref", "--seeds", "0")[0] == 0
    out = tmp_path / "k"
    _killed(cli, out, "--seeds", "0", monkeypatch=monkeypatch)
    _killed(cli, out, "--seeds", "1", monkeypatch=monkeypatch)
    mine = _run_dir(out, 0) / "checkpoint" / "last.pt"
    mine.write_bytes((_run_dir(out, 1) / "checkpoint" / "last.pt").read_bytes())
    code, _, err = cli(*ARGS, "--out", out, "--seeds", "0", "--resume")
    assert code == 0, err
    assert "belongs to another run" in err and "seed1" in err
    assert _metrics(out, 0) == _metrics(tmp_path / "ref", 0)  # not seed 1's weights continued as seed 0


def test_checkpoint_identity_and_checksum(tmp_path):
    path, ident = tmp_path / "c.pt", {"run": "p/t/smoke/r/seed0", "config": "abc", "loop": "last"}
    checkpoint.write(path, ident, 3, {"x": [1, 2]})
    assert checkpoint.read(path, ident) == (3, {"x": [1, 2]})
    assert checkpoint.read(path, dict(ident, config="abd")) is None and not path.exists()


def test_sigterm_in_an_rl_loop_checkpoints_and_resume_matches(cli, tmp_path, monkeypatch):
    """SIGTERM used to be ignored by the on-policy loop (it ran to the end, rc 0, no checkpoint). The
    signal is real, sent by the process to itself halfway through the loop (REPRO_FAULT)."""
    args = ("run", "trpo_2015", "learning_curves", "--scale", "smoke", "--rows", "trpo_cartpole",
            "total_steps=12800", "n_steps=256", "eval_every=2560")
    assert cli(*args, "--out", tmp_path / "ref")[0] == 0
    run_dir = tmp_path / "t" / "trpo_2015" / "learning_curves" / "smoke" / row_dir("trpo_cartpole", *args) / "seed0"
    checkpoint.reset_fault()
    monkeypatch.setenv("REPRO_FAULT", "sigterm-halfway")
    code, _, err = cli(*args, "--out", tmp_path / "t")
    monkeypatch.delenv("REPRO_FAULT")
    assert code == 130 and "--resume" in err, err
    res = json.loads((run_dir / "result.json").read_text())
    assert res["status"] == "interrupted" and (run_dir / "checkpoint" / "last.pt").exists()
    step = checkpoint.load_file(run_dir / "checkpoint" / "last.pt")["step"]
    assert step == 25  # the iteration the signal arrived in, of 50
    assert cli(*args, "--out", tmp_path / "t", "--resume")[0] == 0
    ref = json.loads((tmp_path / "ref" / run_dir.relative_to(tmp_path / "t") / "result.json").read_text())["metrics"]
    again = json.loads((run_dir / "result.json").read_text())["metrics"]
    assert {k: v for k, v in again.items() if k != "steps_per_sec"} == \
           {k: v for k, v in ref.items() if k != "steps_per_sec"}


@pytest.mark.parametrize("args,needle", [
    (("--rows", ""), "--rows takes names separated by commas"),
    (("--rows", ","), "--rows takes names separated by commas"),
    (("--rows", "adam_mnist1d,"), "--rows takes names separated by commas"),
    (("--seeds", "-1"), "--seeds must be >= 0"),
    (("--seeds", "0,0"), "names something twice"),
    (("optim.lr=-0.1",), "optim.lr must be >= 0"),
    (("optim.lr=nan",), "optim.lr must be a finite number"),
    (("val_frac=1.5",), "val_frac is a fraction and must be in [0, 1]"),
])
def test_bad_flags_and_numbers_exit_2_and_write_nothing(cli, tmp_path, args, needle):
    code, out, err = cli("run", P, T, "--scale", "smoke", "--out", tmp_path / "runs", *args)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("pid,table,override,needle", [
    ("trpo_2015", "learning_curves", "vf_lr=-0.001", "vf_lr must be >= 0"),
    ("trpo_2015", "learning_curves", "pg_lr=nan", "pg_lr must be a finite number"),
    ("f2sa_2023", "hyperclean", "grid={outer_lr: [10.0, -1.0]}", "grid.outer_lr[1] must be >= 0"),
    ("npo_2024", "tofu_forget", "lm.pretrain_lr=-1", "lm.pretrain_lr must be >= 0"),
])
def test_every_family_refuses_bad_numbers_up_front(cli, tmp_path, pid, table, override, needle):
    code, out, err = cli("run", pid, table, "--scale", "smoke", "--out", tmp_path / "runs", override)
    assert code == 2 and needle in err, err
    assert not (tmp_path / "runs").exists()


def test_out_that_is_a_file_or_not_writable_exits_2(cli, tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("")
    for out, needle in ((f, "is a file"), (f / "sub", "is a file")):
        code, _, err = cli("run", P, T, "--scale", "smoke", "--out", out)
        assert code == 2 and needle in err and "Traceback" not in err
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    code, _, err = cli("run", P, T, "--scale", "smoke", "--out", tmp_path / "new")
    assert code == 2 and "is not writable" in err
    assert not (tmp_path / "new").exists()


def test_paper_yaml_without_title_or_family_does_not_run(cli, tmp_path, monkeypatch):
    import optrepro.registry as reg
    load = reg._load_meta
    monkeypatch.setattr(reg, "_load_meta", lambda p: {k: v for k, v in load(p).items()
                                                      if not (p.parent.name == P and k in ("title", "family"))})
    code, _, err = cli("run", P, T, "--scale", "smoke", "--out", tmp_path / "runs")
    assert code == 2 and "paper.yaml: missing 'title'" in err and "repro check" in err
    assert not (tmp_path / "runs").exists()
    code, out, _ = cli("check")
    assert code == 1 and f"{P}: paper.yaml: missing 'title'" in out and f"{P}: paper.yaml: missing 'family'" in out


def test_result_files_are_readable_and_writes_are_synced(cli, tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    assert cli(*ARGS, "--out", tmp_path)[0] == 0
    mask = os.umask(0)
    os.umask(mask)
    for name in ("result.json", "config.yaml", "checkpoint/last.pt"):
        assert (_run_dir(tmp_path) / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert len(synced) >= 2 * 3  # each atomic write syncs the file and its directory


@pytest.mark.parametrize("pid,table,warm,row", [
    ("mezo_2023", "prompt_ft", "zero_shot", "mezo"),          # ZO fine-tuning: θ, the ZO optimizer's state
    ("sparse_mezo_2024", "masks", "mezo", "smezo"),          # ... with a sparsity mask
    ("npo_2024", "tofu_forget", "retain_f10", "npo_f10"),    # the unlearning loop
    ("slug_2024", "digits", "original", "finetune"),         # a run with two loops (original, then fine-tune)
])
def test_a_method_loop_killed_with_its_caches_built_resumes_to_the_same_result(cli, tmp_path, monkeypatch, pid,
                                                                                 table, warm, row):
    """The registry-wide test kills each table's first loop, which for these tables is a cached build
    (the pretrained LM, the target model); here the caches exist and the kill lands in the method's loop."""
    base = ("run", pid, table, "--scale", "smoke", "--seeds", "0")
    assert cli(*base, "--rows", row, "--out", tmp_path / "ref")[0] == 0
    out = tmp_path / "k"
    assert cli(*base, "--rows", warm, "--out", out)[0] == 0
    checkpoint.reset_fault()
    monkeypatch.setenv("REPRO_FAULT", "kill-halfway")
    with pytest.raises(checkpoint.SimulatedKill):
        cli(*base, "--rows", row, "--out", out)
    monkeypatch.delenv("REPRO_FAULT")
    run_dir = f"{pid}/{table}/smoke/{row}/seed0"
    assert list((out / run_dir / "checkpoint").glob("*.pt")), "the kill did not land in the run's own loop"
    assert cli(*base, "--rows", row, "--out", out, "--resume")[0] == 0
    got, ref = (json.loads((o / run_dir / "result.json").read_text()) for o in (out, tmp_path / "ref"))
    assert got["resumed"] and got["status"] == "ok"
    timing = ("_ms", "_s", "fwd_ratio")
    assert {k: v for k, v in got["metrics"].items() if not k.endswith(timing)} == \
           {k: v for k, v in ref["metrics"].items() if not k.endswith(timing)}
