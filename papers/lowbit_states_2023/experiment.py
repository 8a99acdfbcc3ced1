"""One row, one seed: the shared tiny-GPT language-model task with any registered optimizer (the
quantized-state AdamW is registered by this paper as 'lowbit_adamw') and memory measured after
training (common.tasks.charlm.run_measuring_memory)."""
from optrepro.tasks.charlm import CharLMConfig as Config  # noqa: F401
from optrepro.tasks.charlm import preflight  # noqa: F401
from optrepro.tasks.charlm import run_measuring_memory as run  # noqa: F401
