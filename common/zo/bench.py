"""`repro bench zo`: memory and time of one step of each ZO and first-order method against one
inference pass, on the same model (a byte-level GPT-2, 25M parameters by default) and batch.

Memory is measured twice: the peak tensor memory from the allocator (common.zo.memory; on CUDA
`max_memory_allocated`) in this process, and the peak RSS of a fresh process running the same step.
Time is the median of `reps` steps after a warm-up, divided by the median forward pass.

Targets (issue 10): MeZO's peak memory at most 1.1x inference and at least 3x below first-order
fine-tuning with Adam; a ZO step about two forward passes."""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from optrepro.zo.memory import optimizer_state, peak_rss_bytes, peak_tensor_bytes, rss_probe, tensors_bytes

MODES = ("inference", "zo_sgd", "zo_sgd_inplace", "smezo", "zo_adam", "forward_grad", "fo_sgd", "fo_adam")
DEFAULT = {"d_model": 512, "n_layer": 8, "n_head": 8, "context": 128, "batch": 8}


def _prepare(spec: dict, mode: str, device: str = "cpu"):
    from optrepro.models import tiny_gpt
    from optrepro.zo.masks import magnitude_masks
    from optrepro.zo.optim import ZOOptimizer
    torch.manual_seed(0)
    model = tiny_gpt(256, spec["context"], spec["d_model"], spec["n_layer"], spec["n_head"]).to(device)
    ids = torch.randint(0, 256, (spec["batch"], spec["context"] + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]
    names = [n for n, _ in model.named_parameters()]

    def closure():
        return F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))

    def loss_fn(ps):
        out = torch.func.functional_call(model, dict(zip(names, ps)), (x,))
        return F.cross_entropy(out.reshape(-1, 256), y.reshape(-1))

    if mode == "inference":
        def step():
            with torch.no_grad():
                model(x)
        return model, x, None, step
    if mode.startswith("fo_"):
        opt = (torch.optim.SGD(model.parameters(), lr=1e-4) if mode == "fo_sgd"
               else torch.optim.AdamW(model.parameters(), lr=1e-4))

        def step():
            loss = closure()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return model, x, opt, step
    method = {"zo_sgd_inplace": "zo_sgd", "smezo": "zo_sgd"}.get(mode, mode)
    masks = magnitude_masks(list(model.parameters()), 0.2) if mode == "smezo" else None
    opt = ZOOptimizer(model, 1e-6, method, 1e-3, masks=masks, inplace=mode == "zo_sgd_inplace")
    opt._checked = True  # the first step's closure check is a third forward: not part of a step

    def step():
        opt.step(closure, loss_fn=loss_fn)
    return model, x, opt, step


def rss_mode(mode: str, spec: dict) -> dict:
    """Run in a fresh process by peak_rss_bytes: peak RSS over one step of `mode`."""
    def prepare():
        obj = _prepare(spec, mode)
        obj[3]()  # warm-up step: optimizer state allocated
        return obj
    return rss_probe(prepare, lambda obj: obj[3]())


def measure(mode: str, spec: dict, reps: int = 5, device: str = "cpu", rss: bool = True) -> dict:
    model, x, opt, step = _prepare(spec, mode, device)
    params = list(model.parameters())
    step()  # warm-up: optimizer state exists from here on, as in every later step
    peak = peak_tensor_bytes(step, [params, x, optimizer_state(opt)], device)
    def timed(fn):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    def forward():
        with torch.no_grad():
            model(x)

    # a forward pass of the same model and batch is timed right before each step, so that a load change
    # on the machine moves both and the ratio stays meaningful
    times, fwd = [], []
    for _ in range(reps):
        fwd.append(timed(forward))
        times.append(timed(step))
    out = {"mode": mode, "params_mb": tensors_bytes(params) / 2 ** 20, "peak_mb": peak / 2 ** 20,
           "ms": 1e3 * statistics.median(times), "fwd_ratio": statistics.median(t / f for t, f in zip(times, fwd))}
    if rss and device == "cpu":
        r = peak_rss_bytes("optrepro.zo.bench", "rss_mode", {"mode": mode, "spec": spec})
        if r:
            out["rss_mb"] = r["rss_peak"] / 2 ** 20
    return out


def run(modes=MODES, spec=None, reps: int = 5, device: str = "cpu", rss: bool = True) -> list:
    spec = {**DEFAULT, **(spec or {})}
    torch.set_num_threads(1) if device == "cpu" else None
    return [measure(m, spec, reps, device, rss) for m in modes]


def markdown(rows: list, spec: dict, hardware: str, device: str) -> str:
    spec = {**DEFAULT, **(spec or {})}
    base = next(r for r in rows if r["mode"] == "inference")
    by = {r["mode"]: r for r in rows}
    lines = [f"# Zeroth-order memory and time ({device})", "",
             f"Hardware: {hardware}. Model: byte-level GPT-2, d {spec['d_model']}, {spec['n_layer']} layers, "
             f"{base['params_mb']:.1f} MiB of fp32 parameters; batch {spec['batch']} x {spec['context']} tokens; "
             "one thread on the CPU.", "",
             "Peak = the most tensor memory alive during one step, parameters and optimizer state included "
             "(PyTorch allocator events on the CPU, `max_memory_allocated` on CUDA); RSS = peak resident size of a "
             "fresh process running the same step, minus its size before the model was built. Produced by "
             "`repro bench zo --write ...`.", "",
             "| method | peak (MiB) | / inference | RSS (MiB) | RSS / inference | ms per step | / forward (median of paired ratios) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        rss = f"{r['rss_mb']:.1f} | {r['rss_mb'] / base['rss_mb']:.2f}" if "rss_mb" in r and "rss_mb" in base else "n/a | n/a"
        lines.append(f"| {r['mode']} | {r['peak_mb']:.1f} | {r['peak_mb'] / base['peak_mb']:.2f} | {rss} | "
                     f"{r['ms']:.1f} | {r['fwd_ratio']:.2f} |")
    checks = []
    if "zo_sgd" in by:
        z = by["zo_sgd"]
        checks.append(("MeZO peak <= 1.1x inference", z["peak_mb"] / base["peak_mb"] <= 1.1,
                       f"{z['peak_mb'] / base['peak_mb']:.3f}x"))
        if "fo_adam" in by:
            a = by["fo_adam"]
            checks.append(("FO-Adam peak >= 3x MeZO", a["peak_mb"] / z["peak_mb"] >= 3,
                           f"{a['peak_mb'] / z['peak_mb']:.2f}x"))
        checks.append(("ZO step about two forwards (1.5-2.5)", 1.5 <= z["fwd_ratio"] <= 2.5,
                       f"{z['fwd_ratio']:.2f} forwards"))
    lines += ["", "| target | met | measured |", "|---|---|---|"]
    lines += [f"| {name} | {'yes' if ok else 'NO'} | {val} |" for name, ok, val in checks]
    return "\n".join(lines) + "\n"
