"""A small diffusion and flow-matching stack for the diffusion-guidance papers.

- process.py: forward processes (VP diffusion, rectified flow), prediction conversions, time grids.
- samplers.py: DDIM, ancestral DDPM, Euler / midpoint / Heun in t, EDM's Heun; counts evaluations.
- guidance.py: the guidance-rule interface and CFG, CFG-Zero*, APG, Adaptive Guidance.
- mixture.py: class-conditional Gaussian mixtures with exact posterior means (a perfect model).
- models.py: MLP and diffusers-UNet denoisers trained with label dropout, cached per (spec, seed).
- metrics.py: digits-classifier FD / precision / recall / accuracy, saturation, sliced W2, likelihood.
"""
