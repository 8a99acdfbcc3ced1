"""Sweep-level progress lines: count, percentage, elapsed time and an ETA from the mean run time."""
import pytest

from optrepro.run import SweepProgress

pytestmark = pytest.mark.unit


def test_progress_lines_count_runs_and_estimate_the_rest():
    t = [100.0]
    p = SweepProgress(4, clock=lambda: t[0])
    t[0] = 110.0
    assert p.tick() == "[1/4 25%, 10 s, ETA 30 s]"
    t[0] = 220.0
    assert p.tick() == "[2/4 50%, 2 min, ETA 2 min]"
    t[0] = 230.0
    p.tick()
    t[0] = 100.0 + 4 * 3600
    assert p.tick() == "[4/4 100%, 4.0 h, done]"


def test_on_a_terminal_a_sweep_bar_counts_runs_under_the_same_lines(capsys):
    p = SweepProgress(3, bar=True)
    try:
        p.emit(f"  {p.tick()} ok adam/seed0")
        assert p.bar.n == 1 and p.bar.total == 3
    finally:
        p.close()
    assert "[1/3 33%" in capsys.readouterr().out  # tqdm.write prints the line to stdout


def test_run_prints_one_progress_line_per_finished_run(cli, tmp_path):
    code, out, err = cli("run", "adabelief_2020", "toy2d", "--scale", "smoke", "--out", tmp_path, "--rows", "adam,sgdm")
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip().startswith("[")]
    assert [line.split()[0] for line in lines] == ["[1/2", "[2/2"] and lines[-1].split("]")[0].endswith("done")
