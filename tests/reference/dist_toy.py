"""The toy problem the local-SGD reference tests share: a small float64 classifier, each worker's
batch a function of (worker, step), inner AdamW."""
import torch
from torch import nn

INNER = dict(lr=3e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def loss_of(model, worker, step):
    g = torch.Generator().manual_seed(1000 * worker + step)
    x = torch.randn(8, 6, generator=g, dtype=torch.float64)
    return nn.functional.cross_entropy(model(x), torch.randint(0, 3, (8,), generator=g))


def make_inner(params):
    return torch.optim.AdamW(params, **INNER), None
