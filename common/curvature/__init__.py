"""Curvature pieces the second-order papers share, each tested against a closed form
(tests/reference/test_curvature.py):

- hvp / hvp_fwd: Hessian-vector products by double backward and by forward-over-reverse;
- rademacher, hutchinson_diag, hutchinson_trace: stochastic diagonal and trace estimates;
- ggn_vp: Gauss-Newton (= Fisher, for exponential-family losses) vector products J^T H_L J v;
- gn_direction: the Levenberg-Marquardt (regularized Gauss-Newton) direction in the outputs' space;
- sampled_label_loss: the loss on labels drawn from the model (Gauss-Newton-Bartlett estimates);
- sym_power, inverse_root_newton: powers and inverse p-th roots of symmetric PSD matrices (eigh, and
  the coupled Newton iteration), with damping;
- cubic_step: the cubic-regularized Newton step argmin_h <g,h> + h^T H h / 2 + M ||h||^3 / 6;
- Lazy: a value recomputed every k steps (a reused Hessian or preconditioner) and its count;
- shampoo.Shampoo (blocked, grafted Shampoo with eigh or coupled-Newton roots, one-sided variants) and
  soap.SOAP (Adam in Shampoo's eigenbasis), each equal to pytorch-optimizer's step by step;
  optimizers.build makes either from a task's optim config.
"""
from .core import (Lazy, cubic_step, ggn_vp, gn_direction, hutchinson_diag, hutchinson_trace, hvp, hvp_fwd,  # noqa: F401
                   inverse_root_newton, rademacher, sampled_label_loss, sym_power)
