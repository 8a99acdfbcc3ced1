"""innaprop_2024: INNAprop against its update written out literally from the paper's equations
(psi_0 = (1 - alpha beta) theta_0), in float64 at every step, and against its RMSprop reduction at
alpha beta = 1."""
import pytest
import torch

from optrepro.papers.innaprop_2024.method import INNAprop
from tests.reference.lockstep import lockstep

pytestmark = pytest.mark.reference


class LiteralINNAprop:
    def __init__(self, params, lr, alpha, beta, sigma, eps, weight_decay):
        self.params, self.h = params, (lr, alpha, beta, sigma, eps, weight_decay)
        self.v = [torch.zeros_like(p) for p in params]
        self.psi = [(1 - alpha * beta) * p.detach().clone() for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        lr, a, b, s, eps, wd = self.h
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad
            theta = (1 - lr * wd) * p.detach()
            self.v[i] = s * self.v[i] + (1 - s) * g * g
            v_hat = self.v[i] / (1 - s ** self.t)
            self.psi[i] = (1 - lr / b) * self.psi[i] + lr * (1 / b - a) * theta
            new = ((1 + lr * (1 - a * b) / (b - lr)) * theta - lr / (b - lr) * self.psi[i]
                   - lr * b * g / (v_hat.sqrt() + eps))
            p.copy_(new)


@pytest.mark.parametrize("kw", [dict(alpha=0.1, beta=0.9, weight_decay=0.01), dict(alpha=2.0, beta=2.0, weight_decay=0.0),
                                dict(alpha=0.5, beta=1.0, weight_decay=0.1, sigma=0.9)])
def test_innaprop_equals_its_equations_at_every_step(kw):
    full = dict(lr=0.01, alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.01) | kw
    lockstep(lambda p: INNAprop(p, **full), lambda p: LiteralINNAprop(p, **full), atol=1e-11, rtol=1e-9)


def test_alpha_beta_one_is_rmsprop_with_bias_correction():
    class BiasCorrectedRMSprop:
        def __init__(self, params, lr, sigma, eps):
            self.params, self.lr, self.s, self.eps = params, lr, sigma, eps
            self.v = [torch.zeros_like(p) for p in params]
            self.t = 0

        @torch.no_grad()
        def step(self):
            self.t += 1
            for i, p in enumerate(self.params):
                self.v[i] = self.s * self.v[i] + (1 - self.s) * p.grad ** 2
                p.sub_(self.lr * p.grad / ((self.v[i] / (1 - self.s ** self.t)).sqrt() + self.eps))

    lockstep(lambda p: INNAprop(p, lr=0.01, alpha=0.5, beta=2.0, sigma=0.99, weight_decay=0.0),
             lambda p: BiasCorrectedRMSprop(p, lr=0.02, sigma=0.99, eps=1e-8), atol=1e-11, rtol=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="lr must be < beta"):
        INNAprop([torch.zeros(2)], lr=1.0, beta=0.9)
    with pytest.raises(ValueError, match="sigma"):
        INNAprop([torch.zeros(2)], sigma=1.0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        INNAprop([torch.zeros(2)], beta=0.0)
