"""Language-model pretraining at mini scale: common.tasks.charlm as it is (a tiny GPT on
character-level pydoc text), one row, one seed. Optimizers are named in the config and resolved
through the registry, so other papers' optimizers are compared by name, never imported."""
from optrepro.tasks.charlm import CharLMConfig as Config, preflight, run  # noqa: F401 (used by the runner)
