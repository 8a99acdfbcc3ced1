"""Lion experiments: one row, one seed.

- imagenet:   image classification, Lion vs AdamW (common.tasks.classify)
- lm:         language modeling, a tiny GPT on pydoc text (common.tasks.charlm)
- batch_size: Lion's advantage over AdamW as the batch grows (classification at fixed epochs)
The optimizer `lion` comes from method.py through paper.yaml's `optimizers:` entry.
"""
from optrepro.tasks import charlm, classify, preflight  # noqa: F401 (the runner calls preflight)

Config = classify.ClassifyConfig
LMConfig = charlm.CharLMConfig


def run(cfg: Config, ctx) -> dict:
    return classify.run(cfg, ctx)


def run_lm(cfg: LMConfig, ctx) -> dict:
    return charlm.run(cfg, ctx)

