"""Checkers for notebook 08 · Training dynamics.

Ground truth:

* ``adamw_step``: ``torch.optim.AdamW`` itself, stepped on a copy of the same
  tensor with the same gradients; after every step the parameter and both
  moment buffers (``exp_avg``, ``exp_avg_sq`` in the optimizer's state) must
  agree, in float64, to 1e-12.
* ``lr_at``: PyTorch's schedulers, ``LinearLR`` for the warm-up and
  ``CosineAnnealingLR`` (with ``eta_min``) for the decay, read step by step;
  after ``total`` the rate stays at ``min_lr``.
* ``accumulation_step``: autograd on the whole batch at once (the k
  micro-batches concatenated), in float64, through a small GPT; the update is
  seen through plain SGD, and the optimizer counts its steps.
* ``compute_optimal``: the two conditions that define the answer, checked on
  what comes back: 6 N D equals the budget and D / N the tokens per parameter.

Known mistakes are recognised by simulating them (the ``_adamw`` and
``_schedule`` knobs) and comparing.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR

from utils.checks._core import call, describe, expect_close, fail, is_close, passed, rng
from utils.reference.gpt import GPT, GPTConfig

__all__ = ["check_adamw_step", "check_lr_at", "check_accumulation_step", "check_compute_optimal"]

F64 = torch.float64


# ----------------------------------------------------------- AdamW


def _adamw(p0, grads, lr, betas, eps, wd, *, correct=(True, True), decay="decoupled", eps_inside=False,
           swap_betas=False, sqrt=True, square=True, decay_after=False):
    """The parameter after each step of AdamW with one knob turned (the defaults are AdamW)."""
    beta1, beta2 = reversed(betas) if swap_betas else betas
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    out = []
    for t, g in enumerate(grads, start=1):
        if decay == "l2":
            g = g + wd * p
        elif decay == "decoupled" and not decay_after:
            p = p * (1 - lr * wd)
        elif decay == "no_lr":
            p = p * (1 - wd)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (g * g if square else g.abs())
        m_hat = m / (1 - beta1 ** t) if correct[0] else m
        v_hat = v / (1 - beta2 ** t) if correct[1] else v
        den = (v_hat + eps).sqrt() if eps_inside else (v_hat.sqrt() + eps if sqrt else v_hat + eps)
        p = p - lr * m_hat / den
        if decay == "decoupled" and decay_after:
            p = p * (1 - lr * wd)
        out.append(p)
    return out


_ADAMW_HINTS = {
    "no_correction": "no bias correction. m and v start at 0, so early on they are too small: divide m by "
                     "1 - beta1**step and v by 1 - beta2**step before using them.",
    "m_only": "bias-correct v too: v_hat = v / (1 - beta2**step).",
    "v_only": "bias-correct m too: m_hat = m / (1 - beta1**step).",
    "l2": "you added weight_decay * param to the gradient: that is Adam with L2 regularisation, which Adam's "
          "scaling then distorts. AdamW's decay is decoupled: shrink the weights directly, "
          "param *= 1 - lr * weight_decay, and leave the gradient alone.",
    "no_lr": "the decoupled decay is scaled by the learning rate too: param *= 1 - lr * weight_decay.",
    "no_decay": "you left out the weight decay: param *= 1 - lr * weight_decay, before the Adam update.",
    "eps_inside": "eps is added after the square root: sqrt(v_hat) + eps, not sqrt(v_hat + eps).",
    "swap": "the betas are swapped: beta1 goes with the mean of the gradients (exp_avg), beta2 with the "
            "mean of their squares (exp_avg_sq).",
    "no_sqrt": "divide by the square root of v_hat (plus eps): v is a mean of squared gradients, so "
               "sqrt(v_hat) has the units of the gradient.",
    "abs": "exp_avg_sq averages the squared gradient, grad * grad, not its absolute value.",
    "decay_after": "apply the weight decay to the weights before the Adam update, as torch.optim.AdamW "
                   "does: param *= 1 - lr * weight_decay first, then subtract the Adam step.",
}


def _adamw_mistakes(p0, grads, lr, betas, eps, wd) -> dict[str, list[torch.Tensor]]:
    knobs = {
        "no_correction": dict(correct=(False, False)), "m_only": dict(correct=(True, False)),
        "v_only": dict(correct=(False, True)), "l2": dict(decay="l2"), "no_lr": dict(decay="no_lr"),
        "no_decay": dict(decay="none"), "eps_inside": dict(eps_inside=True), "swap": dict(swap_betas=True),
        "no_sqrt": dict(sqrt=False), "abs": dict(square=False), "decay_after": dict(decay_after=True),
    }
    return {_ADAMW_HINTS[k]: _adamw(p0, grads, lr, betas, eps, wd, **kw) for k, kw in knobs.items()}


def check_adamw_step(adamw_step) -> None:
    """Check ``adamw_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay)``
    against ``torch.optim.AdamW``, step after step."""
    g = rng(8)
    cases = [  # shape, lr, betas, eps, weight_decay, steps, gradient scale
        ((5, 3), 1e-3, (0.9, 0.999), 1e-8, 1e-2, 5, 1.0),
        ((7,), 0.1, (0.8, 0.95), 1e-6, 0.1, 6, 1e-3),     # small gradients: eps matters
        ((1,), 0.05, (0.9, 0.99), 1e-8, 0.0, 3, 1.0),     # no weight decay, one number
        ((2, 3, 4), 0.01, (0.5, 0.6), 1e-8, 0.5, 4, 10.0),
    ]
    for shape, lr, betas, eps, wd, n_steps, scale in cases:
        p0 = torch.randn(shape, generator=g, dtype=F64)
        grads = [scale * torch.randn(shape, generator=g, dtype=F64) for _ in range(n_steps)]
        ref = p0.clone().requires_grad_(True)
        opt = torch.optim.AdamW([ref], lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=False)
        mistakes = _adamw_mistakes(p0, grads, lr, betas, eps, wd)
        param, exp_avg, exp_avg_sq = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
        hp = f"lr={lr}, betas={betas}, eps={eps}, weight_decay={wd}"
        labels = [f"adamw_step on a {tuple(shape)} tensor, step {t} of {n_steps} ({hp})" for t in range(1, n_steps + 1)]
        expected, got = [], []  # (param, exp_avg, exp_avg_sq) after each step
        for t, grad in enumerate(grads, start=1):
            ref.grad = grad.clone()
            opt.step()
            state = opt.state[ref]
            expected.append((ref.detach().clone(), state["exp_avg"].clone(), state["exp_avg_sq"].clone()))
            label = labels[t - 1]
            before, grad_in = param.clone(), grad.clone()
            call(adamw_step, label, param, grad_in, exp_avg, exp_avg_sq, t, lr=lr, betas=betas, eps=eps,
                 weight_decay=wd)
            if not torch.equal(grad_in, grad):
                fail(label, "changed grad in place.",
                     hint="grad is only read. Adding weight_decay * param into it (grad.add_) is Adam with L2, "
                          "not AdamW; compute new tensors from it instead.")
            if torch.equal(param, before):
                fail(label, "did not change param.",
                     hint="update param in place (param.mul_(...), param.addcdiv_(...), or param -= ...): "
                          "param = param - ... only rebinds a local name, and the caller's tensor stays as it was.")
            got.append((param.clone(), exp_avg.clone(), exp_avg_sq.clone()))
        # A mistake is named when it explains every step (one step alone can fit several: at step 1,
        # Adam's update is about lr * sign(grad) whatever is added to the gradient).
        explains = [h for h, w in mistakes.items()
                    if all(is_close(mine[0], wrong, atol=1e-11, rtol=1e-9) for mine, wrong in zip(got, w))]
        for label, (p_exp, m_exp, v_exp), (p_got, m_got, v_got) in zip(labels, expected, got):
            expect_close(p_got, p_exp, label + ": param", atol=1e-12, rtol=1e-10,
                         hint=explains[0] if explains else None)
            for name, mine, theirs in (("exp_avg", m_got, m_exp), ("exp_avg_sq", v_got, v_exp)):
                if not mine.any():
                    fail(label, f"{name} is still all zeros after the step.",
                         hint=f"update {name} in place ({name}.mul_(...).add_(...)): the optimizer keeps it "
                              f"between steps, and `{name} = ...` inside the function only rebinds a local name.")
                expect_close(mine, theirs, f"{label}: {name}", atol=1e-12, rtol=1e-10,
                             hint=explains[0] if explains else "exp_avg = beta1 * exp_avg + (1 - beta1) * grad and exp_avg_sq = beta2 * "
                                  "exp_avg_sq + (1 - beta2) * grad², stored without bias correction "
                                  "(the corrected m_hat and v_hat are only used for the update).")
    passed("adamw_step", f"{len(cases)} tensors, {sum(c[5] for c in cases)} steps, parameter and both moments "
                         "equal to torch.optim.AdamW's")


# ----------------------------------------------------------- learning-rate schedule


def _torch_schedule(warmup: int, total: int, max_lr: float, min_lr: float, steps: int) -> list[float]:
    """The schedule from PyTorch's own schedulers: LinearLR, then CosineAnnealingLR, then min_lr."""
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = torch.zeros(1, requires_grad=True)
        if warmup > 0:
            opt = torch.optim.SGD([p], lr=max_lr)
            opt.step()  # no gradient: changes nothing, but schedulers expect a step first
            sched = LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=max(1, warmup - 1))
            for _ in range(warmup):
                lrs.append(sched.get_last_lr()[0])
                sched.step()
        opt = torch.optim.SGD([p], lr=max_lr)
        opt.step()
        sched = CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)
        for _ in range(total - warmup):
            lrs.append(sched.get_last_lr()[0])
            sched.step()
    return (lrs + [min_lr] * steps)[:steps]


