"""Notebook 08: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # PyTorch's own bookkeeping: bias corrections folded into a step size, lerp_ for m, the
    # schedule written as "max minus what the cosine has removed", losses stacked as tensors.
    "step size folded": {
        "adamw_step": '''
            beta1, beta2 = betas
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).add_((1 - beta2) * grad * grad)
            step_size = lr / (1 - beta1 ** step)
            denom = exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step) + eps
            param.mul_(1 - lr * weight_decay)
            param.addcdiv_(exp_avg, denom, value=-step_size)
        ''',
        "lr_at": '''
            if step >= total:
                return min_lr
            if step < warmup:
                return (step + 1) / warmup * max_lr
            t = (step - warmup) / (total - warmup)
            return max_lr - (max_lr - min_lr) * (1 - math.cos(math.pi * t)) / 2
        ''',
        "accumulation_step": '''
            optimizer.zero_grad()
            k = len(micro_batches)
            losses = []
            for x, y in micro_batches:
                logits, loss = model(x, y)
                loss.div(k).backward()
                losses.append(loss.detach())
            optimizer.step()
            return torch.stack(losses).mean().item()
        ''',
        "compute_optimal": '''
            n = (flops / 6 / tokens_per_param) ** 0.5
            return n, n * tokens_per_param
        ''',
    },
    # Out-of-place arithmetic written straight from the formulas, copied back into the tensors;
    # the schedule through a cosine factor; gradients cleared by hand; D solved first.
    "out of place": {
        "adamw_step": '''
            b1, b2 = betas
            decayed = param - lr * weight_decay * param
            m = b1 * exp_avg + (1 - b1) * grad
            v = b2 * exp_avg_sq + (1 - b2) * grad ** 2
            exp_avg.copy_(m)
            exp_avg_sq.copy_(v)
            m_hat = m / (1 - b1 ** step)
            v_hat = v / (1 - b2 ** step)
            param.copy_(decayed - lr * m_hat / (torch.sqrt(v_hat) + eps))
        ''',
        "lr_at": '''
            if warmup > 0 and step < warmup:
                return float(max_lr * (step + 1) / warmup)
            if step < total:
                factor = (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2
                return float(min_lr + factor * (max_lr - min_lr))
            return float(min_lr)
        ''',
        "accumulation_step": '''
            for p in model.parameters():
                p.grad = None
            total = 0.0
            for x, y in micro_batches:
                loss = model(x, y)[1]
                (loss / len(micro_batches)).backward()
                total += loss.item()
            optimizer.step()
            return total / len(micro_batches)
        ''',
        "compute_optimal": '''
            d = math.sqrt(flops * tokens_per_param / 6)
            return d / tokens_per_param, d
        ''',
    },
}
