"""implicit_diff_2022 experiments: one row, one seed, run by the shared bilevel task (common.tasks.bilevel):
hypergradients and algorithms from common.bilevel, so every bilevel paper's table uses the same
problems, baselines and oracle counting."""
from optrepro.tasks import bilevel, preflight  # noqa: F401 (the runner calls preflight)

Config = bilevel.BilevelConfig


def run(cfg: Config, ctx) -> dict:
    return bilevel.run(cfg, ctx)
