"""Logistic regression with gradient descent (LR+GD) on a separable dataset, and the batch perceptron
it reduces to as the step size grows (Tyurin 2024, arXiv:2412.08424).

Data: rows a_i in R^d with labels y_i in {-1, +1}; margins m_i(w) = y_i <a_i, w>.

    f(w)     = (1/n) sum_i log(1 + exp(-m_i(w)))                        (logistic loss)
    grad f   = -(1/n) sum_i y_i a_i sigmoid(-m_i(w))
    LR+GD:     w_{t+1} = w_t - gamma grad f(w_t),  w_0 = 0

Write w_t = gamma v_t. Then sigmoid(-gamma m_i(v_t)) -> 1 if m_i(v_t) < 0, 0 if > 0, 1/2 if = 0 as
gamma -> infinity, so v_t follows the batch perceptron

    v_{t+1} = v_t + (1/n) sum_i y_i a_i h(m_i(v_t)),  h(m) = 1[m < 0] + 1/2 1[m = 0],  v_0 = 0,

which adds the misclassified points (and, at v_0 = 0, half of every point) until every margin is
positive. The classification problem is solved at the first t with min_i m_i(w_t) > 0; the logistic
loss there is what the paper calls an unreliable measure of progress (large gamma: high loss, fast
separation). Float64 throughout, the loss in its overflow-free form softplus(-m)."""
from __future__ import annotations

import torch


def margins(A: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return y * (A @ w)


def loss_of_margins(m: torch.Tensor) -> float:
    """The logistic loss from the margins: mean softplus(-m)."""
    return float(torch.nn.functional.softplus(-m).mean())


def logistic_loss(A, y, w) -> float:
    return loss_of_margins(margins(A, y, w))


def logistic_grad(A, y, w) -> torch.Tensor:
    return -(A.T @ (y * torch.sigmoid(-margins(A, y, w)))) / len(y)


def perceptron_direction(A, y, v) -> torch.Tensor:
    """(1/n) sum_i y_i a_i h(m_i(v)): the batch perceptron's step."""
    m = margins(A, y, v)
    h = (m < 0).to(A.dtype) + 0.5 * (m == 0).to(A.dtype)
    return (A.T @ (y * h)) / len(y)


def lr_gd(A, y, gamma: float, iters: int):
    """LR+GD from w_0 = 0: yields (t, w_t) for t = 0..iters."""
    w = torch.zeros(A.shape[1], dtype=A.dtype)
    yield 0, w
    for t in range(1, iters + 1):
        w = w - gamma * logistic_grad(A, y, w)
        yield t, w


def batch_perceptron(A, y, iters: int):
    """The batch perceptron from v_0 = 0: yields (t, v_t); stops moving once every margin is positive."""
    v = torch.zeros(A.shape[1], dtype=A.dtype)
    yield 0, v
    for t in range(1, iters + 1):
        v = v + perceptron_direction(A, y, v)
        yield t, v


def separated(A, y, w) -> bool:
    return bool(margins(A, y, w).min() > 0)
