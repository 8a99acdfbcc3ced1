"""`repro bench second-order`: time and memory of one training step with a second-order optimizer
against first-order ones, on the same model and batch.

The optimizers are torch's SGD (momentum 0.9), Adam and AdamW, and every entry a paper lists under
`second_order:` in its paper.yaml ({name: "papers.<pid>.method:Class"}; these are optimizers outside
the closure-free registry, e.g. ones that differentiate the gradient; a class with `takes_model = True`
is built on the model, for its layers' hooks). A step is zero_grad, forward,
backward (with create_graph=True where the optimizer sets `needs_graph`), optimizer.step, and, for
an optimizer with `hessian_every = k`, the curvature refresh after every k-th step (so its cost is
amortized over the timed steps, as in training). Measured:

- ms per step: the mean over timed steps after a warm-up (wall clock, one torch thread; a mean, not a
  median, so that a periodic curvature refresh is amortized as in training);
- peak tensor MiB of a step (the highest over one refresh period): common.zo.memory.peak_tensor_bytes (the CPU profiler's allocation
  events, or CUDA's peak counter), parameters, batch and optimizer state included;
- optimizer state bytes per parameter: the bytes of the tensors in the optimizer's state, counted.

The model is common.models' small CNN on a batch of 64 8x8 digit-shaped inputs, or the MLP."""
from __future__ import annotations

import statistics
import time

import torch

from optrepro.curvature.core import sampled_label_loss
from optrepro.zo.memory import step_memory

FIRST_ORDER = {
    "sgd": lambda ps, model=None: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "adam": lambda ps, model=None: torch.optim.Adam(ps, lr=1e-3),
    "adamw": lambda ps, model=None: torch.optim.AdamW(ps, lr=1e-3, weight_decay=5e-4),
}


def entries() -> dict[str, str]:
    """{name: target} of every paper's `second_order:` optimizers."""
    from optrepro.registry import all_papers
    out = {}
    for paper in all_papers().values():
        for name, target in (paper.meta.get("second_order") or {}).items():
            out[str(name).lower()] = str(target)
    return out


def factories(names: list[str] | None = None) -> dict:
    from optrepro import import_target
    out = dict(FIRST_ORDER)
    for name, target in entries().items():
        out[name] = (lambda cls: (lambda ps, model=None: cls(model) if getattr(cls, "takes_model", False)
                                  else cls(ps)))(import_target(target))
    if names:
        unknown = [n for n in names if n not in out]
        if unknown:
            from optrepro.errors import UsageError
            raise UsageError(f"unknown optimizer(s) {', '.join(unknown)}; valid: {', '.join(sorted(out))}")
        out = {n: out[n] for n in names}
    return out


def _setup(model_name: str, make, device: str):
    from optrepro import models
    torch.manual_seed(0)
    model = models.build(model_name, (1, 8, 8), 10).to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 8, 8, generator=g).to(device)
    y = torch.randint(0, 10, (64,), generator=g).to(device)
    opt = make(list(model.parameters()), model=model)
    graph = bool(getattr(opt, "needs_graph", False))
    every = int(getattr(opt, "hessian_every", 0) or 0)
    count, gen = [0], torch.Generator().manual_seed(2)

    def step():  # as common.train.train_loop does it, the periodic curvature refresh included
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward(create_graph=graph)
        opt.step()
        count[0] += 1
        if every and count[0] % every == 0:
            opt.zero_grad(set_to_none=True)
            sampled_label_loss(model, x, gen).backward()
            opt.update_hessian()
    return model, opt, (x, y), step


def measure(make, model_name: str = "cnn", steps: int = 20, warmup: int = 3, device: str = "cpu") -> dict:
    model, opt, batch, step = _setup(model_name, make, device)
    for _ in range(warmup):
        step()
    ts = []
    k = int(getattr(opt, "hessian_every", 0) or 0) or 1
    steps = -(-max(steps, 3 * k) // k) * k  # whole refresh periods, so the mean amortizes them exactly
    for _ in range(steps):
        t = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    n = sum(p.numel() for p in model.parameters())
    for p in model.parameters():  # the graph a needs_graph step leaves in .grad is the next step's to free
        p.grad = None
    # the peak over one refresh period (k steps: one of them refreshes the curvature)
    mem = step_memory(model, opt, lambda: [step() for _ in range(k)], batch, device)
    return {"ms": 1e3 * statistics.fmean(ts), **mem, "params": n,
            "needs_graph": bool(getattr(opt, "needs_graph", False))}


def run(names: list[str] | None = None, model_name: str = "cnn", steps: int = 20, device: str = "cpu") -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for name, make in factories(names).items():
        rows.append({"optimizer": name, **measure(make, model_name, steps, device=device)})
    base = next((r for r in rows if r["optimizer"] == "adam"), None)
    for r in rows:
        r["vs_adam_ms"] = r["ms"] / base["ms"] if base else None
        r["vs_adam_peak"] = r["peak_mib"] / base["peak_mib"] if base else None
    return rows


def markdown(rows: list[dict], hardware: str, model_name: str, device: str) -> str:
    L = ["# Second-order optimizers: time and memory per training step", "",
         f"Generated by `repro bench second-order` — one training step (zero_grad, forward, backward, step) of "
         f"common.models' `{model_name}` on a batch of 64 8x8 inputs, 10 classes ({rows[0]['params']} parameters), "
         f"on {device}; mean ms over timed steps after a warm-up (periodic curvature refreshes amortized), one torch thread. Peak tensor memory is "
         "measured from the allocator's events (common.zo.memory), parameters, batch and optimizer state "
         "included; state bytes are counted from the optimizer's state tensors.", "",
         f"- hardware: {hardware}", f"- torch {torch.__version__}", "",
         "| optimizer | backward with create_graph | ms / step | vs Adam | peak tensor MiB | vs Adam | optimizer state bytes / parameter |",
         "|---|---|---|---|---|---|---|"]
    for r in rows:
        va = f"{r['vs_adam_ms']:.2f}x" if r["vs_adam_ms"] else "—"
        vp = f"{r['vs_adam_peak']:.2f}x" if r["vs_adam_peak"] else "—"
        L.append(f"| `{r['optimizer']}` | {'yes' if r['needs_graph'] else 'no'} | {r['ms']:.2f} | {va} | "
                 f"{r['peak_mib']:.2f} | {vp} | {r['state_bytes_per_param']:.1f} |")
    L += ["", "Timings on a shared 2-core machine drift between repeats; memory is exact."]
    return "\n".join(L) + "\n"
