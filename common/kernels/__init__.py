"""Fused optimizer steps: `@fused` compiles an elementwise update with torch.compile (C++ on CPU,
Triton on GPU) and falls back to eager when compilation is off (`REPRO_COMPILE=0`) or fails.

The decorated function must be pure tensor arithmetic with in-place writes to its tensor
arguments. Hyper-parameters are Python floats: the compiled path passes them as 0-d float64
tensors, so a new learning rate or bias correction never triggers a recompilation (one graph per
tensor rank, with dynamic sizes). Python bools stay constants (one graph per combination).

A compile failure falls back to eager for that call's layout only (ranks, dtypes, devices,
contiguity and the bool flags), never for the process: a channels_last weight that cannot compile
leaves every other parameter on the compiled path. `wrapper.calls` counts compiled and eager calls
(the tests assert the compiled path ran)."""
from __future__ import annotations

import functools
import logging
import os
import sys
import warnings


def compile_enabled() -> bool:
    return os.environ.get("REPRO_COMPILE", "1") != "0"


def fused(fn):
    """Decorator: compiled on first use if enabled; the eager function stays available as `.eager`."""
    state = {"compiled": None, "failed": set()}
    calls = {"compiled": 0, "eager": 0}

    def eager(*args, **kwargs):
        calls["eager"] += 1
        return fn(*args, **kwargs)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not compile_enabled():
            return eager(*args, **kwargs)
        key = _layout(args, kwargs)
        if key in state["failed"]:
            return eager(*args, **kwargs)
        if state["compiled"] is None:
            import torch
            _configure()
            state["compiled"] = torch.compile(fn, dynamic=True, fullgraph=True)
        try:
            out = state["compiled"](*_tensors(args), **dict(zip(kwargs, _tensors(kwargs.values()))))
            calls["compiled"] += 1
            return out
        except Exception as e:  # no compiler, unsupported op: eager is always correct
            state["failed"].add(key)
            warnings.warn(f"{fn.__name__}: torch.compile failed ({type(e).__name__}) for layout {key}; "
                          "using eager for that layout", stacklevel=2)
            print(f"warning: {fn.__name__} runs eager for one layout: {str(e).splitlines()[0] if str(e) else e}",
                  file=sys.stderr)
            return eager(*args, **kwargs)

    many = {"compiled": None, "failed": set()}

    def foreach(lists, scalars):
        """fn applied to the i-th tensor of every list with the same `scalars`, in one compiled call
        (falls back to one call per tensor for a layout compile cannot handle)."""
        if not compile_enabled():
            for ts in zip(*lists):
                eager(*ts, *scalars)
            return
        key = tuple(tuple(_layout(ts, {})) for ts in lists) + _layout(scalars, {})
        if key in many["failed"]:
            for ts in zip(*lists):
                wrapper(*ts, *scalars)
            return
        import torch
        if many["compiled"] is None:
            def body(lists, *sc):
                for ts in zip(*lists):
                    fn(*ts, *sc)
            _configure()
            many["compiled"] = torch.compile(body, dynamic=True, fullgraph=True)
        try:
            many["compiled"]([list(ls) for ls in lists], *_tensors(scalars))
            calls["compiled"] += 1
        except Exception as e:
            many["failed"].add(key)
            print(f"warning: {fn.__name__} over a tensor list runs per tensor for one layout: "
                  f"{str(e).splitlines()[0] if str(e) else e}", file=sys.stderr)
            for ts in zip(*lists):
                wrapper(*ts, *scalars)

    wrapper.eager = fn
    wrapper.calls = calls
    wrapper.foreach = foreach
    return wrapper


BIG = 1 << 16
"""Tensors of this many elements or more get their own call: there the call's dispatch (~0.03 ms)
is small beside the work, and one graph over several large tensors with reductions (C-AdamW's mask
normalization) ran 2x slower than one call each on 1M-element tensors."""
CHUNK = 8
"""Tensors per compiled call: compile time grows with the list (about 40 s for 60 tensors on the
CPU), and chunks with the same pattern of ranks share one graph, so a model compiles one or two."""


class batched:
    """Collect the calls of a @fused kernel made in a loop over parameters, and run them on exit as
    one compiled call per distinct set of scalar arguments (usually one per param group):

        with batched(adabelief_update) as call:
            for group, p, st in params_with_grad(opt):
                call(p, p.grad, st["exp_avg"], ..., lr, beta1, ...)   # tensors first, then scalars

    Valid for elementwise kernels, whose call for one tensor never reads another's."""

    def __init__(self, kernel):
        self.kernel, self.pending = kernel, {}

    def __call__(self, *args):
        n = next((i for i, a in enumerate(args) if not hasattr(a, "dim")), len(args))
        tensors, scalars = args[:n], tuple(args[n:])
        if tensors[0].numel() >= BIG:  # dispatch is noise beside the work: one call, no unrolled graph
            return self.kernel(*args)
        lists = self.pending.setdefault(scalars, [[] for _ in tensors])
        for ls, t in zip(lists, tensors):
            ls.append(t)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            for scalars, lists in self.pending.items():
                for i in range(0, len(lists[0]), CHUNK):
                    self.kernel.foreach([ls[i:i + CHUNK] for ls in lists], scalars)
        self.pending = {}
        return False


def _tensors(values) -> list:
    """Python floats as 0-d float64 tensors (a new value never recompiles); everything else as is."""
    import torch
    return [torch.tensor(a, dtype=torch.float64) if type(a) is float else a for a in values]


def _configure() -> None:
    import torch
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # one graph per (tensor rank, dtype, bool flags), or per list structure for `foreach`
    cfg = torch._dynamo.config
    if hasattr(cfg, "recompile_limit"):
        cfg.recompile_limit = max(cfg.recompile_limit, 64)
    else:
        cfg.cache_size_limit = max(cfg.cache_size_limit, 64)


def _layout(args, kwargs) -> tuple:
    """What a compiled graph is specialised on, per argument: tensors by rank, dtype, device and
    contiguity, bools by value (floats become 0-d tensors and ints are dynamic)."""
    def one(a):
        if hasattr(a, "dim") and hasattr(a, "dtype"):
            return ("t", a.dim(), str(a.dtype), a.device.type, a.is_contiguous())
        return ("b", a) if isinstance(a, bool) else type(a).__name__
    return tuple(one(a) for a in args) + tuple((k, one(v)) for k, v in sorted(kwargs.items()))
