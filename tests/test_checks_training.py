"""Every notebook-08 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
Most are the reference with one thing changed.
"""

from __future__ import annotations

import math

import torch

from utils import checks, reference, train

from checker_harness import checker_tests

# ----------------------------------------------------------------- adamw_step


def _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, *, correct=(True, True),
           decay="decoupled", eps_inside=False, swap=False, sqrt=True, square=True):
    """An in-place AdamW step with one knob turned; each wrong implementation below turns one."""
    beta1, beta2 = (betas[1], betas[0]) if swap else betas
    with torch.no_grad():
        if decay == "decoupled":
            param.mul_(1 - lr * weight_decay)
        elif decay == "no_lr":
            param.mul_(1 - weight_decay)
        elif decay == "l2":
            grad = grad + weight_decay * param
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).add_((grad * grad if square else grad.abs()), alpha=1 - beta2)
        m_hat = exp_avg / (1 - beta1 ** step) if correct[0] else exp_avg
        v_hat = exp_avg_sq / (1 - beta2 ** step) if correct[1] else exp_avg_sq
        if eps_inside:
            den = (v_hat + eps).sqrt()
        else:
            den = v_hat.sqrt() + eps if sqrt else v_hat + eps
        param.sub_(lr * m_hat / den)


def adamw_no_bias_correction(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=1e-2):  # uses m and v as they are: tiny early steps
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, correct=(False, False))


def adamw_corrects_m_only(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=1e-2):  # forgets the bias correction of v
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, correct=(True, False))


def adamw_l2_in_gradient(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                         weight_decay=1e-2):  # Adam + L2: decay added to the gradient, not decoupled
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, decay="l2")


def adamw_l2_in_place(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                      weight_decay=1e-2):  # the same, written into the caller's gradient
    grad.add_(param, alpha=weight_decay)
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, decay="none")


def adamw_decay_without_lr(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=1e-2):  # param *= 1 - weight_decay
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, decay="no_lr")


def adamw_no_weight_decay(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=1e-2):  # plain Adam
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, decay="none")


def adamw_eps_inside_sqrt(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=1e-2):
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, eps_inside=True)


def adamw_betas_swapped(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                        weight_decay=1e-2):
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, swap=True)


def adamw_no_sqrt(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                  weight_decay=1e-2):  # divides by v_hat
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, sqrt=False)


def adamw_abs_not_square(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                         weight_decay=1e-2):  # v averages |g|
    _adamw(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay, square=False)


def adamw_state_not_in_place(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=1e-2):  # exp_avg = ... rebinds a local name
    beta1, beta2 = betas
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    with torch.no_grad():
        param.mul_(1 - lr * weight_decay)
        param.sub_(lr * (exp_avg / (1 - beta1 ** step)) / ((exp_avg_sq / (1 - beta2 ** step)).sqrt() + eps))


def adamw_param_not_in_place(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=1e-2):  # param = param - ...: the caller's tensor never moves
    new = param.clone()
    reference.adamw_step(new, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay)
    param = new  # noqa: F841 - the mistake
    return new


ADAMW_MISTAKES = [
    (adamw_no_bias_correction, "no bias correction"),
    (adamw_corrects_m_only, "bias-correct v too"),
    (adamw_l2_in_gradient, "Adam with L2 regularisation"),
    (adamw_l2_in_place, "changed grad in place"),
    (adamw_decay_without_lr, "scaled by the learning rate too"),
    (adamw_no_weight_decay, "left out the weight decay"),
    (adamw_eps_inside_sqrt, "eps is added after the square root"),
    (adamw_betas_swapped, "the betas are swapped"),
    (adamw_no_sqrt, "divide by the square root of v_hat"),
    (adamw_abs_not_square, "not its absolute value"),
    (adamw_state_not_in_place, "update exp_avg in place"),
    (adamw_param_not_in_place, "update param in place"),
]

# ----------------------------------------------------------------- lr_at


