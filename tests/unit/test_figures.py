"""Report bar figures: one colour per row, error bars, and an axis zoomed onto the values when they
sit far from zero (a 91% vs 93% accuracy gap is visible, not a sliver atop two tall bars)."""
import json

import matplotlib
import pytest

from optrepro.registry import get_paper
from optrepro.report.compare import _draw, zoomed_limits
from tests.conftest import ROOT

pytestmark = pytest.mark.unit
matplotlib.use("Agg")


def test_zoomed_limits_only_when_the_values_sit_far_from_zero():
    lo, hi = zoomed_limits([0.90, 0.92, 0.93, 0.95])
    assert 0.88 < lo < 0.90 and 0.95 < hi < 0.97
    assert zoomed_limits([0.1, 0.9]) is None          # spread comparable to the distance to 0
    assert zoomed_limits([-0.2, 0.3]) is None         # straddles 0
    assert zoomed_limits([-5.0, -4.9]) == pytest.approx((-5.015, -4.885))
    assert zoomed_limits([1.0]) is None and zoomed_limits([2.0, 2.0]) is None


def test_bar_figure_has_a_colour_per_row_error_bars_seed_dots_and_a_zoomed_axis():
    import matplotlib.pyplot as plt
    doc = json.loads((ROOT / "reports" / "adabelief_2020" / "cifar10.json").read_text())
    spec = get_paper("adabelief_2020").load_table("cifar10")
    fig, ax = plt.subplots()
    try:
        _draw(ax, doc, spec, {}, None, "adabelief_2020", "cifar10", doc["scale"], spec.plot, spec.plot.metric)
        bars = [p for p in ax.patches]
        rows = [r for r in doc["rows"] if spec.plot.metric in doc["rows"][r]["metrics"]]
        assert len(bars) == len(rows) and len({tuple(b.get_facecolor()) for b in bars}) == len(rows)
        from matplotlib.container import ErrorbarContainer
        assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)
        means = [doc["rows"][r]["metrics"][spec.plot.metric]["mean"] for r in rows]
        seeds = [v for r in rows for v in doc["rows"][r]["per_seed"][spec.plot.metric].values()]
        # every seed is a dot (a bimodal row is not its mean +- std), and the axis shows them all
        from matplotlib.collections import PathCollection
        assert sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)) == len(seeds)
        lim = zoomed_limits([m + s * d for r, m in zip(rows, means) for s in (1, -1)
                             for d in [doc["rows"][r]["metrics"][spec.plot.metric]["std"]]] + seeds)
        assert ax.get_ylim() == pytest.approx(lim) if lim else ax.get_ylim()[0] <= 0
    finally:
        plt.close(fig)


def test_a_bar_figure_is_redrawn_from_its_report_json_alone(tmp_path):
    import shutil

    from optrepro.report.compare import redraw_bar_figure
    (tmp_path / "adabelief_2020").mkdir()
    shutil.copy(ROOT / "reports/adabelief_2020/cifar10.json", tmp_path / "adabelief_2020/cifar10.json")
    shutil.copy(ROOT / "reports/adabelief_2020/toy2d.json", tmp_path / "adabelief_2020/toy2d.json")
    paper = get_paper("adabelief_2020")
    png = redraw_bar_figure(paper, "cifar10", tmp_path)
    assert png == tmp_path / "adabelief_2020/cifar10.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert redraw_bar_figure(paper, "toy2d", tmp_path) is None  # a curve figure needs the runs


def test_a_tuned_tables_bar_figure_shows_its_rows_not_every_grid_point():
    import matplotlib.pyplot as plt
    doc = json.loads((ROOT / "reports" / "dog_2023" / "vs_tuned_sgd.json").read_text())
    spec = get_paper("dog_2023").load_table("vs_tuned_sgd")
    fig, ax = plt.subplots()
    try:
        _draw(ax, doc, spec, {}, None, "dog_2023", "vs_tuned_sgd", doc["scale"], spec.plot, spec.plot.metric)
        labels = [t.get_text() for t in ax.get_xticklabels()]
    finally:
        plt.close(fig)
    assert labels and not any("@" in x for x in labels)
    assert set(labels) == {r for r in doc["rows"] if "@" not in r and spec.plot.metric in doc["rows"][r]["metrics"]}


def test_a_tuned_tables_curve_figure_draws_each_row_from_its_chosen_grid_point(tmp_path):
    """A tuned row has no runs of its own: its curve is its chosen grid point's (a KeyError once)."""
    import matplotlib.pyplot as plt
    spec = get_paper("riemannian_adam_2019").load_table("tree_embedding")
    points = {p: r for p, r in spec.tune_parent.items() if r == "rsgd"}
    chosen, other = sorted(points)[:2]
    doc = {"rows": {"rsgd": {"tuned": {"chosen": chosen.split("@")[1]}, "metrics": {}, "seeds": [0]},
                    chosen: {"metrics": {}, "seeds": [0]}, other: {"metrics": {}, "seeds": [0]}}}
    results = {}
    for name, level in ((chosen, 1.0), (other, 5.0)):
        d = tmp_path / "riemannian_adam_2019" / "tree_embedding" / "mini" / name / "seed0"
        d.mkdir(parents=True)
        d.joinpath("metrics.jsonl").write_text("".join(json.dumps({"step": s, "full_loss": level + s}) + "\n"
                                                       for s in range(3)))
        results[name] = [{"status": "ok", "seed": 0}]
    fig, ax = plt.subplots()
    try:
        _draw(ax, doc, spec, results, tmp_path, "riemannian_adam_2019", "tree_embedding", "mini", spec.plot,
              spec.plot.metric)
        lines = ax.get_lines()
        assert [ln.get_label() for ln in lines] == [f"rsgd ({chosen.split('@')[1]})"]
        assert list(lines[0].get_ydata()) == [1.0, 2.0, 3.0]
    finally:
        plt.close(fig)


def test_paper_number_beside_a_row_that_only_diverged_says_so():
    from optrepro.report.compare import _ours_cell
    assert _ours_cell({"metrics": {}, "status": {"diverged": 10}}, "test_loss") == "none: diverged 10 of 10 seeds"
    assert _ours_cell({"metrics": {}, "status": {"ok": 2, "failed": 1}}, "l0") == "none: failed 1 of 3 seeds"
    assert _ours_cell(None, "l0") == "not run at this scale"
    assert _ours_cell({"metrics": {"l0": {"mean": 71.0, "std": 2.0}}, "status": {"ok": 3}}, "l0") == "71 ± 2"
