"""maid_2023 experiments: one row, one seed, run by the shared bilevel task (common.tasks.bilevel):
MAID and its fixed-step baseline are common.bilevel algorithms (`maid`, `inexact_gd`), compared at
equal oracle calls with the true upper objective tracked outside the budget."""
from optrepro.tasks import bilevel, preflight  # noqa: F401 (the runner calls preflight)

Config = bilevel.BilevelConfig


def run(cfg: Config, ctx) -> dict:
    return bilevel.run(cfg, ctx)
