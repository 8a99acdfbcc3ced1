"""Classification datasets as tensors.

- digits: sklearn's 8x8 digits (shipped with scikit-learn), 1x8x8 images, 10 classes.
- mnist1d: generated with mnist1d's `make_dataset` (never its download path), 1x40 signals.
- synthetic: a seeded Gaussian-blob classification problem.
- cifar10 (full scale): torchvision's CIFAR10 from $OPTREPRO_DATA/cifar10, download=False.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from optrepro.errors import DataMissing, UsageError


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    in_shape: tuple
    x_val: torch.Tensor | None = None
    """A validation set carved out of the training set (`holdout`), for choosing hyper-parameters."""
    y_val: torch.Tensor | None = None

    def __post_init__(self):
        assert len(self.x_train) == len(self.y_train) and len(self.x_test) == len(self.y_test)

    def holdout(self, frac: float, seed: int) -> "Split":
        """The same split with `frac` of the training examples moved to a validation set (a seeded
        permutation, so every row of a table that shares the seed holds out the same examples)."""
        if not 0.0 < frac < 1.0:
            raise UsageError(f"val_frac must be in (0, 1), got {frac}")
        g = torch.Generator().manual_seed(10_007 + int(seed))
        idx = torch.randperm(len(self.x_train), generator=g)
        n_val = max(1, int(round(frac * len(idx))))
        va, tr = idx[:n_val], idx[n_val:]
        return Split(self.x_train[tr], self.y_train[tr], self.x_test, self.y_test, self.num_classes,
                     self.in_shape, self.x_train[va], self.y_train[va])


def data_root() -> Path:
    return Path(os.environ.get("OPTREPRO_DATA", Path.home() / ".cache" / "optrepro"))


def _split(x: np.ndarray, y: np.ndarray, test_frac: float, seed: int):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_test = int(round(len(x) * test_frac))
    te, tr = idx[:n_test], idx[n_test:]
    return x[tr], y[tr], x[te], y[te]


def digits(seed: int = 0, test_frac: float = 0.25) -> Split:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # N,1,8,8 in [0,1]
    x = (x - 0.5) / 0.5
    xtr, ytr, xte, yte = _split(x, d.target.astype(np.int64), test_frac, seed)
    return Split(*(torch.from_numpy(a) for a in (xtr, ytr, xte, yte)), num_classes=10, in_shape=(1, 8, 8))


def mnist1d(seed: int = 0, num_samples: int = 4000) -> Split:
    """mnist1d generated locally: the dataset's own train/test split (80/20)."""
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = 42  # the dataset's canonical seed: the data are fixed, run seeds vary the training
    d = make_dataset(args)
    xtr, xte = (np.asarray(d[k], dtype=np.float32)[:, None] for k in ("x", "x_test"))
    mu, sd = xtr.mean(), xtr.std()
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    ytr, yte = (np.asarray(d[k], dtype=np.int64) for k in ("y", "y_test"))
    return Split(*(torch.from_numpy(a) for a in (xtr, ytr, xte, yte)), num_classes=10, in_shape=(1, xtr.shape[-1]))


def synthetic(seed: int = 0, n: int = 2000, dim: int = 20, classes: int = 4) -> Split:
    g = torch.Generator().manual_seed(1000 + seed)
    centers = torch.randn(classes, dim, generator=g) * 1.5
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, dim, generator=g)
    k = int(n * 0.8)
    return Split(x[:k], y[:k], x[k:], y[k:], classes, (dim,))


CIFAR10_HELP = (
    "CIFAR-10 is not on disk at {root}. Download it (about 170 MB) with\n"
    "  python -c \"import torchvision; torchvision.datasets.CIFAR10('{root}', download=True)\"\n"
    "or fetch https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it into {root}\n"
    "(set OPTREPRO_DATA to use another cache directory)."
)


def cifar10_root() -> Path:
    return data_root() / "cifar10"


def cifar10_available() -> bool:
    return (cifar10_root() / "cifar-10-batches-py" / "data_batch_1").exists()


def require_cifar10() -> None:
    if not cifar10_available():
        raise DataMissing(CIFAR10_HELP.format(root=cifar10_root()))


def cifar10(seed: int = 0) -> Split:
    """Full scale: the standard torchvision loader, normalized tensors (augmentation is the trainer's)."""
    require_cifar10()
    import torchvision
    out = []
    for train in (True, False):
        ds = torchvision.datasets.CIFAR10(str(cifar10_root()), train=train, download=False)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor([0.4914, 0.4822, 0.4465])[:, None, None]
        std = torch.tensor([0.2470, 0.2435, 0.2616])[:, None, None]
        out += [(x - mean) / std, torch.tensor(ds.targets)]
    return Split(*out, num_classes=10, in_shape=(3, 32, 32))


MNIST_HELP = ("MNIST is not on disk (looked for {root}/MNIST/raw/train-images-idx3-ubyte). Full-scale "
              "hyper-cleaning uses it: fetch it once with torchvision.datasets.MNIST('{root}', download=True) "
              "on a machine with network, or set OPTREPRO_DATA to where it lives.")


def mnist_root() -> Path:
    return data_root() / "mnist"


def require_mnist() -> None:
    if not (mnist_root() / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        raise DataMissing(MNIST_HELP.format(root=mnist_root()))


def mnist(seed: int = 0) -> Split:
    """Full scale: the standard torchvision loader, pixels scaled to [-1, 1]."""
    require_mnist()
    import torchvision
    out = []
    for train in (True, False):
        ds = torchvision.datasets.MNIST(str(mnist_root()), train=train, download=False)
        out += [(ds.data.float()[:, None] / 255.0 - 0.5) / 0.5, ds.targets.clone()]
    return Split(*out, num_classes=10, in_shape=(1, 28, 28))


IMAGENET_HELP = (
    "ImageNet (ILSVRC-2012) is not on disk at {root}. It cannot be downloaded automatically: get it from\n"
    "https://image-net.org/download.php and arrange it as {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG\n"
    "(torchvision ImageFolder layout; set OPTREPRO_DATA to use another cache directory)."
)


def require_imagenet() -> None:
    root = data_root() / "imagenet"
    if not ((root / "train").is_dir() and (root / "val").is_dir()):
        raise DataMissing(IMAGENET_HELP.format(root=root))


def imagenet(seed: int = 0) -> Split:
    require_imagenet()
    raise UsageError("ImageNet is on disk, but training on it needs a streaming loader, which common/data "
                     "does not have yet (the in-memory Split holds small datasets only)")


DATASETS = {"digits": digits, "mnist1d": mnist1d, "synthetic": synthetic, "cifar10": cifar10,
            "imagenet": imagenet, "mnist": mnist}
FULL_SCALE_CHECKS = {"cifar10": require_cifar10, "imagenet": require_imagenet, "mnist": require_mnist}


def load(name: str, seed: int = 0) -> Split:
    if name not in DATASETS:
        from optrepro.config import closest
        raise UsageError(f"unknown dataset '{name}'{closest(name, DATASETS)}; valid: {', '.join(DATASETS)}")
    return DATASETS[name](seed=seed)


def check_available(name: str) -> None:
    """Preflight: raise DataMissing (exit 2) for a full-scale dataset that is not on disk."""
    if name not in DATASETS:
        from optrepro.config import closest
        raise UsageError(f"unknown dataset '{name}'{closest(name, DATASETS)}; valid: {', '.join(DATASETS)}")
    if name in FULL_SCALE_CHECKS:
        FULL_SCALE_CHECKS[name]()
