"""AdamP experiments: one row, one seed. Classification (common.tasks.classify) with a probe of the
scale-invariant weights: every convolution of the BatchNorm ResNet is followed by BatchNorm, so
its weight is scale-invariant; we record the norm of all of them together before and after
training (`si_norm_init`, `si_norm`) and their ratio, the growth the paper says momentum causes
and AdamP/SGDP prevent."""
import torch

from optrepro.tasks import classify, preflight  # noqa: F401 (the runner calls preflight)

Config = classify.ClassifyConfig


def scale_invariant_norm(model: torch.nn.Module) -> dict:
    """L2 norm of all conv weights, if the model normalizes them (every conv of the ResNets used
    here is followed by BatchNorm); {} for models without BatchNorm."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return {}
    ws = [m.weight.detach() for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]
    return {"si_norm": float(torch.sqrt(sum((w.double() ** 2).sum() for w in ws)))}


def run(cfg: Config, ctx) -> dict:
    out = classify.run(cfg, ctx, probe=scale_invariant_norm)
    if "si_norm" in out:
        out["si_norm_growth"] = out["si_norm"] / out["si_norm_init"]
    return out
