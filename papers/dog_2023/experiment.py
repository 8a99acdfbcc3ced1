"""DoG experiments: one row, one seed. Classification (common.tasks.classify); `dog` and `ldog`
come from method.py through paper.yaml. DoG evaluates its polynomially averaged iterate: the
trainer switches the optimizer to eval mode before evaluating, which swaps the average in."""
from optrepro.tasks import classify, preflight  # noqa: F401 (the runner calls preflight)

Config = classify.ClassifyConfig


def run(cfg: Config, ctx) -> dict:
    return classify.run(cfg, ctx)
