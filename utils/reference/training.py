"""Notebook 08 · Training dynamics: reference implementations.

* ``adamw_step``: one AdamW update of one tensor, written out the way
  ``torch.optim.AdamW`` computes it (decoupled weight decay, bias-corrected
  moments).
* ``lr_at``: linear warm-up, then cosine decay; the training script
  (``utils.train``) imports it from here.
* ``accumulation_step``: one optimizer step from k micro-batches whose
  gradients add up to the gradient of their union.
* ``compute_optimal``: Chinchilla's compute-optimal model size and number of
  training tokens for a FLOP budget, from C = 6 N D and D = 20 N.
"""

from __future__ import annotations

import math

import torch

__all__ = ["adamw_step", "lr_at", "accumulation_step", "compute_optimal"]


@torch.no_grad()
def adamw_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               step: int, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 1e-2) -> None:
    """One AdamW update of ``param``, in place, as ``torch.optim.AdamW`` does it.

    param, grad, exp_avg (m), exp_avg_sq (v): tensors of one shape and float dtype.
    param, exp_avg and exp_avg_sq change in place; grad is only read.
    step: the number of this update, 1 on the first.
    """
    beta1, beta2 = betas
    param.mul_(1 - lr * weight_decay)                              # decoupled decay: shrink the weights
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)                # m: moving average of g
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)   # v: moving average of g²
    m_hat = exp_avg / (1 - beta1 ** step)                          # bias correction: m and v start at 0
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    param.addcdiv_(m_hat, v_hat.sqrt() + eps, value=-lr)           # w -= lr * m_hat / (sqrt(v_hat) + eps)


def lr_at(step: int, warmup: int, total: int, max_lr: float, min_lr: float) -> float:
    """Linear warm-up from max_lr / warmup to max_lr over `warmup` steps, then cosine decay to min_lr at `total`.

    The training script (``utils.train``) uses this one too.
    """
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)          # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def accumulation_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """One optimizer step with the gradient of all k micro-batches together.

    model(x, y) -> (logits, loss), loss the mean over its micro-batch.
    micro_batches: k pairs (x, y) of the same shape (b, T), int64.
    Returns the mean loss over the k micro-batches (a float).
    """
    k = len(micro_batches)
    optimizer.zero_grad(set_to_none=True)          # whatever .grad held before must not count
    mean_loss = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)                      # mean over b * T targets
        (loss / k).backward()                      # .grad += d(loss / k): the sum is the mean over k b T
        mean_loss += loss.item() / k
    optimizer.step()                               # once, with the accumulated gradient
    return mean_loss


def compute_optimal(flops: float, tokens_per_param: float = 20.0) -> tuple[float, float]:
    """Compute-optimal (parameters N, training tokens D) for a budget of `flops`.

    C = 6 N D (forward 2, backward 4 FLOPs per parameter per token) and D = r N,
    so C = 6 r N² and N = sqrt(C / (6 r)).
    """
    n_params = math.sqrt(flops / (6 * tokens_per_param))
    return n_params, tokens_per_param * n_params
