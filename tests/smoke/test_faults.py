"""Bad input and faults: each gets a clear message and the right exit code, and no result is lost."""
import json
import signal
import time

import pytest
import torch

from optrepro.registry import get_paper
from optrepro.run import plan, run_jobs
from tests.conftest import ROOT, repro_subprocess, row_dir

pytestmark = pytest.mark.smoke
P, T = "adabelief_2020", "cifar10"


@pytest.mark.parametrize("args,needle", [
    (("run", "adabelef_2020"), "did you mean adabelief_2020"),
    (("run", P, "cifar"), "did you mean cifar10"),
    (("run", P, T, "--rows", "adabelief_digit"), "did you mean adabelief_digits"),
    (("compare", "lion"), "unknown paper"),
    (("list", "--family", "optimiser"), "did you mean optimizer"),
    (("run", P, T, "--seeds", "a,b"), "integers"),
])
def test_unknown_names_exit_2_with_one_line(cli, tmp_path, args, needle):
    code, out, err = cli(*args, "--out", tmp_path) if args[0] == "run" else cli(*args)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("override,needle", [
    ("optim.lrr=0.1", "unknown config key 'optim.lrr'"),
    ("train.steps=lots", "train.steps"),
    ("optim.name=adamm", "did you mean adam"),
])
def test_bad_config_exits_2_and_writes_nothing(cli, tmp_path, override, needle):
    code, out, err = cli("run", P, T, "--scale", "smoke", "--out", tmp_path / "runs", override)
    assert code == 2 and needle in err and "Traceback" not in err
    assert ("valid" in err) or ("converted" in err)
    assert not (tmp_path / "runs").exists()


