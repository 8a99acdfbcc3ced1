"""`repro bench memory` (common.optim.memory_bench): state bytes per parameter counted and a step's peak
measured for registered optimizers on the tiny GPT; Adafactor's factored state is a small fraction of
AdamW's; the markdown lists every optimizer asked for; bad names exit 2."""
import pytest

from optrepro.optim import memory_bench

pytestmark = pytest.mark.unit


def test_state_bytes_and_peaks_are_measured():
    rows = {r["optimizer"]: r for r in memory_bench.run(["sgd", "adamw", "adafactor", "lion"])}
    assert rows["adamw"]["state_bytes_per_param"] == pytest.approx(8.0, rel=1e-3)  # two float32 moments
    assert rows["lion"]["state_bytes_per_param"] == pytest.approx(4.0, rel=1e-3)  # one momentum
    assert rows["sgd"]["state_bytes_per_param"] == pytest.approx(4.0, rel=1e-3)  # momentum 0.9, as AlgoPerf runs it
    assert rows["adafactor"]["state_bytes_per_param"] < 0.5  # row and column statistics only
    assert rows["adafactor"]["peak_mib"] < rows["adamw"]["peak_mib"]
    md = memory_bench.markdown(list(rows.values()), "test", "cpu")
    assert all(f"| `{n}` |" in md for n in rows)


def test_unknown_optimizer_is_a_usage_error(cli):
    code, out, err = cli("bench", "memory", "--only", "nope")
    assert code == 2 and "unknown optimizer" in err
