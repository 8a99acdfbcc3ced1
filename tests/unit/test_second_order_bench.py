"""`repro bench second-order` (common.curvature.bench): every paper's `second_order:` entry imports as a
torch optimizer and runs a training step; state bytes are counted, peak memory measured; bad names exit 2."""
import pytest
import torch

from optrepro.curvature import bench
from optrepro.errors import UsageError

pytestmark = pytest.mark.unit


def test_every_second_order_entry_is_an_optimizer_that_trains():
    from optrepro import import_target
    assert {"adahessian", "sophiag", "shampoo", "soap", "adafisher"} <= set(bench.entries())
    for name, target in bench.entries().items():
        cls = import_target(target)
        assert issubclass(cls, torch.optim.Optimizer), name


def test_bench_measures_state_and_peak_memory():
    rows = {r["optimizer"]: r for r in bench.run(["sgd", "adam", "adahessian", "sophiag"], "mlp", steps=1)}
    assert rows["sgd"]["state_bytes_per_param"] == pytest.approx(4.0, rel=1e-3)  # one float32 momentum buffer
    assert rows["adam"]["state_bytes_per_param"] == pytest.approx(8.0, rel=1e-3)  # two float32 moments (+ a step scalar per tensor)
    assert rows["adahessian"]["state_bytes_per_param"] == pytest.approx(8.0, rel=1e-3)
    assert rows["sophiag"]["state_bytes_per_param"] == pytest.approx(8.0, rel=1e-3)  # momentum + curvature
    assert rows["adahessian"]["needs_graph"] and not rows["adam"]["needs_graph"]
    # the double backward keeps the gradient's graph alive: AdaHessian's step peaks above Adam's
    assert rows["adahessian"]["peak_mib"] > rows["adam"]["peak_mib"]
    assert "| `adahessian` | yes |" in bench.markdown(list(rows.values()), "test", "mlp", "cpu")


def test_an_optimizer_that_takes_the_model_is_built_on_it():
    # AdaFisher hooks the model's layers: the bench builds it on the model, and its factors count as state
    rows = {r["optimizer"]: r for r in bench.run(["adam", "adafisher"], "mlp", steps=1)}
    assert 4.0 < rows["adafisher"]["state_bytes_per_param"] < 8.0  # momentum + the small per-layer factors


def test_unknown_name_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown optimizer"):
        bench.factories(["nope"])