def lr_warmup_from_zero(step, warmup, total, max_lr, min_lr):  # step / warmup: step 0 does nothing
    if step < warmup:
        return max_lr * step / warmup
    return train.lr_at(step, warmup, total, max_lr, min_lr)


def lr_integer_division(step, warmup, total, max_lr, min_lr):
    if step < warmup:
        return max_lr * ((step + 1) // warmup)
    return train.lr_at(step, warmup, total, max_lr, min_lr)


def lr_no_warmup(step, warmup, total, max_lr, min_lr):  # cosine from step 0
    return train.lr_at(step, 0, total, max_lr, min_lr)


def lr_cosine_to_zero(step, warmup, total, max_lr, min_lr):  # ignores min_lr
    return train.lr_at(step, warmup, total, max_lr, 0.0)


def lr_progress_over_total(step, warmup, total, max_lr, min_lr):  # progress = step / total
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return min_lr + 0.5 * (1 + math.cos(math.pi * step / total)) * (max_lr - min_lr)


def lr_no_clamp(step, warmup, total, max_lr, min_lr):  # the cosine comes back up after total
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def lr_linear_decay(step, warmup, total, max_lr, min_lr):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return max_lr - (step - warmup) / (total - warmup) * (max_lr - min_lr)


def lr_full_cosine_period(step, warmup, total, max_lr, min_lr):  # cos(2 pi p): back to max_lr at the end
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (1 + math.cos(2 * math.pi * progress)) * (max_lr - min_lr)


def lr_returns_tensor_list(step, warmup, total, max_lr, min_lr):  # returns [lr], as get_last_lr() does
    return [train.lr_at(step, warmup, total, max_lr, min_lr)]


LR_MISTAKES = [
    (lr_warmup_from_zero, "Use (step + 1) / warmup"),
    (lr_integer_division, "integer division"),
    (lr_no_warmup, "there is no warm-up"),
    (lr_cosine_to_zero, "ends at min_lr, not at 0"),
    (lr_progress_over_total, "measured from the end of the warm-up"),
    (lr_no_clamp, "stay at min_lr"),
    (lr_linear_decay, "not a straight line"),
    (lr_full_cosine_period, "half a cosine"),
    (lr_returns_tensor_list, "return a Python float"),
]

# ----------------------------------------------------------------- accumulation_step


def accumulation_no_divide(model, optimizer, micro_batches):  # k times the gradient
    optimizer.zero_grad()
    losses = []
    for x, y in micro_batches:
        _, loss = model(x, y)
        loss.backward()
        losses.append(loss.item())
    optimizer.step()
    return sum(losses) / len(losses)


def accumulation_zero_each_micro_batch(model, optimizer, micro_batches):  # only the last one survives
    k = len(micro_batches)
    total = 0.0
    for x, y in micro_batches:
        optimizer.zero_grad()
        _, loss = model(x, y)
        (loss / k).backward()
        total += loss.item() / k
    optimizer.step()
    return total


def accumulation_step_each_micro_batch(model, optimizer, micro_batches):  # k small steps
    k = len(micro_batches)
    total = 0.0
    optimizer.zero_grad()
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / k).backward()
        optimizer.step()
        optimizer.zero_grad()
        total += loss.item() / k
    return total


def accumulation_never_zeroes(model, optimizer, micro_batches):  # stale gradients from before
    k = len(micro_batches)
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / k).backward()
        total += loss.item() / k
    optimizer.step()
    return total


def accumulation_zero_before_step(model, optimizer, micro_batches):  # clears the gradient it just built
    k = len(micro_batches)
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / k).backward()
        total += loss.item() / k
    optimizer.zero_grad()
    optimizer.step()
    return total


def accumulation_returns_last_loss(model, optimizer, micro_batches):
    k = len(micro_batches)
    optimizer.zero_grad()
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / k).backward()
    optimizer.step()
    return loss.item()


def accumulation_returns_tensor(model, optimizer, micro_batches):  # keeps the graphs alive
    k = len(micro_batches)
    optimizer.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / k).backward()
        total = total + loss / k
    optimizer.step()
    return total


