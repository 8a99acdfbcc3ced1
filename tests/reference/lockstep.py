"""Run our optimizer and a reference side by side on the same gradients and compare every
parameter after every step."""
import torch

SHAPES = [(7,), (5, 3), (2, 3, 4, 5), (1,)]
STEPS = 120


def default_grad(a: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A gradient that depends on the parameter (like a real loss) plus noise."""
    return 0.3 * a ** 3 - a + 0.5 * torch.randn(a.shape, generator=g, dtype=a.dtype)


def lockstep(make_ours, make_ref, dtype=torch.float64, steps=STEPS, atol=1e-10, rtol=1e-9, shapes=SHAPES,
             grad_fn=default_grad, zeros=True, before_step=None, compare=None):
    """make_*: params -> optimizer. grad_fn(param, generator) -> gradient at the parameter.
    before_step(step, ours_opt, ref_opt) may change both (an LR schedule); compare(ours, ref)
    -> (ours tensors, ref tensors) maps what is compared (default: the parameters)."""
    torch.manual_seed(0)
    init = [torch.randn(s, dtype=dtype) for s in shapes]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.clone()) for t in init]
    o_opt, r_opt = make_ours(ours), make_ref(ref)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        if before_step is not None:
            before_step(step, o_opt, r_opt)
        for a, b in zip(ours, ref):
            grad = grad_fn(a.detach(), g)
            if zeros and step % 17 == 5:
                grad[..., 0] = 0.0  # exact zeros: sign(0) and zero residuals
            a.grad, b.grad = grad.clone(), grad.clone()  # clones: some packages write into .grad
        o_opt.step()
        r_opt.step()
        xs, ys = compare(o_opt, r_opt) if compare else (ours, ref)
        for a, b in zip(xs, ys):
            torch.testing.assert_close(a.detach(), b.detach(), atol=atol, rtol=rtol,
                                       msg=lambda m: f"step {step + 1}: {m}")
    return o_opt, r_opt


def layerwise_lockstep(model, opt, steps, loss_fn, literal, adam_roles, adamw_kw, rtol, atol):
    """Step `opt` on `model` (`loss_fn(model, step)` gives each step's loss) and check every
    parameter after every step: those whose role (common.optim.layers.layer_roles) is in
    `adam_roles` against torch.optim.AdamW(**adamw_kw) stepped on copies with the same gradients,
    the others against `literal(name, role, in_dim, grad, value) -> new value`."""
    from optrepro.optim.layers import layer_roles
    roles = layer_roles(model)
    names = {id(p): n for n, p in model.named_parameters()}
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    adam_part = {names[id(p)]: torch.nn.Parameter(p.detach().clone()) for p in model.parameters()
                 if roles[id(p)][0] in adam_roles}
    adamw = torch.optim.AdamW(list(adam_part.values()), **adamw_kw)
    for t in range(steps):
        opt.zero_grad()
        loss_fn(model, t).backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        for n, v in adam_part.items():
            v.grad = grads[n]
        adamw.step()
        for p in model.parameters():
            n = names[id(p)]
            role, in_dim = roles[id(p)]
            ref[n] = adam_part[n].detach().clone() if n in adam_part else literal(n, role, in_dim, grads[n], ref[n])
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), ref[n], rtol=rtol, atol=atol, msg=lambda m: f"step {t + 1}, {n}: {m}")