def _schedule(step, warmup, total, max_lr, min_lr, *, warm="linear", start_zero=False, floor=True,
              span="after_warmup", clamp=True, shape="cosine", period=1.0):
    """lr_at with one knob turned (the defaults are the right schedule)."""
    if step < warmup and warm != "none":
        if warm == "int":
            return max_lr * ((step + 1) // warmup)
        return max_lr * (step if start_zero else step + 1) / warmup
    if clamp and step >= total:
        return min_lr if floor else 0.0
    start = warmup if warm != "none" else 0
    if span == "after_warmup":
        progress = (step - start) / max(1, total - start)
    elif span == "total":
        progress = step / total
    else:  # "minus_warmup_over_total"
        progress = (step - start) / total
    low = min_lr if floor else 0.0
    if shape == "linear":
        return low + (1 - progress) * (max_lr - low)
    return low + 0.5 * (1 + math.cos(period * math.pi * progress)) * (max_lr - low)


_LR_HINTS = {
    "start_zero": "the warm-up starts at 0: step 0 must already move the weights, at max_lr / warmup, and "
                  "step warmup - 1 reaches max_lr. Use (step + 1) / warmup.",
    "int": "integer division: (step + 1) // warmup is 0 for every warm-up step but the last. Use /.",
    "no_warmup": "there is no warm-up: for step < warmup the rate climbs linearly, max_lr * (step + 1) / warmup.",
    "no_floor": "the cosine ends at min_lr, not at 0: min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr).",
    "span_total": "the cosine's progress is measured from the end of the warm-up: "
                  "progress = (step - warmup) / (total - warmup), 0 at the end of the warm-up, 1 at total.",
    "span_partial": "the cosine's progress goes from 0 to 1 over the total - warmup decay steps: divide "
                    "step - warmup by total - warmup, not by total.",
    "no_clamp": "after total steps, stay at min_lr: without that the cosine climbs back up.",
    "linear": "the rate decays along half a cosine, not a straight line: "
              "0.5 * (1 + cos(pi * progress)).",
    "full_period": "half a cosine, cos(pi * progress), from max_lr down to min_lr; cos(2 * pi * progress) "
                   "comes back up to max_lr at the end.",
}


def _lr_mistakes(warmup, total, max_lr, min_lr, steps) -> dict[str, list[float]]:
    knobs = {
        "start_zero": dict(start_zero=True), "int": dict(warm="int"), "no_warmup": dict(warm="none"),
        "no_floor": dict(floor=False), "span_total": dict(span="total"),
        "span_partial": dict(span="minus_warmup_over_total"), "no_clamp": dict(clamp=False),
        "linear": dict(shape="linear"), "full_period": dict(period=2.0),
    }
    return {_LR_HINTS[k]: [_schedule(s, warmup, total, max_lr, min_lr, **kw) for s in range(steps)]
            for k, kw in knobs.items()}


def check_lr_at(lr_at) -> None:
    """Check ``lr_at(step, warmup, total, max_lr, min_lr)`` at every step against PyTorch's
    ``LinearLR`` and ``CosineAnnealingLR``."""
    cases = [(10, 100, 1e-3, 1e-4), (1, 20, 3e-3, 0.0), (0, 50, 6e-4, 6e-5), (100, 2000, 2e-3, 2e-4),
             (5, 6, 1.0, 0.5)]
    for warmup, total, max_lr, min_lr in cases:
        steps = total + 10  # and a little beyond the end
        expected = _torch_schedule(warmup, total, max_lr, min_lr, steps)
        args = f"warmup={warmup}, total={total}, max_lr={max_lr}, min_lr={min_lr}"
        got = []
        for s in range(steps):
            value = call(lr_at, f"lr_at({s}, {args})", s, warmup, total, max_lr, min_lr)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                fail(f"lr_at({s}, {args})", "should return a number (a float).", got=describe(value),
                     hint="return a Python float: the training loop writes it into optimizer.param_groups.")
            got.append(float(value))
        bad = [s for s in range(steps) if not math.isclose(got[s], expected[s], rel_tol=1e-9, abs_tol=1e-12 * max_lr)]
        if not bad:
            continue
        hint = None
        for mistake_hint, wrong in _lr_mistakes(warmup, total, max_lr, min_lr, steps).items():
            if all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12 * max_lr) for a, b in zip(got, wrong)):
                hint = mistake_hint
                break
        s = bad[0]
        where = "in the warm-up" if s < warmup else ("in the cosine decay" if s < total else "after total")
        fail(f"lr_at({s}, {args})", f"wrong learning rate at step {s} ({where}; {len(bad)} of {steps} steps wrong).",
             expected=f"{expected[s]:.6g} (PyTorch's LinearLR, then CosineAnnealingLR)", got=f"{got[s]:.6g}",
             hint=hint)
    passed("lr_at", f"{len(cases)} schedules at every step, equal to LinearLR then CosineAnnealingLR, "
                    "and min_lr after the end")


