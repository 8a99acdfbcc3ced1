"""The shared tuning protocol: a tuned row is its grid point with the best mean validation metric."""
import pytest
import torch

from optrepro.config import parse_table, run_rows
from optrepro.data.core import Split
from optrepro.errors import ConfigError, UsageError
from optrepro.report import claims
from optrepro.report.compare import apply_tuning

pytestmark = pytest.mark.unit


def _spec(tune, claims_=(), mini_rows=None):
    return parse_table({
        "rows": {"a": {"optim": {"name": "sgd", "lr": 0.1}}, "b": {"optim": {"name": "adam"}}, "c": {}},
        "tune": tune, "metrics": {"test_acc": {}, "val_acc": {}},
        "claims": [dict(c, text="t") for c in claims_],
        "scales": {"smoke": {}, "mini": {"rows": mini_rows or []}, "full": {}}}, "t")


def _row(vals: dict, status=None):
    return {"status": status or {"ok": len(vals["val_acc"])}, "seeds": sorted(int(s) for s in vals["val_acc"]),
            "per_seed": {m: {str(k): x for k, x in v.items()} for m, v in vals.items()}, "metrics": {}}


def test_points_are_rows_and_the_tuned_row_is_not_run():
    spec = _spec({"a": {"grid": {"optim.lr": [0.01, 0.1, 1.0]}, "select": "val_acc"}})
    assert run_rows(spec, "mini") == ["a@lr0.01", "a@lr0.1", "a@lr1", "b", "c"]
    assert spec.rows["a@lr1"] == {"optim": {"name": "sgd", "lr": 1.0}}  # the row's other values kept
    assert run_rows(spec, "mini", ["a"]) == ["a@lr0.01", "a@lr0.1", "a@lr1"]


def test_selection_is_on_validation_and_reports_that_points_test_values():
    spec = _spec({"a": {"grid": {"optim.lr": [0.01, 0.1]}, "select": "val_acc"}})
    agg = {"a@lr0.01": _row({"val_acc": {0: 90.0, 1: 92.0}, "test_acc": {0: 95.0, 1: 96.0}}),
           "a@lr0.1": _row({"val_acc": {0: 93.0, 1: 94.0}, "test_acc": {0: 91.0, 1: 90.0}})}
    apply_tuning(spec, agg, "mini")
    # lr 0.1 wins on validation although lr 0.01 has the better test accuracy: no selection on test
    assert agg["a"]["tuned"]["chosen"] == "lr0.1"
    assert agg["a"]["per_seed"]["test_acc"] == {"0": 91.0, "1": 90.0}


def test_a_point_with_a_diverged_seed_is_not_eligible():
    spec = _spec({"a": {"grid": {"optim.lr": [0.01, 0.1]}, "select": "val_acc"}})
    agg = {"a@lr0.01": _row({"val_acc": {0: 90.0, 1: 90.0}}),
           "a@lr0.1": _row({"val_acc": {0: 99.0}}, status={"ok": 1, "diverged": 1})}
    apply_tuning(spec, agg, "mini")
    assert agg["a"]["tuned"]["chosen"] == "lr0.01" and agg["a"]["tuned"]["by_point"]["lr0.1"] is None


def test_select_from_takes_another_rows_choice():
    spec = _spec({"a": {"grid": {"optim.lr": [0.01, 0.1]}, "select": "val_acc"},
                  "b": {"grid": {"optim.lr": [0.01, 0.1]}, "select": "val_acc", "select_from": "a"}})
    agg = {"a@lr0.01": _row({"val_acc": {0: 90.0}}), "a@lr0.1": _row({"val_acc": {0: 80.0}}),
           "b@lr0.01": _row({"val_acc": {0: 10.0}}), "b@lr0.1": _row({"val_acc": {0: 99.0}})}
    apply_tuning(spec, agg, "mini")
    assert agg["b"]["tuned"]["chosen"] == "lr0.01"  # a's choice, not b's own best


def test_unequal_tuning_budgets_and_selection_on_test_are_contract_errors():
    spec = _spec({"a": {"grid": {"optim.lr": [0.01, 0.1, 1.0]}, "select": "val_acc"},
                  "b": {"grid": {"optim.lr": [1e-3, 1e-2]}, "select": "test_acc"}},
                 [{"type": "better", "metric": "test_acc", "a": "a", "b": "b"}])
    errs = claims.validate(spec)
    assert any("unequal tuning budgets" in e for e in errs)
    assert any("a test metric" in e for e in errs)


def test_bad_tune_blocks_are_config_errors():
    with pytest.raises(ConfigError, match="unknown row"):
        _spec({"zz": {"grid": {"optim.lr": [0.1]}, "select": "val_acc"}})
    with pytest.raises(ConfigError, match="needs a grid"):
        _spec({"a": {"grid": {}, "select": "val_acc"}})
    with pytest.raises(ConfigError, match="same grid points"):
        _spec({"a": {"grid": {"optim.lr": [0.1]}, "select": "val_acc"},
               "b": {"grid": {"optim.lr": [0.2]}, "select": "val_acc", "select_from": "a"}})


def test_selecting_on_an_undeclared_metric_needs_its_direction():
    # the old default (larger is better for a metric the table does not declare) chose the worst learning
    # rate by val_loss in shampoo_2020's first run; now the config must say it
    with pytest.raises(ConfigError, match="maximize: false"):
        _spec({"a": {"grid": {"optim.lr": [0.01, 0.1]}, "select": "val_loss"}})
    spec = _spec({"a": {"grid": {"optim.lr": [0.01, 0.1]}, "select": "val_loss", "maximize": False}})
    agg = {"a@lr0.01": _row({"val_acc": {0: 1.0}, "val_loss": {0: 0.5}}),
           "a@lr0.1": _row({"val_acc": {0: 1.0}, "val_loss": {0: 0.9}})}
    apply_tuning(spec, agg, "mini")
    assert agg["a"]["tuned"]["chosen"] == "lr0.01"
    _spec({"a": {"grid": {"optim.lr": [0.1]}, "select": "train_acc"}})  # an accuracy: larger is better


def test_holdout_is_disjoint_seeded_and_keeps_the_test_set():
    s = Split(torch.arange(100.).view(100, 1), torch.zeros(100, dtype=torch.long), torch.ones(7, 1),
              torch.zeros(7, dtype=torch.long), 2, (1,))
    h = s.holdout(0.2, seed=3)
    assert len(h.x_val) == 20 and len(h.x_train) == 80 and torch.equal(h.x_test, s.x_test)
    assert not set(h.x_val.view(-1).tolist()) & set(h.x_train.view(-1).tolist())
    assert torch.equal(s.holdout(0.2, seed=3).x_val, h.x_val)
    with pytest.raises(UsageError):
        s.holdout(1.5, seed=0)
