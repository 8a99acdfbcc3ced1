"""TODO: one row, one seed. The template trains a small classifier (common.tasks.classify);
replace or extend with what the paper's tables need, keeping run(cfg, ctx) -> dict[str, float]."""
from optrepro.tasks import classify

Config = classify.ClassifyConfig
preflight = classify.preflight


def run(cfg: Config, ctx) -> dict:
    return classify.run(cfg, ctx)
