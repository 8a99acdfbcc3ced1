"""The shared bilevel task: bad input exits 2 with a message (ConfigError/DataMissing), a grid
whose every point fails says why, and results carry the inner residual."""
import pytest

from optrepro.errors import ConfigError, DataMissing
from optrepro.tasks import bilevel

pytestmark = pytest.mark.unit


def cfg(**kw):
    return bilevel.BilevelConfig(**kw)


@pytest.mark.parametrize("kw,msg", [
    (dict(algo="f2s"), "algo 'f2s' unknown.*did you mean f2sa"),
    (dict(problem="hyperclen"), "problem 'hyperclen' unknown"),
    (dict(study="hypergrad", method="implicit"), "method 'implicit' unknown"),
    (dict(model="lstm"), "model 'lstm' unknown"),
    (dict(corrupt=1.5), r"corrupt must be in \[0, 1\)"),
    (dict(budget=0), "budget must be >= 1"),
    (dict(grid={"outer_lr": 3.0}), "grid.outer_lr: give a non-empty list"),
])
def test_preflight_rejects_bad_config(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        bilevel.preflight(cfg(**kw))


def test_full_scale_data_missing_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTREPRO_DATA", str(tmp_path))
    with pytest.raises(DataMissing, match="MNIST is not on disk"):
        bilevel.preflight(cfg(dataset="mnist"))


class Ctx:
    def __init__(self):
        self.logs = []

    def progress(self, n):
        pass

    def log(self, step, **m):
        self.logs.append((step, m))

    def steps(self, total, state, **kw):  # a run without checkpoints
        return iter(range(1, total + 1))

    def no_checkpoint(self, reason):
        pass


def test_too_many_examples_is_a_config_error():
    with pytest.raises(ConfigError, match="n_train \\+ n_val"):
        bilevel.run(cfg(n_train=5000, n_val=500, budget=10), Ctx())


def test_every_failed_grid_point_is_reported():
    """Undamped CG on the singular Hessian of the non-unique problem fails at every grid point."""
    c = cfg(problem="nonunique", algo="aid_cg", budget=200, hp={"inner_steps": 5, "cg_iters": 5, "inner_lr": 0.2},
            grid={"outer_lr": [0.1, 0.5]})
    with pytest.raises(ConfigError, match="every grid point diverged or failed.*not positive definite"):
        bilevel.run(c, Ctx())


def test_results_record_inner_residual_and_oracle_calls():
    out = bilevel.run(cfg(problem="quadratic", algo="aid_cg", budget=500, hp={"outer_lr": 0.1, "inner_lr": 0.09}), Ctx())
    assert out["calls"] >= 500 and out["inner_residual"] >= 0 and "inner_residual_max" in out
    h = bilevel.run(cfg(study="hypergrad", problem="l2reg", n_train=50, n_val=50, inner_steps=5, method="unrolled",
                        init_log_l2=-1.0), Ctx())
    assert h["inner_residual"] > 1e-3 and 0 < h["cosine"] < 1  # 5 steps: not solved, and it says so
