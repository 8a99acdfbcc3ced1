"""unconditional_priors_2025: one row = one guided-sampling setting, one seed (common.tasks.guidance: a
fine-tuned label-dropout model, an unconditional branch that is its own, another model's or the exact
one, a guidance rule, a sampler and a time grid; sample metrics, including the distance to what a
perfect model gives under the same rule). The swap itself is common.diffusion.models.UncondSwap,
re-exported by method.py."""
from optrepro.diffusion.figures import samples_figure as report_extra  # noqa: F401  (the report's sample figure)
from optrepro.tasks.guidance import GuidanceConfig as Config  # noqa: F401
from optrepro.tasks.guidance import preflight, run  # noqa: F401
