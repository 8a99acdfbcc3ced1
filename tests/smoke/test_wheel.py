"""The distribution as a user gets it: a wheel built from this checkout, installed into a fresh venv,
used from outside the checkout. `import optrepro` builds an optimizer by name without importing the
heavy extras, the gymnasium environments load by their module-qualified id, and `repro run` +
`repro compare` go through a smoke table, writing nothing into the installed package."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.smoke


def _sh(*args, cwd, env=None, timeout=600):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: building in the checkout would leave build/ and egg-info there
    src.mkdir()
    for d in ("common", "papers", "envs", "configs"):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for f in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / f, src / f)
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", src,
        cwd=tmp)
    wheel = next((tmp / "dist").glob("optrepro-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(_sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip())
    # The dependencies (torch, ...) come from this test environment's site-packages as a plain path entry:
    # its .pth files (this checkout's editable install among them) are not processed there.
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _sh(py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    work = tmp / "elsewhere"
    work.mkdir()
    return {"py": py, "repro": env_dir / "bin" / "repro", "site": site, "env": env, "work": work, "wheel": wheel}


def test_wheel_imports_optrepro_and_builds_an_optimizer_without_the_extras(installed):
    code = (
        "import sys, torch, optrepro\n"
        "p = [torch.nn.Parameter(torch.ones(3))]\n"
        "opt = optrepro.create_optimizer('LION', p, lr=0.1)\n"
        "p[0].grad = torch.ones(3); opt.step()\n"
        "heavy = [m for m in ('gymnasium', 'wandb', 'transformers', 'diffusers', 'stable_baselines3', 'submitit')"
        " if m in sys.modules]\n"
        "print(optrepro.__file__, type(opt).__module__, [round(x, 6) for x in p[0].data.tolist()], heavy, optrepro.IS_CHECKOUT)\n")
    out = _sh(installed["py"], "-c", code, cwd=installed["work"], env=installed["env"]).stdout.split()
    assert out[0].startswith(str(installed["site"])), out  # the wheel's copy, not this checkout
    assert out[1] == "optrepro.papers.lion_2023.method"
    assert out[2:5] == ["[0.9,", "0.9,", "0.9]"]  # Lion: p - lr * sign(update)
    assert out[5] == "[]" and out[6] == "False"


def test_wheel_packages_configs_and_the_environments(installed):
    code = ("import gymnasium as gym, optrepro\n"
            "from optrepro.registry import all_papers\n"
            "env = gym.make('optrepro.envs:optrepro/LQR-v0')\n"
            "print(len(all_papers()), (optrepro.ROOT / 'configs' / 'lion_2023').is_dir(), type(env.unwrapped).__name__)\n")
    n, configs, env = _sh(installed["py"], "-c", code, cwd=installed["work"], env=installed["env"]).stdout.split()
    from optrepro.registry import all_papers
    assert int(n) == len(all_papers()) and configs == "True" and env == "LQREnv"


def test_installed_repro_runs_and_compares_a_smoke_table_outside_the_checkout(installed):
    w, env = installed["work"], installed["env"]
    _sh(installed["repro"], "run", "adabelief_2020", "toy2d", "--scale", "smoke", "--out", "runs", cwd=w, env=env)
    res = json.loads((w / "runs/adabelief_2020/toy2d/smoke/adam/seed0/result.json").read_text())
    assert res["status"] == "ok" and res["meta"]["git_sha"].startswith("installed-optrepro-")
    mine = json.loads((ROOT / "reports/adabelief_2020/toy2d.json").read_text())  # committed numbers, mini scale
    assert set(res["metrics"]) >= set(mine["rows"]["adam"]["per_seed"])
    r = _sh(installed["repro"], "compare", "adabelief_2020", "toy2d", "--scale", "smoke", "--out", "runs", cwd=w, env=env)
    assert (w / "runs/reports/adabelief_2020/toy2d.md").exists() and "not reports/" in r.stdout
    assert not (installed["site"] / "optrepro" / "reports").exists()
    r = subprocess.run([installed["repro"], "new", "x_2026", "--family", "optimizer"], cwd=w, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "installed copy" in r.stderr
