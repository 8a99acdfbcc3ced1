"""Sample-quality metrics for the guidance tables.

Digits (1x8x8 in [-1, 1]) are judged by a small CNN trained here on the train split of sklearn's
digits (fixed seed, cached; test accuracy is returned with it): Fréchet distance between the
penultimate-layer features of samples and of the held-out test images (`fd`), k-NN manifold precision
and recall in that feature space (Kynkäänniemi et al. 2019, k = 3), the fraction of samples it
classifies as their intended class (`accuracy`), and saturation: the fraction of pixel values more
than 0.1 outside [-1, 1] before clipping (`clip_frac`; the data's background sits at exactly -1, so
a margin keeps sampling noise out), the mean excess |x| - 1 beyond the range (`overshoot`) and the mean
|pixel| after clipping. 2-D mixtures are judged exactly: mean
log-density under the intended class, sliced Wasserstein-2 distance to exact samples, and the share of
samples within 3 std of one of their class's modes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from optrepro.io import cached_torch


class DigitsClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.features(x))


def _train_classifier(cache_path, epochs: int = 30) -> dict:
    from optrepro import checkpoint
    from optrepro.diffusion.models import digits_tensors
    torch.manual_seed(0)
    x, y = digits_tensors("train")
    xt, yt = digits_tensors("test")
    net = DigitsClassifier()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in checkpoint.cached_steps(epochs, {"net": net, "opt": opt, "gen": gen}, cache_path):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            xb = (x[b] + 0.05 * torch.randn(x[b].shape, generator=gen)).clamp(-1, 1)  # light noise: robust to samples
            loss = nn.functional.cross_entropy(net(xb), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = float((net(xt).argmax(1) == yt).float().mean())
    return {"state": net.state_dict(), "test_accuracy": acc}


def digits_classifier(root) -> tuple[DigitsClassifier, float]:
    from pathlib import Path
    path = Path(root) / "_cache" / "digits_classifier_v1.pt"
    blob = cached_torch(path, lambda: _train_classifier(path))
    net = DigitsClassifier()
    net.load_state_dict(blob["state"])
    net.eval()
    return net, blob["test_accuracy"]


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """||μ1 - μ2||² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½) between Gaussians fitted to two feature sets."""
    from scipy import linalg
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m1, m2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    cov, _ = linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(cov).all():
        off = np.eye(len(s1)) * 1e-6
        cov = linalg.sqrtm((s1 + off) @ (s2 + off))
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * cov.real))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Share of fake points inside the real manifold (union of k-NN balls of real points), and vice versa."""
    real, fake = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)

    def radii(a):
        d = torch.cdist(a, a)
        return d.kthvalue(k + 1, dim=1).values  # the point itself is at distance 0

    def inside(points, centers, r):
        return (torch.cdist(points, centers) <= r[None]).any(1).double().mean().item()

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def sliced_wasserstein(a, b, projections: int = 256, seed: int = 0) -> float:
    """Sliced W2 between equal-size point sets: sqrt of the mean over random directions of W2² in 1-D."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if len(a) != len(b):
        raise ValueError("sliced_wasserstein needs equal-size sets")
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    d /= d.norm(dim=0, keepdim=True)
    pa, pb = (a @ d).sort(0).values, (b @ d).sort(0).values
    return float(((pa - pb) ** 2).mean().sqrt())


def classwise_sw(x, ref, labels) -> float:
    """Mean over the classes in `labels` of the sliced W2 between x and ref restricted to that class
    (x[i] and ref[i] share labels[i])."""
    cs = labels.unique().tolist()
    return sum(sliced_wasserstein(x[labels == c], ref[labels == c]) for c in cs) / len(cs)


def class_accuracy(x, labels, mix) -> float:
    """Share of samples the exact classifier of the mixture assigns to their intended class (NaN if any sample
    is not finite)."""
    if not torch.isfinite(x).all():
        return float("nan")
    with torch.no_grad():
        post = torch.stack([mix.class_log_posterior(x, torch.full_like(labels, c)) for c in range(mix.n_classes)], 1)
    return float((post.argmax(1) == labels).double().mean())


def digits_metrics(samples: torch.Tensor, labels: torch.Tensor, root) -> dict:
    from optrepro.diffusion.models import digits_tensors
    clf, _ = digits_classifier(root)
    xt, _ = digits_tensors("test")
    raw = samples.float()
    x = raw.clamp(-1, 1)
    with torch.no_grad():
        fr, ff = clf.features(xt).numpy(), clf.features(x).numpy()
        pred = clf.head(torch.as_tensor(ff)).argmax(1)
    prec, rec = precision_recall(fr, ff)
    return {"fd": frechet_distance(fr, ff), "precision": prec, "recall": rec,
            "accuracy": float((pred == labels).float().mean()),
            "clip_frac": float((raw.abs() > 1.1).float().mean()),
            "overshoot": float((raw.abs() - 1).clamp_min(0).mean()), "mean_abs": float(x.abs().mean())}


def mixture_metrics(samples: torch.Tensor, labels: torch.Tensor, mix, gen: torch.Generator) -> dict:
    x = samples.double()
    if not torch.isfinite(x).all():
        return {"loglik": float("nan"), "sw": float("nan"), "in_mode": float("nan")}
    ref = mix.sample(labels, gen)
    own = (mix.labels[None, :] == labels[:, None]) | (labels[:, None] == mix.n_classes)  # no label: any mode
    d = (x[:, None, :] - mix.means[None]).norm(dim=-1) / mix.stds[None]
    in_mode = ((d <= 3) & own).any(1).double().mean()
    return {"loglik": float(mix.log_prob(x, labels).mean()), "sw": classwise_sw(x, ref, labels),
            "in_mode": float(in_mode)}
