"""distillation_scaling_2025's law fit recovers the law from data the law itself generates, and
predicts held-out teachers from it: the fitting code, not the law, is what this checks."""
import numpy as np
import pytest

from optrepro.papers.distillation_scaling_2025.method import distillation_law, fit_distillation_law

pytestmark = pytest.mark.reference

TRUE = dict(c0=0.4, c1=0.8, d1=0.9, f1=0.6, A=30.0, alpha=0.35, B=60.0, beta=0.3, gamma=0.8)


def _grid():
    L_T, L_sup, N, D = [], [], [], []
    for lt in (1.6, 1.8, 2.0, 2.3):
        for n in (2e4, 5e4, 1e5):
            for d in (2e5, 5e5, 1e6):
                L_T.append(lt), N.append(n), D.append(d)
                L_sup.append(1.2 + 40 * n ** -0.3 + 80 * d ** -0.3)
    return [np.array(v) for v in (L_T, L_sup, N, D)]


def test_fit_recovers_the_losses_of_a_law_generated_grid():
    L_T, L_sup, N, D = _grid()
    L_S = distillation_law(L_T, L_sup, N, D, TRUE)
    fit = fit_distillation_law(L_T, L_sup, N, D, L_S)
    assert fit.ok and fit.rmse_pct < 0.05
    # held out: fit without the strongest teacher, predict its students
    keep = L_T > 1.6
    part = fit_distillation_law(L_T[keep], L_sup[keep], N[keep], D[keep], L_S[keep])
    err = np.abs(part.predict(L_T[~keep], L_sup[~keep], N[~keep], D[~keep]) - L_S[~keep]) / L_S[~keep]
    assert err.max() < 0.01


def test_the_law_has_the_teacher_as_its_floor_and_falls_with_student_size_and_data():
    p = TRUE
    base = distillation_law(2.0, 2.4, 5e4, 5e5, p)
    assert base > 2.0
    assert distillation_law(2.0, 2.4, 1e5, 5e5, p) < base
    assert distillation_law(2.0, 2.4, 5e4, 1e6, p) < base


def test_too_few_points_exit_as_a_config_error():
    from optrepro.errors import ConfigError
    with pytest.raises(ConfigError, match="points"):
        fit_distillation_law([2.0] * 5, [2.2] * 5, [1e4] * 5, [1e5] * 5, [2.1] * 5)
