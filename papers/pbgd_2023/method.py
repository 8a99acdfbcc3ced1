"""V-PBGD (Shen & Chen 2023): penalize the lower-level optimality gap with the value function
v(x) = min_z g(x, z):

    min_{x, y}  f(x, y) + gamma (g(x, y) - v(x)),   grad_x v(x) = g_x(x, z*)   (Danskin)

Each iteration: z <- T gradient steps on g(x, .); (x, y) <- (x, y) - alpha grad of the penalty.
No lower-level strong convexity is needed. The loop is common.bilevel's `v_pbgd`.
"""
from optrepro.bilevel import penalty_grads  # noqa: F401
from optrepro.bilevel.algorithms import v_pbgd  # noqa: F401
