"""simnpo_2024: one row = one unlearning method (NPO+RT or SimNPO at some β, γ) at forget10, one seed, on the offline TOFU-style
benchmark (common.tasks.unlearn_qa: the target and retain models cached per seed, TOFU's metrics,
the trade-off curve in metrics.jsonl, a relearning attack)."""
from optrepro.tasks.unlearn_qa import UnlearnQAConfig as Config  # noqa: F401
from optrepro.tasks.unlearn_qa import preflight, run  # noqa: F401
