"""adaptive_guidance_2023: one row = one guided-sampling setting, one seed (common.tasks.guidance: a label-dropout
model trained once per seed and cached, a guidance rule, a sampler and a time grid; sample metrics).
The guidance rule itself is in common/diffusion/guidance.py (AdaptiveGuidance), re-exported by method.py."""
from optrepro.diffusion.figures import samples_figure as report_extra  # noqa: F401  (the report's sample figure)
from optrepro.tasks.guidance import GuidanceConfig as Config  # noqa: F401
from optrepro.tasks.guidance import preflight, run  # noqa: F401