ACCUMULATION_MISTAKES = [
    (accumulation_no_divide, "you did not divide the loss by k"),
    (accumulation_zero_each_micro_batch, "only the last micro-batch's gradient arrived"),
    (accumulation_step_each_micro_batch, "step once, after the loop"),
    (accumulation_never_zeroes, "left in .grad by earlier code"),
    (accumulation_zero_before_step, "cleared before optimizer.step()"),
    (accumulation_returns_last_loss, "the last micro-batch's loss"),
    (accumulation_returns_tensor, "as a Python float"),
]

# ----------------------------------------------------------------- compute_optimal


def optimal_without_six(flops, tokens_per_param=20.0):  # C = N D
    n = math.sqrt(flops / tokens_per_param)
    return n, tokens_per_param * n


def optimal_forward_only(flops, tokens_per_param=20.0):  # C = 2 N D
    n = math.sqrt(flops / (2 * tokens_per_param))
    return n, tokens_per_param * n


def optimal_no_square_root(flops, tokens_per_param=20.0):
    n = flops / (6 * tokens_per_param)
    return n, tokens_per_param * n


def optimal_ratio_inverted(flops, tokens_per_param=20.0):  # D = N / 20
    n = math.sqrt(flops * tokens_per_param / 6)
    return n, n / tokens_per_param


def optimal_swapped(flops, tokens_per_param=20.0):  # returns (D, N)
    n, d = reference.compute_optimal(flops, tokens_per_param)
    return d, n


def optimal_ignores_ratio(flops, tokens_per_param=20.0):  # hard-codes 20
    return reference.compute_optimal(flops)


def optimal_returns_n_only(flops, tokens_per_param=20.0):
    return reference.compute_optimal(flops, tokens_per_param)[0]


COMPUTE_OPTIMAL_MISTAKES = [
    (optimal_without_six, "You left out the 6"),
    (optimal_forward_only, "forward pass only"),
    (optimal_no_square_root, "N is a square root"),
    (optimal_ratio_inverted, "not fewer"),  # the same numbers as swapped
    (optimal_swapped, "N and D are swapped"),
    (optimal_ignores_ratio, "use the tokens_per_param passed in"),
    (optimal_returns_n_only, "a tuple of two numbers"),
]

CASES = (
    [(checks.check_adamw_step, fn, hint) for fn, hint in ADAMW_MISTAKES]
    + [(checks.check_lr_at, fn, hint) for fn, hint in LR_MISTAKES]
    + [(checks.check_accumulation_step, fn, hint) for fn, hint in ACCUMULATION_MISTAKES]
    + [(checks.check_compute_optimal, fn, hint) for fn, hint in COMPUTE_OPTIMAL_MISTAKES]
)

REFERENCES = [
    (checks.check_adamw_step, reference.adamw_step),
    (checks.check_lr_at, reference.lr_at),
    (checks.check_accumulation_step, reference.accumulation_step),
    (checks.check_compute_optimal, reference.compute_optimal),
]


(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


def test_reference_lr_at_is_the_training_scripts_schedule():
    for step in (0, 9, 10, 55, 100, 120):
        assert reference.lr_at(step, 10, 100, 1e-3, 1e-4) == train.lr_at(step, 10, 100, 1e-3, 1e-4)


def test_reference_adamw_step_trains_a_module_like_torch_adamw():
    # The notebook's claim: applied to every parameter, adamw_step is torch.optim.AdamW.
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    opt = torch.optim.AdamW(a.parameters(), lr=0.01, weight_decay=0.1)
    state = {p: (torch.zeros_like(p), torch.zeros_like(p)) for p in b.parameters()}
    x = torch.randn(8, 4)
    for step in range(1, 4):
        for model in (a, b):
            model.zero_grad()
            model(x).pow(2).mean().backward()
        opt.step()
        for p in b.parameters():
            reference.adamw_step(p, p.grad, *state[p], step, lr=0.01, weight_decay=0.1)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
