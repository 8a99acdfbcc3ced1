"""Language-model pretraining at mini scale: a tiny GPT on character-level pydoc text
(common.tasks.charlm), one row, one seed. Optimizers are named in the config and resolved through
the registry (each paper's paper.yaml), so other papers' optimizers are compared by name, never
imported."""
from common.tasks import charlm, preflight  # noqa: F401 (the runner calls preflight)

Config = charlm.CharLMConfig


def run(cfg: Config, ctx) -> dict:
    return charlm.run(cfg, ctx)
