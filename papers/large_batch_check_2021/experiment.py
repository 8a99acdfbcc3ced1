"""One row, one seed: a classifier trained with the row's optimizer (common.tasks.classify): the
comparison is in the table config, every row tuned over a learning-rate grid of the same size."""
from optrepro.tasks import classify

Config = classify.ClassifyConfig
preflight = classify.preflight


def run(cfg: Config, ctx) -> dict:
    return classify.run(cfg, ctx)
