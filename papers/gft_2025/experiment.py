"""gft_2025: one row = one sampling setting, one seed (common.tasks.guidance): a model trained with CFG's
label dropout or with Guidance-Free Training (cached per seed), sampled with CFG at scale γ (two
evaluations per step) or at GFT temperature β (one); sample metrics, including the distance to what the
exact model gives under CFG at γ (= 1 / β for GFT rows). The GFT loss is
common.diffusion.models.gft_loss, re-exported by method.py."""
from optrepro.diffusion.figures import samples_figure as report_extra  # noqa: F401  (the report's sample figure)
from optrepro.tasks.guidance import GuidanceConfig as Config  # noqa: F401
from optrepro.tasks.guidance import preflight, run  # noqa: F401
