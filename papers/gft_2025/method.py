"""Guidance-Free Training (Chen, Jiang, Zheng, Chen, Su and Zhu 2025). CFG samples with
ε^s = ε^u + γ (ε^c - ε^u); with β = 1 / γ this says ε^c = β ε^s + (1 - β) ε^u. GFT trains the sampling
model ε^s_θ(x | c, β) directly (β is an input) through that identity, with the ordinary denoising loss
on the implicit conditional model and a stop-gradient on the unconditional branch:

    L = E || β ε_θ(x_t | c, β) + (1 - β) sg[ε_θ(x_t | ∅)] - ε ||²,   β ~ U[0, 1],

and with probability p_uncond the label is dropped (c = ∅, β = 1: the unconditional loss). Sampling at
temperature β takes one evaluation per step, ε_θ(x_t | c, β), and targets CFG at γ = 1 / β.
common.diffusion.models: gft_loss (the loss), gft_implied (the implicit conditional model),
AtTemperature (a trained network sampled at β)."""
from optrepro.diffusion.models import AtTemperature, gft_implied  # noqa: F401
from optrepro.diffusion.models import gft_loss as Method  # noqa: F401