# ----------------------------------------------------------- gradient accumulation


class _CountingSGD(torch.optim.SGD):
    """Plain SGD (the update is -lr * grad, so the update shows the gradient) that counts its steps."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _grads(model, x, y) -> tuple[torch.Tensor, float]:
    model.zero_grad(set_to_none=True)
    _, loss = model(x, y)
    loss.backward()
    return _flat(p.grad for p in model.parameters()), loss.item()


def check_accumulation_step(accumulation_step) -> None:
    """Check ``accumulation_step(model, optimizer, micro_batches)``: one step whose gradient is the
    whole batch's, through plain SGD on a small float64 GPT."""
    config = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0, bias=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = GPT(config).to(F64)
    g = rng(3)
    cases = [(4, 2, 8), (1, 3, 8), (3, 1, 5), (2, 2, 8)]  # k micro-batches of b sequences of T tokens
    lr = 0.5
    for k, b, T in cases:
        label = f"accumulation_step with k={k} micro-batches of {b} x {T} tokens"
        micro = [(torch.randint(13, (b, T), generator=g), torch.randint(13, (b, T), generator=g)) for _ in range(k)]
        x_all, y_all = torch.cat([x for x, _ in micro]), torch.cat([y for _, y in micro])
        full_grad, full_loss = _grads(copy.deepcopy(base), x_all, y_all)  # the whole batch at once
        last_grad, last_loss = _grads(copy.deepcopy(base), *micro[-1])

        model = copy.deepcopy(base)
        before = _flat(p.detach() for p in model.parameters()).clone()
        stale = 0.25 * torch.ones_like(before)  # gradients left over from earlier code
        offset = 0
        for p in model.parameters():
            p.grad = stale[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        optimizer = _CountingSGD(model.parameters(), lr=lr)
        got_loss = call(accumulation_step, label, model, optimizer, [(x.clone(), y.clone()) for x, y in micro])

        if optimizer.steps != 1:
            fail(label, f"called optimizer.step() {optimizer.steps} times.",
                 expected="1 call, after all k backward passes",
                 hint="step once, after the loop over micro-batches: stepping after each one makes k small "
                      "updates, each with one micro-batch's gradient, which is not one step on the whole batch."
                 if optimizer.steps > 1 else
                 "call optimizer.step() once, after the k backward passes, to apply the accumulated gradient.")
        update = (_flat(p.detach() for p in model.parameters()) - before) / -lr  # the gradient SGD applied
        if not update.abs().max() > 0:
            fail(label, "the parameters did not change.",
                 hint="the gradients were cleared before optimizer.step(): zero them before the first "
                      "micro-batch (or after the step), never between the last backward and the step.")
        mistakes = {
            "you did not divide the loss by k: each backward adds the gradient of a micro-batch's mean "
            "loss, so k of them add up to k times the whole batch's. Call (loss / k).backward().": full_grad * k,
            "only the last micro-batch's gradient arrived: the gradients were zeroed inside the loop. Zero them "
            "once, before the first micro-batch; backward() adds to .grad.": [last_grad / k, last_grad],
            "the gradients left in .grad by earlier code were added to the new ones: zero them before the "
            "first micro-batch (optimizer.zero_grad()).": [full_grad + stale, k * full_grad + stale],
        }
        expect_close(update, full_grad, label + ": the gradient used by optimizer.step()", atol=1e-10, rtol=1e-8,
                     mistakes=mistakes)
        if isinstance(got_loss, torch.Tensor) or isinstance(got_loss, bool) or not isinstance(got_loss, numbers.Real):
            fail(label, "should return the mean loss as a Python float.", got=describe(got_loss),
                 hint="accumulate loss.item() / k: a float. A tensor would keep every micro-batch's graph alive.")
        if not math.isclose(got_loss, full_loss, rel_tol=1e-8, abs_tol=1e-10):
            hint = None
            if math.isclose(got_loss, last_loss, rel_tol=1e-8):
                hint = "you returned the last micro-batch's loss; return the mean over all k micro-batches."
            elif math.isclose(got_loss, k * full_loss, rel_tol=1e-8):
                hint = "you returned the sum of the k micro-batch losses; return their mean (divide by k)."
            elif math.isclose(got_loss, full_loss / k, rel_tol=1e-8):
                hint = "you divided the mean loss by k once too often: add loss.item() / k for each micro-batch."
            fail(label, "returned the wrong loss.", expected=f"{full_loss:.6f} (the whole batch's mean loss)",
                 got=f"{got_loss:.6f}", hint=hint)
    passed("accumulation_step", f"{len(cases)} cases, k = 1 to 4: one optimizer step with the whole batch's "
                                "gradient (autograd, float64) and its mean loss")


# ----------------------------------------------------------- compute-optimal size


def check_compute_optimal(compute_optimal) -> None:
    """Check ``compute_optimal(flops, tokens_per_param=20)`` -> (N, D): 6 N D = flops and D = r N."""
    cases = [(5.76e23, None), (1e21, None), (6e18, 20.0), (1e20, 10.0), (3.2e15, 40.0)]
    for flops, ratio in cases:
        r = 20.0 if ratio is None else ratio
        label = f"compute_optimal({flops:g}" + (")" if ratio is None else f", tokens_per_param={ratio:g})")
        got = call(compute_optimal, label, flops) if ratio is None else call(compute_optimal, label, flops, ratio)
        if isinstance(got, list):
            got = tuple(got)
        if not (isinstance(got, tuple) and len(got) == 2
                and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in got)):
            fail(label, "should return a tuple of two numbers, (N, D).", got=describe(got),
                 hint="return n_params, n_tokens: parameters first, then training tokens, as floats.")
        n, d = (float(v) for v in got)
        n_true = math.sqrt(flops / (6 * r))
        if math.isclose(6 * n * d, flops, rel_tol=1e-6) and math.isclose(d, r * n, rel_tol=1e-6):
            continue
        wrong = {
            "C ≈ 6 N D: training costs 6 FLOPs per parameter per token (2 in the forward pass, 4 in the "
            "backward). You left out the 6.": math.sqrt(flops / r),
            "2 N D FLOPs is the forward pass only; training adds the backward pass, twice as expensive: "
            "C ≈ 6 N D.": math.sqrt(flops / (2 * r)),
            "C = 6 N D with D = r N gives C = 6 r N²: N is a square root, N = sqrt(C / (6 r)).": flops / (6 * r),
            "use the tokens_per_param passed in; 20 is only its default.": math.sqrt(flops / 120),
        }
        hint = None
        if math.isclose(n, r * n_true, rel_tol=1e-6) and math.isclose(d, n_true, rel_tol=1e-6):
            hint = ("N and D are swapped. Return (N, D), parameters first; and D = r N: there are "
                    "tokens_per_param times more tokens than parameters, not fewer.")
        for h, n_wrong in wrong.items():
            if hint is None and math.isclose(n, n_wrong, rel_tol=1e-6):
                hint = h
        fail(label, "(N, D) is not compute-optimal.",
             expected=f"N = {n_true:.4g} parameters, D = {r * n_true:.4g} tokens "
                      f"(6 N D = {flops:g}, D / N = {r:g})",
             got=f"N = {n:.4g}, D = {d:.4g} (6 N D = {6 * n * d:.4g}, D / N = {d / n if n else float('nan'):.4g})",
             hint=hint)
    passed("compute_optimal", f"{len(cases)} budgets from 3e15 to 6e23 FLOPs: 6 N D = C and D = r N; "
                              "Chinchilla's 5.76e23 gives 69 B parameters and 1.4 T tokens")
