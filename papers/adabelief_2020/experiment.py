"""AdaBelief experiments: one row, one seed.

- toy2d:   trajectories on the paper's 2-D toy functions (common.tasks.toy2d)
- cifar10: image classification (common.tasks.classify): CIFAR-10 at full scale,
           digits and mnist1d CNNs at mini scale
The optimizer `adabelief` comes from method.py through paper.yaml's `optimizers:` entry.
"""
from optrepro.tasks import classify, preflight, toy2d  # noqa: F401 (the runner calls preflight)

Config = classify.ClassifyConfig
Toy2DConfig = toy2d.Toy2DConfig


def run(cfg: Config, ctx) -> dict:
    return classify.run(cfg, ctx)


def run_toy(cfg: Toy2DConfig, ctx) -> dict:
    return toy2d.run(cfg, ctx)

