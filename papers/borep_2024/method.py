"""BO-REP (Hao, Gong & Liu 2024). Per iteration t:
    lower level: at t = 0 refine y with `init_steps` GD steps; afterwards every `period`
                 iterations run `inner_steps` GD steps (periodic updates, y fixed in between);
    linear system: v <- v - nu (g_yy v - f_y)          (one step toward g_yy^{-1} f_y)
    hypergradient: h = f_x - g_xy v;   m <- beta m + (1 - beta) h
    upper level:   x <- x - lr * m / ||m||              (normalized momentum)
The loop is common.bilevel's `bo_rep`; the baselines it is compared with are there too.
"""
from optrepro.bilevel.algorithms import bo_rep  # noqa: F401
