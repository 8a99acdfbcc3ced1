"""ZeRO on real processes (papers/zero_2019): over 2 gloo ranks, DDP, ZeRO-1 (ZeroRedundancyOptimizer)
and ZeRO-3 (FSDP2) give the same loss at every step, and the bytes each rank holds are ZeRO's
formula: 16 Psi for DDP, 8 Psi + 8 Psi / N for ZeRO-1 (up to its whole-tensor partition), 16 Psi / N
for ZeRO-3."""
import pytest

from optrepro.dist.spawn import spawn
from optrepro.papers.zero_2019.experiment import Config, formula_bytes, rank_main

pytestmark = pytest.mark.smoke


def test_zero_stages_hold_the_formula_and_train_as_ddp():
    got = {}
    for mode in ("ddp", "zero1", "zero3"):
        cfg = Config(mode=mode, width=32, depth=3, steps=5, batch_size=16)
        got[mode] = spawn(rank_main, 2, cfg, timeout_s=300)
    psi = got["ddp"][0]["psi"]
    for mode, ranks in got.items():
        for r in ranks:
            assert r["losses"] == got["ddp"][0]["losses"], mode  # the same numbers, step by step
            held = r["param_bytes"] + r["grad_bytes"] + r["state_bytes"]
            if mode == "zero1":  # Adam state partitioned by whole tensors: the ranks' shares differ
                assert r["param_bytes"] == r["grad_bytes"] == 4 * psi
            else:
                assert held == formula_bytes(mode, psi, 2), mode
        if mode == "zero1":
            assert sum(r["state_bytes"] for r in ranks) == 8 * psi


def test_a_failing_rank_is_reported_with_its_traceback():
    with pytest.raises(RuntimeError, match=r"rank \d of 2 failed(.|\n)*mode 'nope' unknown"):
        spawn(rank_main, 2, Config(mode="nope", steps=1, width=4, depth=0, batch_size=2), timeout_s=120)
