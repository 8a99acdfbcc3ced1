"""Schedule-free experiments: one row, one seed. Classification (common.tasks.classify); the
optimizers `sgd_schedulefree` and `adamw_schedulefree` come from method.py through paper.yaml.
The trainer calls opt.train()/opt.eval() around every evaluation, so schedule-free rows are
evaluated at the averaged point x, as the paper prescribes."""
from optrepro.tasks import classify, preflight  # noqa: F401 (the runner calls preflight)

Config = classify.ClassifyConfig


def run(cfg: Config, ctx) -> dict:
    return classify.run(cfg, ctx)
