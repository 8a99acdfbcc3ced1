"""diffGrad experiments: one row, one seed. Image classification (common.tasks.classify): CIFAR-10
at full scale, digits and mnist1d CNNs at mini scale. The optimizer `diffgrad` comes from
method.py through paper.yaml's `optimizers:` entry."""
from optrepro.tasks import classify, preflight  # noqa: F401 (the runner calls preflight)

Config = classify.ClassifyConfig


def run(cfg: Config, ctx) -> dict:
    return classify.run(cfg, ctx)
