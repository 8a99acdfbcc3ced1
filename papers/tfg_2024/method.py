"""TFG (Ye et al. 2024): training-free guidance as one algorithm,
common.diffusion.tfg.tfg_sample with hyper-parameters TFGParams (ρ: variance guidance through the model,
μ and iters: mean guidance on x̂0, σ̄ and mc: implicit dynamics, recur: recurrence), and the paper's
hyper-parameter search, common.diffusion.tfg.beam_search. DPS, LGD, FreeDoM, MPGD and UGD are settings."""
from optrepro.diffusion.tfg import TFGParams, beam_search  # noqa: F401
from optrepro.diffusion.tfg import tfg_sample as Method  # noqa: F401
