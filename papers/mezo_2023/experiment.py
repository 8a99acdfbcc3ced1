"""mezo_2023: one row = one fine-tuning method on the offline prompt task, one seed (common.tasks.zo_finetune:
a byte-level GPT-2 pretrained in the repo and cached per seed, 'which package is this code from' with a
verbalizer, accuracy, measured peak memory and step time). The optimizers are common.zo's, re-exported by method.py."""
from optrepro.tasks.zo_finetune import ZOFinetuneConfig as Config  # noqa: F401
from optrepro.tasks.zo_finetune import preflight, run  # noqa: F401
