"""Class-conditional isotropic Gaussian mixtures: the data where every answer is in closed form.

Under x_t = α x0 + σ ε, component k (mean μ_k, std s_k) becomes N(α μ_k, (α² s_k² + σ²) I), so the
noisy marginal of a class, and of all classes together, is again a mixture. Its posterior mean
E[x0 | x_t] (hence ε̂, the score -ε̂/σ and the velocity) is exact: `ExactDenoiser` is a perfect model
with the same call signature as the trained networks, with class index `n_classes` meaning "no label".
"""
from __future__ import annotations

import math

import torch

from optrepro.diffusion.process import Process


class GaussianMixture:
    def __init__(self, means, stds, weights, labels, n_classes: int):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.stds = torch.as_tensor(stds, dtype=torch.float64)
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.n_classes = n_classes
        self.dim = self.means.shape[1]
        for c in range(n_classes):
            if not (self.labels == c).any():
                raise ValueError(f"class {c} has no component")

    @classmethod
    def ring(cls, n_modes: int = 8, radius: float = 2.0, std: float = 0.3, n_classes: int = 4):
        """n_modes equal Gaussians on a circle; class c owns the adjacent modes c·m .. c·m + m - 1 (m = n_modes / n_classes)."""
        ang = torch.arange(n_modes, dtype=torch.float64) * 2 * math.pi / n_modes
        means = torch.stack([radius * torch.cos(ang), radius * torch.sin(ang)], 1)
        return cls._equal_modes(means, std, n_classes)

    @classmethod
    def sphere(cls, dim: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.3, n_classes: int = 4,
               seed: int = 123):
        """n_modes equal Gaussians whose means are random directions (seeded) at `radius` in `dim`
        dimensions: a mixture of image-like dimension; class c owns modes c·m .. c·m + m - 1."""
        g = torch.Generator().manual_seed(seed)
        means = torch.randn(n_modes, dim, generator=g, dtype=torch.float64)
        means = radius * means / means.norm(dim=1, keepdim=True)
        return cls._equal_modes(means, std, n_classes)

    @classmethod
    def _equal_modes(cls, means, std: float, n_classes: int):
        """Equal-weight, equal-std modes; class c owns the m = n_modes / n_classes consecutive modes c·m .. c·m + m - 1."""
        n_modes = len(means)
        if n_modes % n_classes:
            raise ValueError(f"n_modes={n_modes} is not a multiple of n_classes={n_classes}")
        labels = torch.arange(n_modes) // (n_modes // n_classes)
        return cls(means, torch.full((n_modes,), std), torch.ones(n_modes), labels, n_classes)

    def component_weights(self, c):
        """[n, M] mixture weights of each sample's class (c = n_classes: all classes, uniform class prior)."""
        c = torch.as_tensor(c).reshape(-1)
        w = self.weights.expand(len(c), -1).clone()
        own = self.labels[None, :] == c[:, None]
        uncond = c == self.n_classes
        w = torch.where(own | uncond[:, None], w, torch.zeros_like(w))
        per_class = torch.zeros(len(c), self.n_classes, dtype=w.dtype).index_add_(1, self.labels, w)
        class_tot = per_class.gather(1, self.labels.expand(len(c), -1))  # within-class normaliser
        w = torch.where(w > 0, w / class_tot, w)
        return w / w.sum(1, keepdim=True)

    def sample(self, c, gen: torch.Generator) -> torch.Tensor:
        w = self.component_weights(c)
        k = torch.multinomial(w, 1, generator=gen).squeeze(1)
        z = torch.randn(len(k), self.dim, generator=gen, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    def _log_comp(self, x, a, s):
        var = a * a * self.stds ** 2 + s * s  # [n, M]
        d2 = ((x[:, None, :] - a[..., None] * self.means[None]) ** 2).sum(-1)
        return -0.5 * d2 / var - 0.5 * self.dim * torch.log(2 * math.pi * var)

    def log_prob(self, x, c, alpha=1.0, sigma=0.0) -> torch.Tensor:
        """log p_t(x | c) of the noisy marginal (t = 0 by default: the data density)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        a, s = [torch.as_tensor(v, dtype=torch.float64).reshape(-1, 1) for v in (alpha, sigma)]
        w = self.component_weights(c)
        return torch.logsumexp(torch.log(w.clamp_min(1e-300)) + self._log_comp(x, a, s), 1)

    def class_log_posterior(self, x, c) -> torch.Tensor:
        """log p(c | x) of clean data x under a uniform class prior (differentiable in x): the exact classifier."""
        c = torch.as_tensor(c).reshape(-1).expand(len(x))
        null = torch.full_like(c, self.n_classes)
        return self.log_prob(x, c) - self.log_prob(x, null) - math.log(self.n_classes)

    def posterior_mean(self, x, t, c, process: Process) -> torch.Tensor:
        """E[x0 | x_t = x, c], exactly."""
        x = torch.as_tensor(x, dtype=torch.float64)
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(len(x))
        a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]
        logr = torch.log(self.component_weights(c).clamp_min(1e-300)) + self._log_comp(x, a, s)
        r = torch.softmax(logr, 1)  # [n, M] responsibilities
        gain = a * self.stds ** 2 / (a * a * self.stds ** 2 + s * s)  # [n, M]
        mk = self.means[None] + gain[..., None] * (x[:, None, :] - a[..., None] * self.means[None])
        return (r[..., None] * mk).sum(1)


class ExactDenoiser(torch.nn.Module):
    """A perfect model of a GaussianMixture: forward(x, t, c) -> the exact prediction of type `param`."""

    def __init__(self, mixture: GaussianMixture, process: Process, param: str):
        super().__init__()
        self.mixture, self.process, self.param = mixture, process, param
        self.n_classes, self.has_uncond = mixture.n_classes, True

    def forward(self, x, t, c):
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(len(x))
        x0 = self.mixture.posterior_mean(x, t, c, self.process)
        a, s = self.process.alpha(t)[:, None], self.process.sigma(t)[:, None]
        eps = (x.double() - a * x0) / s.clamp_min(1e-300)
        return self.process.join(x0, eps, x.double(), t, self.param).to(x.dtype)
