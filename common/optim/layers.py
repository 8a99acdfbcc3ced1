"""What a parameter is to the network, for optimizers that treat layers differently (SCALE keeps
momentum only on the output layer; SWAN whitens hidden matrices and leaves embeddings and the head
to Adam) while the registry builds optimizers from the parameters alone.

An optimizer class that defines `model_groups(model)` gets the model's parameters as groups tagged
by `layer_groups` (`optimizer_params` picks that path); any other caller passes plain parameters and
the optimizer falls back to `default_roles` (an nn.Linear-like model: every matrix is (out, in), the
last matrix is the output layer).

Roles:
- `output`: the weight the logits come from (`get_output_embeddings()` of a transformers model;
  with tied embeddings the token embedding is this weight);
- `embedding`: other nn.Embedding weights (token and position tables);
- `matrix`: the weight of a linear map (nn.Linear, transformers' Conv1D, and convolution kernels,
  read as (out, in x kernel) matrices: optimizers flatten every dimension after the first);
- `vector`: everything with one dimension (biases, norm gains).

`in_dim` is the axis of a matrix that indexes the layer's inputs: 1 for nn.Linear's (out, in), 0 for
transformers' Conv1D's (in, out) and for an embedding table (vocab, d), which maps a one-hot input
over the vocabulary to d outputs. Normalizing "each output unit's incoming weights" reduces over it."""
from __future__ import annotations

import torch
from torch import nn

ROLES = ("output", "embedding", "matrix", "vector")


def output_weight(model: nn.Module):
    """The output layer's weight: the first submodule's get_output_embeddings() that returns one."""
    for module in model.modules():
        get = getattr(module, "get_output_embeddings", None)
        if callable(get):
            head = get()
            if head is not None and getattr(head, "weight", None) is not None:
                return head.weight
    return None


def layer_roles(model: nn.Module) -> dict[int, tuple[str, int]]:
    """id(parameter) -> (role, in_dim) for every parameter of `model` (in_dim is -1 for vectors)."""
    head = output_weight(model)
    out: dict[int, tuple[str, int]] = {}
    for module in model.modules():
        w = getattr(module, "weight", None)
        if not isinstance(w, nn.Parameter) or w.ndim < 2 or id(w) in out:
            continue
        if head is not None and w is head:
            out[id(w)] = ("output", 1)  # logits = h W^T: W is (vocab, d) as an nn.Linear
        elif isinstance(module, nn.Embedding):
            out[id(w)] = ("embedding", 0)
        elif type(module).__name__ == "Conv1D":  # transformers' GPT-2 layers store (in, out)
            out[id(w)] = ("matrix", 0)
        else:
            out[id(w)] = ("matrix", 1)
    for p in model.parameters():
        if id(p) not in out:
            out[id(p)] = ("matrix", 1) if p.ndim >= 2 else ("vector", -1)
    return out


def layer_groups(model: nn.Module) -> list[dict]:
    """The model's parameters as groups {params, role, in_dim}, one group per (role, in_dim), in
    the order each first appears (each parameter once, tied weights included)."""
    roles, groups, seen = layer_roles(model), {}, set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        role, in_dim = roles[id(p)]
        groups.setdefault((role, in_dim), {"params": [], "role": role, "in_dim": in_dim})["params"].append(p)
    return list(groups.values())


def default_roles(params: list[torch.Tensor]) -> dict[int, tuple[str, int]]:
    """Roles without the model: vectors for one dimension, nn.Linear-like matrices (in_dim 1)
    otherwise, and the last matrix in order is the output layer (true of a sequential classifier)."""
    out = {id(p): ("vector", -1) if p.ndim < 2 else ("matrix", 1) for p in params}
    mats = [p for p in params if p.ndim >= 2]
    if mats:
        out[id(mats[-1])] = ("output", 1)
    return out


def as_matrix(g: torch.Tensor) -> torch.Tensor:
    """A weight's gradient as a matrix: (out, in x kernel) for a convolution kernel, itself if 2-D."""
    return g if g.ndim == 2 else g.reshape(g.shape[0], -1)


def group_roles(param_groups: list[dict]) -> dict[int, tuple[str, int]]:
    """id(parameter) -> (role, in_dim) for an optimizer's groups: a group's `role`/`in_dim` where it
    was built by `layer_groups`, `default_roles` for the rest."""
    plain = [p for g in param_groups if g.get("role") is None for p in g["params"]]
    out = default_roles(plain)
    for g in param_groups:
        if g.get("role") is not None:
            if g["role"] not in ROLES:
                raise ValueError(f"parameter group role must be one of {', '.join(ROLES)}, got {g['role']!r}")
            for p in g["params"]:
                out[id(p)] = (g["role"], int(g.get("in_dim", 1)))
    return out


class RoleAware:
    """Mixin for a torch.optim.Optimizer that steps parameters by role: `self.roles` (id(parameter)
    -> (role, in_dim), `group_roles`) kept up to date as groups are added, and `model_groups` for
    common.optim.optimizer_params."""

    model_groups = staticmethod(layer_groups)

    def add_param_group(self, group):
        super().add_param_group(group)
        self.roles = group_roles(self.param_groups)
