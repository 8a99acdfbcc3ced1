"""Identifying Policy Gradient Subspaces (Schneider, Schumacher, Guist, Chen, Häufle, Schölkopf and Büchler 2024): the
top-k Hessian eigenspace of an actor or critic loss, the share of the gradient in it and the overlap
of two such subspaces (common.rl.subspace)."""
from optrepro.rl.subspace import gradient_fraction, hessian_and_grad, overlap, top_subspace  # noqa: F401
from optrepro.rl.subspace import top_subspace as Method  # noqa: F401
