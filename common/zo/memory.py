"""Peak memory of one training (or inference) step, measured, on the same model and batch.

- `peak_tensor_bytes(fn, device)`: the most tensor memory alive at once while fn() runs, counting the
  tensors that existed before (parameters, batch, optimizer state). On CUDA this is
  `torch.cuda.max_memory_allocated`; on the CPU it is the running sum of PyTorch's own allocation and
  free events, recorded by `torch.profiler` with profile_memory=True (the CPU allocator reports every
  allocation there), so it is exact and does not depend on what else the process holds.
- `peak_rss_bytes(...)`: the same step in a fresh Python process, as the kernel sees it: VmHWM minus
  the resident size before the model was built (glibc's mmap threshold is pinned so that freed large
  blocks go back to the system). A cross-check of the first that includes allocator overheads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU profiler's C++ logger: keep its info lines off stderr

def tensors_bytes(objs) -> int:
    """Bytes of the distinct storages among tensors found in (nested) lists, tuples and dicts."""
    seen, total = set(), 0

    def visit(o):
        nonlocal total
        if isinstance(o, torch.Tensor):
            st = o.untyped_storage()
            if st.data_ptr() not in seen:
                seen.add(st.data_ptr())
                total += st.nbytes()
        elif isinstance(o, dict):
            for v in o.values():
                visit(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                visit(v)

    visit(objs)
    return total


def optimizer_state(opt) -> list:
    """The state tensors of a torch.optim optimizer or a common.zo ZOOptimizer (for `live`)."""
    if opt is None:
        return []
    if isinstance(opt, torch.optim.Optimizer):
        return [list(s.values()) for s in opt.state.values()]
    return list(opt.state.values())


def peak_tensor_bytes(fn, live, device: str = "cpu") -> int:
    """Peak tensor bytes while fn() runs: the bytes of `live` (the tensors already held: parameters,
    batch, optimizer state) plus the highest net allocation during fn()."""
    base = tensors_bytes(live)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return base + torch.cuda.max_memory_allocated() - start
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return base + _window_peak(prof.profiler.kineto_results.experimental_event_tree())



def step_memory(model, opt, fn, held=(), device: str = "cpu") -> dict:
    """What an optimizer costs in memory, measured: {'peak_mib': the peak tensor MiB while fn() runs
    (training steps), the model's parameters, `held` (e.g. the batch) and the optimizer's state counted
    as live, 'state_bytes_per_param': the bytes of the optimizer's state tensors afterwards over the
    model's parameters}."""
    params = list(model.parameters())
    peak = peak_tensor_bytes(fn, [params, list(held), optimizer_state(opt)], device)
    n = sum(p.numel() for p in params)
    return {"peak_mib": peak / 2 ** 20, "state_bytes_per_param": tensors_bytes(optimizer_state(opt)) / n}

def _window_peak(roots) -> int:
    """Highest net bytes of the blocks allocated inside a profiled window. A free of a block allocated
    before the window is not counted: which stale tensors (a previous run's, in one process) happen to
    be freed during fn() depends on the process's history, and counting them made the same seed measure
    14.38 to 14.50 MiB in one process. Blocks held before the window are `live`'s business."""
    events, stack = [], list(roots)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        ef = node.extra_fields
        if type(ef).__name__ == "_ExtraFields_Allocation" and str(ef.device) == "cpu":
            events.append((node.start_time_ns, ef.ptr, ef.alloc_size))
    mine, cur, peak = set(), 0, 0
    for _, ptr, size in sorted(events, key=lambda e: e[0]):
        if size > 0:
            mine.add(ptr)
        elif ptr in mine:
            mine.discard(ptr)
        else:
            continue
        cur += size
        peak = max(peak, cur)
    return peak


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def reset_hwm() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes(module: str, func: str, kwargs: dict, timeout: int = 600) -> dict:
    """Run `module.func(**kwargs)` in a fresh Python process; it must call `rss_probe(prepare, step)`
    and return its result. Returns {"rss_peak": bytes, "rss_before": bytes} or {} where /proc is absent."""
    if not os.path.exists("/proc/self/clear_refs"):
        return {}
    code = (f"import json, {module} as m; print('RSS-RESULT ' + json.dumps(m.{func}(**json.loads({json.dumps(json.dumps(kwargs))}))))")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    for line in out.stdout.splitlines():
        if line.startswith("RSS-RESULT "):
            return json.loads(line[len("RSS-RESULT "):])
    raise RuntimeError(f"memory probe failed (exit {out.returncode}): {out.stderr[-2000:]}")


def rss_probe(prepare, step) -> dict:
    """In the probe process: RSS before prepare() (model, batch, optimizer built there; run once before
    so that imports are not counted), then the peak RSS over step(prepare's result)."""
    torch.set_num_threads(1)
    warm = prepare()  # imports and one-time allocations (transformers' modules) are not the step's
    del warm
    gc.collect()
    before = _status_kb("VmRSS") * 1024
    obj = prepare()
    if not reset_hwm():
        return {}
    step(obj)
    return {"rss_peak": _status_kb("VmHWM") * 1024 - before, "rss_before": before}


def training_memory(model, opt, one_step) -> dict:
    """A charlm/classify `probe`: after training, the optimizer's state bytes per parameter and the
    peak tensor MiB of one more training step (step_memory), under the names tables report."""
    m = step_memory(model, opt, one_step)
    return {"state_bytes_per_param": m["state_bytes_per_param"], "step_peak_mib": m["peak_mib"]}
