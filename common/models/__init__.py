"""Models shared by papers: build(name, in_shape, num_classes, **kw)."""
from optrepro.models.vision import MLP, SmallCNN, build, resnet20, resnet34_cifar
from optrepro.models.lm import tiny_gpt

__all__ = ["MLP", "SmallCNN", "build", "resnet20", "resnet34_cifar", "tiny_gpt"]
