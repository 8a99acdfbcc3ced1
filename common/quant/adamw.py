"""AdamW with block-wise quantized moments (8-bit: Dettmers et al. 2022; 4-bit: Li, Chen and Zhu 2023).

Each step dequantizes the two moments, updates them in float32, quantizes them back, and steps the
parameter with the float32 moments of this step (as torchao's AdamW4bit/AdamW8bit):

    p <- p - lr wd p;  m <- lerp(deq(m), g, 1 - b1);  v <- lerp(deq(v), g^2, 1 - b2)
    store q(m), q(v);    p <- p - lr (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)

Code books (common.quant): 4 bits: m on the signed dynamic-exponent map (3 exponent bits), v on the
linear map without zero (`v_map="linear"`, the paper's fix of the zero-point problem) or on the
unsigned dynamic map that contains zero (`v_map="dynamic"`, the failure the paper shows), v in blocks
of `block_size` (`v_scale="block"`, torchao's AdamW4bit) or rank-1 normalized (`v_scale="rank1"`, the
paper's default for matrices, common.quant.quantize_rank1); 8 bits: m
and v on the signed and unsigned dynamic maps (7 exponent bits). Tensors smaller than `min_size`
or not a multiple of `block_size` keep unquantized moments in the parameter's dtype (torchao's rule,
4096), updated in float32. `stochastic` rounds
the stored codes stochastically (seeded by `seed`). `fused=True` runs the dequantize-update-quantize
step of 4-bit states as one Triton kernel (common.quant.triton_adamw) on CUDA or under
TRITON_INTERPRET=1, and raises where neither is available.

The quantized state is plain tensors in the optimizer's state (`exp_avg_codes`, `exp_avg_scale`,
...), so state_dict, checkpoints and the memory probe see exactly what is stored."""
from __future__ import annotations

import torch

from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad
from optrepro.quant import Quantized, check_block_size, dequantize, dynamic_map, linear_map, quantize, quantize_rank1

V_MAPS = ("linear", "dynamic")
V_SCALES = ("block", "rank1")


def code_books(bits: int, v_map: str = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """(first-moment map, second-moment map) for `bits`."""
    if bits == 8:
        return dynamic_map(8, 7, True), dynamic_map(8, 7, False)
    if bits == 4:
        return dynamic_map(4, 3, True), (linear_map(4, zero=False) if v_map == "linear" else dynamic_map(4, 3, False))
    raise ValueError(f"bits must be 4 or 8, got {bits!r}")


class LowBitAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 bits: int = 4, block_size: int = 128, v_map: str = "linear", v_scale: str = "block", min_size: int = 4096,
                 stochastic: bool = False, seed: int = 0, fused: bool = False):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, min_size=min_size)
        if v_map not in V_MAPS:
            raise ValueError(f"v_map '{v_map}' unknown; valid: {', '.join(V_MAPS)}")
        if v_scale not in V_SCALES:
            raise ValueError(f"v_scale '{v_scale}' unknown; valid: {', '.join(V_SCALES)}")
        check_block_size(block_size)
        self.maps = code_books(bits, v_map)
        if fused and (bits != 4 or v_scale != "block"):
            raise ValueError("fused=True is the 4-bit block-wise kernel; use bits=4, v_scale='block'")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.bits, self.block_size, self.min_size, self.v_scale = bits, block_size, min_size, v_scale
        self.stochastic, self.fused = bool(stochastic), bool(fused)
        self.generator = torch.Generator().manual_seed(seed) if stochastic else None

    def load_state_dict(self, state_dict: dict) -> None:
        """torch casts every loaded state tensor to its parameter's dtype; the codes (uint8) and the
        scales (float32) are put back as they were saved."""
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        for i, saved in state_dict["state"].items():
            p = params[int(i)]
            for k, v in saved.items():
                if k.endswith(("_codes", "_scale")):
                    self.state[p][k] = v.to(device=p.device).clone()

    def quantized(self, p: torch.Tensor) -> bool:
        return p.numel() >= self.min_size and p.numel() % self.block_size == 0

    def _rank1(self, name: str, p: torch.Tensor) -> bool:
        return name == "exp_avg_sq" and self.v_scale == "rank1" and p.ndim == 2

    def _load(self, st: dict, name: str, qmap: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        block = 0 if self._rank1(name, p) else self.block_size
        return dequantize(Quantized(st[name + "_codes"], st[name + "_scale"], tuple(p.shape), self.bits, block), qmap)

    def _store(self, st: dict, name: str, x: torch.Tensor, qmap: torch.Tensor) -> None:
        if self._rank1(name, x):
            q = quantize_rank1(x, qmap, self.bits, self.stochastic, self.generator)
        else:
            q = quantize(x, qmap, self.bits, self.block_size, self.stochastic, self.generator)
        st[name + "_codes"], st[name + "_scale"] = q.codes, q.scale

    def _init(self, st: dict, p: torch.Tensor) -> None:
        st["step"] = 0
        if not self.quantized(p):
            st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)  # the parameter's dtype, as torchao
            return
        for name in ("exp_avg", "exp_avg_sq"):  # scale 0: the state reads back as exactly 0
            st[name + "_codes"] = torch.zeros(p.numel() * self.bits // 8, dtype=torch.uint8, device=p.device)
            n_scales = sum(p.shape) if self._rank1(name, p) else p.numel() // self.block_size
            st[name + "_scale"] = torch.zeros(n_scales, dtype=torch.float32, device=p.device)

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            if "step" not in st:
                self._init(st, p)
            st["step"] += 1
            # float32 scalars, as torchao's step (its step counter and lr are float32 tensors)
            b1, b2 = group["betas"]
            t = torch.tensor(float(st["step"]))
            lr = torch.tensor(group["lr"], dtype=torch.float32)
            lr_wd = lr * group["weight_decay"]
            bc1, sqrt_bc2 = 1 - b1 ** t, (1 - b2 ** t).sqrt()
            if self.fused and self.quantized(p):
                from optrepro.quant.triton_adamw import fused_step
                fused_step(p, p.grad, st, self.maps, lr.item(), lr_wd.item(), b1, b2, group["eps"], bc1.item(),
                           sqrt_bc2.item(), self.block_size)
                continue
            g = p.grad.float()
            x = p.float()
            x = x - lr_wd * x
            if self.quantized(p):
                m = self._load(st, "exp_avg", self.maps[0], p).lerp(g, 1 - b1)
                v = self._load(st, "exp_avg_sq", self.maps[1], p).lerp(g.square(), 1 - b2)
                self._store(st, "exp_avg", m, self.maps[0])
                self._store(st, "exp_avg_sq", v, self.maps[1])
            else:  # updated in float32, stored in the parameter's dtype
                m = st["exp_avg"].float().lerp(g, 1 - b1)
                v = st["exp_avg_sq"].float().lerp(g.square(), 1 - b2)
                st["exp_avg"].copy_(m)
                st["exp_avg_sq"].copy_(v)
            x = x - lr * (m / bc1) / (v.sqrt() / sqrt_bc2 + group["eps"])
            p.copy_(x)
        return loss