def test_cli_exit_2_in_subprocess(tmp_path):
    r = repro_subprocess("run", P, T, "--scale", "smoke", "--out", tmp_path, "optim.lrr=1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = repro_subprocess("run", P, "--scale", "huge")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_full_scale_without_data_exits_2(tmp_path):
    r = repro_subprocess("run", P, T, "--scale", "full", "--out", tmp_path / "runs",
                         env={"OPTREPRO_DATA": str(tmp_path / "empty")})
    assert r.returncode == 2
    assert "CIFAR-10 is not on disk" in r.stderr and "download=True" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def test_divergence_is_recorded_and_the_sweep_goes_on(tmp_path):
    paper = get_paper(P)
    spec = paper.load_table(T)
    bad = plan(paper, T, spec, "smoke", rows=["sgdm_mnist1d"], overrides={"optim": {"lr": 1e12}},
               out=tmp_path / "a")
    good = plan(paper, T, spec, "smoke", rows=["adam_digits"], out=tmp_path / "b")
    results = run_jobs(bad + good)
    assert results[0]["status"] == "diverged" and results[0]["step"] >= 1 and "loss" in results[0]["error"]
    assert results[1]["status"] == "ok"
    on_disk = json.loads((bad[0].run_dir / "result.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["step"] == results[0]["step"]


RESUME_ARGS = ("run", P, T, "--scale", "smoke", "--rows", "adam_mnist1d", "train.steps=800", "ckpt_every=20",
               "train.eval_every=200")
RESUME_DIR = row_dir("adam_mnist1d", *RESUME_ARGS)


def _final(out):
    res = json.loads((out / P / T / "smoke" / RESUME_DIR / "seed0" / "result.json").read_text())
    assert res["status"] == "ok", res
    return res["metrics"]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    ref = repro_subprocess(*RESUME_ARGS, "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    ckpt = out / P / T / "smoke" / RESUME_DIR / "seed0" / "checkpoint" / "last.pt"
    from tests.conftest import REPRO, ROOT
    import subprocess
    proc = subprocess.Popen([str(REPRO), *RESUME_ARGS, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not ckpt.exists() and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (ckpt.parents[1] / "result.json").exists()
    # the checkpoint is plain tensors and numbers (loads with weights_only=True) behind a checksum
    from optrepro.checkpoint import load_file
    step = load_file(ckpt)["step"]
    assert 0 < step < 800
    r = repro_subprocess(*RESUME_ARGS, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert _final(out) == _final(tmp_path / "ref")  # bit for bit
    # the resumed log has no duplicated or missing records: identical to the uninterrupted run's
    ref_log = (tmp_path / "ref" / P / T / "smoke" / RESUME_DIR / "seed0" / "metrics.jsonl").read_text()
    assert (ckpt.parents[1] / "metrics.jsonl").read_text() == ref_log


def test_sigterm_checkpoints_and_resume_finishes(tmp_path):
    import subprocess
    from tests.conftest import REPRO, ROOT
    out = tmp_path / "t"
    run_dir = out / P / T / "smoke" / RESUME_DIR / "seed0"
    args = list(RESUME_ARGS)
    proc = subprocess.Popen([str(REPRO), *args, "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (run_dir / "metrics.jsonl").exists() and time.time() - t0 < 60:
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    res = json.loads((run_dir / "result.json").read_text())
    assert res["status"] == "interrupted" and (run_dir / "checkpoint" / "last.pt").exists()
    r = repro_subprocess(*args, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert _final(out)["test_acc"] > 0


def test_wandb_offline_keeps_jsonl(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--rows", "adam", "--out", tmp_path / "runs",
                         "tracker=wandb")
    assert code == 0, err
    run_dir = tmp_path / "runs" / P / "toy2d" / "smoke" / row_dir("adam", "tracker=wandb") / "seed0"
    assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 2
    assert list(run_dir.rglob("offline-run-*")), "wandb wrote no offline run"


def test_slurm_launcher_through_submitit_local_executor(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_SUBMITIT_CLUSTER", "local")
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "runs", "--launcher", "slurm",
                         "--mem-gb", "2", "--timeout-min", "5")
    assert code == 0, out + err
    res = list((tmp_path / "runs" / P / "toy2d" / "smoke").glob("*/seed0/result.json"))
    assert len(res) == 3 and all(json.loads(r.read_text())["status"] == "ok" for r in res)
    assert (tmp_path / "runs" / "_submitit").exists()


def test_process_pool_gives_the_same_numbers(cli, tmp_path):
    assert cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "a")[0] == 0
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "b", "--jobs", "2")
    assert code == 0 and "fresh process" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("  [")] == ["[1/3", "[2/3", "[3/3"]
    for row in ("adabelief", "adam", "sgdm"):
        a, b = (json.loads((tmp_path / d / P / "toy2d" / "smoke" / row / "seed0" / "result.json").read_text())
                for d in ("a", "b"))
        assert a["metrics"] == b["metrics"]


@pytest.mark.parametrize("pid,table,row,override,needle", [
    ("trpo_2015", "learning_curves", "trpo_cartpole", "env=CartPol-v1", "did you mean"),
    ("mdpo_2020", "onpolicy", "mdpo_cartpole", "env=optrepro/TabularMDP-v0", "Discrete observation space"),
    ("ppo_ewma_2022", "batch_invariance", "ppo_c1", "batch_factor=3", "divide n_envs"),
    ("harpg_2022", "cartpole", "nharpg", "algo=harpg", "valid: reinforce"),
    ("polyak_pg_2024", "reinforce", "polyak_runmax_cartpole", "env=optrepro/TabularMDP-v0", "observation space"),
    ("cfg_2022", "digits_sweep", "w2", "scale=-1.0", "guidance scale must be a finite number >= 0"),
    ("apg_2024", "digits_high_scale", "apg_10", "scale=nan", "scale must be a finite number, got nan"),
    ("guided_flows_2023", "digits_nfe", "flow_4", "steps=0", "steps must be an integer >= 1"),
    ("cfgzero_2025", "mixture", "zero_early", "model.p_uncond=0.0", "trained without label dropout"),
    ("adaptive_guidance_2023", "digits", "ag_0_999", "rule=pag", "guidance rule 'pag' unknown"),
    ("ays_2024", "mixture", "ays_5", "sampler=dpm", "sampler 'dpm' unknown"),
    ("cfg_2022", "digits_sweep", "w2", "model.data=cifar", "data 'cifar' unknown"),
    ("mezo_2023", "prompt_ft", "mezo", "eps=0.0", "perturbation scale eps must be a finite number > 0"),
    ("zobench_2024", "optimizers", "zo_sgd", "eps=-0.001", "eps must be >= 0, got -0.001"),
    ("zobench_2024", "optimizers", "zo_sgd", "method=zo_lion", "method 'zo_lion' unknown"),
    ("sparse_mezo_2024", "masks", "smezo", "density=0.0", "density must be in (0, 1]"),
    ("sparse_mezo_2024", "masks", "mezo", "mask=magnitude", "a mask needs density < 1"),
    ("mezo_2023", "prompt_ft", "mezo", "task.snippet=60", "exceeds lm.context"),
    ("deepzero_2023", "digits_mlp", "cge_sparse", "mu=0.0", "coordinate step mu must be a finite number > 0"),
    ("deepzero_2023", "digits_mlp", "cge_sparse", "estimator=spsa", "estimator 'spsa' unknown"),
    ("npo_2024", "tofu_forget", "npo_f10", "forget_frac=1.0", "forget fraction must be in (0, 1)"),
    ("npo_2024", "tofu_forget", "npo_f10", "forget_frac=0.0", "forget fraction must be in (0, 1)"),
    ("npo_2024", "tofu_forget", "npo_f10", "retain_ref=none", "forget quality is reported: it needs the retain model"),
    ("simnpo_2024", "simnpo", "simnpo", "retain_ref=/nonexistent/retain.pt", "no such file"),
    ("simnpo_2024", "simnpo", "simnpo", "beta=0.0", "beta must be > 0"),
    ("slug_2024", "digits", "slug", "digits.forget_class=12", "forget_class must be a digit 0-9"),
    ("slug_2024", "qa", "slug", "method=sluggish", "method 'sluggish' unknown"),
    ("ema_scaling_2023", "digits", "k8_scaled", "steps=100", "must be a multiple of kappa x evals"),
    ("ema_scaling_2023", "digits", "k8_scaled", "ema=1.5", "ema must be in [0, 1]"),
    ("lr_perceptron_2024", "separable", "g1", "gamma=0.0", "gamma must be > 0"),
    ("lr_perceptron_2024", "separable", "g1", "margin=1.5", "margin must be in (0, 1)"),
    ("riemannian_adam_2019", "tree_embedding", "radam", "optimizer=adam", "optimizer must be one of rsgd"),
    ("riemannian_adam_2019", "tree_embedding", "radam", "betas=[0.9,1.5]", "betas (beta2) must be in [0, 1)"),
    ("riemannian_adam_2019", "tree_embedding", "radam", "early_epochs=9", "early_epochs must be in [0, epochs=2]"),
    ("jacobian_descent_2024", "iwrm", "upgrad", "aggregator=nash", "aggregator must be one of mean"),
    ("jacobian_descent_2024", "iwrm", "upgrad", "n_train=5000", "n_train must be in [1, 1348]"),
    ("lion_k_2023", "constrained", "lion_l1_lam1", "k=linf", "k must be one of l1"),
    ("innaprop_2024", "digits", "innaprop", "optim.lr=1.0", "lr must be < beta"),
    ("innaprop_2024", "digits", "innaprop", "optim.kwargs.sigma=1.0", "sigma must be in [0, 1)"),
    ("lion_k_2023", "constrained", "lion_l1_lam1", "weight_decay=0.0", "weight_decay (lambda) must be > 0"),
    ("u_mup_2024", "transfer", "umup", "parametrization=mup", "parametrization must be one of umup"),
    ("u_mup_2024", "transfer", "umup", "log2_lrs=[0.5,1,2]", "log2_lrs must be at least 3 increasing distinct integers"),
    ("u_mup_2024", "transfer", "sp", "width=20", "must be a multiple of head_dim"),
    ("large_steps_sparse_2023", "dln", "n1", "rate=2.5", "normalized SGD needs rate < 2"),
    ("large_steps_sparse_2023", "dln", "sgd_0.05", "large_frac=0.0", "large_frac must be in (0, 1]"),
    ("large_steps_sparse_2023", "dln", "sgd_0.05", "r=500", "r (the support of beta*) must be in [1, d=40]"),
    ("large_steps_sparse_2023", "dln", "n1.5_p10", "log_every=500", "leaves no logged step in the second half"),
])
def test_bad_input_exits_2_before_training_or_sampling(cli, tmp_path, pid, table, row, override, needle):
    code, out, err = cli("run", pid, table, "--scale", "smoke", "--rows", row, "--out", tmp_path / "runs", override)
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def test_runs_use_the_same_thread_count_whatever_jobs(tmp_path, monkeypatch):
    """Float reductions depend on torch's thread count: an in-process run (--jobs 1) must use
    REPRO_THREADS like a pool worker does, or a seed's numbers depend on --jobs."""
    from optrepro.run import execute
    monkeypatch.delenv("REPRO_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        paper = get_paper("trpo_2015")
        [job] = plan(paper, "learning_curves", paper.load_table("learning_curves"), "smoke", rows=["trpo_cartpole"],
                     out=tmp_path)
        assert execute(job)["status"] == "ok"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)



@pytest.mark.parametrize("pid,table,row,needle", [
    ("apg_2024", "digits_high_scale", "apg_10", "pretrained model"),
    ("mezo_2023", "prompt_ft", "mezo", "pretrained LLM weights"),
    ("deepzero_2023", "digits_mlp", "cge_sparse", "CIFAR-10"),
    ("npo_2024", "tofu_forget", "npo_f10", "TOFU"),
    ("simnpo_2024", "simnpo", "simnpo", "TOFU"),
    ("slug_2024", "digits", "slug", "CLIP"),
    ("riemannian_adam_2019", "tree_embedding", "radam", "transitive_closure.py"),
])
def test_full_scale_without_pretrained_weights_or_data_stops_with_exit_2(cli, tmp_path, pid, table, row, needle):
    code, out, err = cli("run", pid, table, "--scale", "full", "--rows", row, "--out", tmp_path / "runs")
    assert code == 2 and needle in err and "Traceback" not in err, err


def test_overlapping_forget_and_retain_split_exits_2(cli, tmp_path):
    code, out, err = cli("run", "npo_2024", "tofu_forget", "--scale", "smoke", "--rows", "npo_rt_f10", "--out",
                         tmp_path / "runs", "split.forget_authors=[1,2]", "split.retain_authors=[2,3]")
    assert code == 2 and "overlaps the retain split" in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def _tracked_changes():
    import subprocess
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                          capture_output=True, text=True).stdout


def test_demo_leaves_the_tree_clean(cli, tmp_path):
    """`make demo` writes runs and report outside the tracked tree (the same commands at smoke scale)."""
    make = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    cmds = [line.strip().split("/repro ", 1)[1].split() for line in make.splitlines() if "/repro " in line]
    assert [c[0] for c in cmds] == ["run", "compare"] and "--reports" in cmds[1]
    before = _tracked_changes()
    for c in cmds:
        c = [tmp_path / "demo" if a == "runs/demo" else tmp_path / "demo" / "reports" if a == "runs/demo/reports"
             else "smoke" if a == "mini" else a for a in c]
        code, out, err = cli(*c)
        assert code == 0, out + err
    assert (tmp_path / "demo" / "reports" / "adabelief_2020" / "toy2d.md").exists()
    assert _tracked_changes() == before


def test_slurm_without_sbatch_exits_2_naming_the_local_cluster(cli, tmp_path, monkeypatch):
    import shutil
    monkeypatch.delenv("REPRO_SUBMITIT_CLUSTER", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "runs", "--launcher", "slurm")
    assert code == 2 and "no sbatch" in err and "REPRO_SUBMITIT_CLUSTER=local" in err
    assert not (tmp_path / "runs").exists()
    monkeypatch.setenv("REPRO_SUBMITIT_CLUSTER", "lcoal")
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "runs", "--launcher", "slurm")
    assert code == 2 and "valid values are slurm, local, debug" in err


@pytest.mark.parametrize("args,needle", [
    (("--partition", "gpu"), "only apply with --launcher slurm"),
    (("--launcher", "slurm", "--mem-gb", "0"), "--mem-gb must be > 0"),
    (("--launcher", "slurm", "--gpus", "-1"), "--gpus must be >= 0"),
    (("device=gpu",), "device=gpu: valid values are cpu, cuda"),
])
def test_launcher_options_and_device_are_checked_before_any_run(cli, tmp_path, monkeypatch, args, needle):
    monkeypatch.setenv("REPRO_SUBMITIT_CLUSTER", "local")
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "runs", *args)
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_exits_2(cli, tmp_path):
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "runs", "device=cuda")
    assert code == 2 and "no CUDA device" in err


def test_compare_leaves_out_unfinished_runs_and_says_so(cli, tmp_path):
    # a run still in progress (or SIGKILLed) has config.yaml and no result.json; a compare made while a table
    # was finishing once reported 9 seeds of 10 without a word: now it warns, and refuses for reports/
    code, out, err = cli("run", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "runs")
    assert code == 0, err
    seed = next((tmp_path / "runs" / P / "toy2d" / "smoke").glob("*/seed0"))
    (seed / "result.json").unlink()
    from optrepro.report.compare import unfinished
    from optrepro.registry import get_paper
    from optrepro.config import run_rows
    spec = get_paper(P).load_table("toy2d")
    assert unfinished(tmp_path / "runs", P, "toy2d", "smoke", run_rows(spec, "smoke")) == [f"{seed.parent.name}/seed0"]
    code, out, err = cli("compare", P, "toy2d", "--scale", "smoke", "--out", tmp_path / "runs",
                         "--reports", tmp_path / "rep")
    assert code == 0, err
    assert "have not finished" in err and f"{seed.parent.name}/seed0" in err
