"""Notebook 09: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # Closed forms, split() over blocks with an infinite start and torch.where, einsum tiles with a
    # preallocated output, a band from triu/tril.
    "closed forms, einsum tiles": {
        "attention_flops": '''
            return 8 * n * d**2 + 4 * n**2 * d
        ''',
        "block_flops": '''
            if d_ff is None:
                d_ff = 4 * d
            return attention_flops(n, d) + 4 * n * d * d_ff
        ''',
        "online_softmax": '''
            m = torch.full(x.shape[:-1], float("-inf"), dtype=x.dtype, device=x.device)
            l = torch.zeros_like(m)
            for block in x.split(block_size, dim=-1):
                m_new = torch.maximum(m, block.amax(dim=-1))
                # a block of -inf before any finite entry: keep the sum at 0 instead of NaN
                alpha = torch.where(m_new == float("-inf"), torch.zeros_like(m), torch.exp(m - m_new))
                shifted = torch.where(m_new[..., None] == float("-inf"), torch.full_like(block, float("-inf")),
                                      block - m_new[..., None])
                l = l * alpha + shifted.exp().sum(dim=-1)
                m = m_new
            return torch.exp(x - m.unsqueeze(-1)) / l.unsqueeze(-1)
        ''',
        "flash_attention_forward": '''
            seq_q, seq_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
            out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
            for i in range(0, seq_q, block_size):
                qi = q[..., i:i + block_size, :]
                rows = qi.shape[-2]
                m = torch.full(qi.shape[:-1], torch.finfo(q.dtype).min, dtype=q.dtype, device=q.device)
                l = torch.zeros_like(m)
                acc = torch.zeros(*qi.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
                end = min(seq_k, i + rows) if causal else seq_k  # keys past the block's last query: skipped
                for j in range(0, end, block_size):
                    kj, vj = k[..., j:j + block_size, :], v[..., j:j + block_size, :]
                    s = torch.einsum("...qd,...kd->...qk", qi, kj) / math.sqrt(d)
                    if causal:
                        allowed = torch.ones(rows, kj.shape[-2], dtype=torch.bool, device=q.device).tril(i - j)
                        s = torch.where(allowed, s, torch.tensor(float("-inf"), dtype=s.dtype, device=s.device))
                    m_new = torch.maximum(m, s.amax(dim=-1))
                    p = torch.exp(s - m_new.unsqueeze(-1))
                    alpha = torch.exp(m - m_new)
                    l = alpha * l + p.sum(dim=-1)
                    acc = alpha.unsqueeze(-1) * acc + torch.einsum("...qk,...kv->...qv", p, vj)
                    m = m_new
                out[..., i:i + rows, :] = acc / l.unsqueeze(-1)
            return out
        ''',
        "sliding_window_mask": '''
            return torch.ones(n, n, dtype=torch.bool).triu(-w).tril(w)
        ''',
    },
    # Sums built term by term, the first block as the start, rescaling by a division, a band of comparisons.
    "term by term, first block first": {
        "attention_flops": '''
            flops = 0
            for _ in ("q", "k", "v", "out"):
                flops += 2 * n * d * d  # (n x d)(d x d)
            flops += 2 * n * n * d  # scores
            flops += 2 * n * n * d  # weights @ v
            return int(flops)
        ''',
        "block_flops": '''
            d_ff = d_ff or 4 * d
            ffn = 2 * n * d * d_ff + 2 * n * d_ff * d
            return int(attention_flops(n, d) + ffn)
        ''',
        "online_softmax": '''
            floor = torch.finfo(x.dtype).min
            blocks = x.split(block_size, dim=-1)
            m = blocks[0].amax(dim=-1).clamp(min=floor)
            l = torch.exp(blocks[0] - m[..., None]).sum(dim=-1)
            for block in blocks[1:]:
                m_new = torch.maximum(m, block.amax(dim=-1))
                l = l / torch.exp(m_new - m) + torch.exp(block - m_new[..., None]).sum(dim=-1)
                m = m_new
            return torch.exp(x - m[..., None]) / l[..., None]
        ''',
        "flash_attention_forward": '''
            scale = q.shape[-1] ** -0.5
            seq_q, seq_k = q.shape[-2], k.shape[-2]
            blocks_out = []
            for qs in range(0, seq_q, block_size):
                qe = min(qs + block_size, seq_q)
                qb = q[..., qs:qe, :]
                m = torch.full(qb.shape[:-1], torch.finfo(q.dtype).min, dtype=q.dtype, device=q.device)
                l = torch.zeros_like(m)
                acc = torch.zeros(*qb.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
                for ks in range(0, seq_k, block_size):
                    if causal and ks >= qe:
                        break
                    ke = min(ks + block_size, seq_k)
                    s = (qb @ k[..., ks:ke, :].mT) * scale
                    if causal and ke - 1 > qs:
                        future = torch.arange(ks, ke, device=q.device)[None, :] > torch.arange(qs, qe, device=q.device)[:, None]
                        s = s.masked_fill(future, float("-inf"))
                    m_new = torch.max(m, s.max(dim=-1).values)
                    p = (s - m_new[..., None]).exp()
                    correction = (m - m_new).exp()
                    l = l * correction + p.sum(-1)
                    acc = acc * correction[..., None] + p @ v[..., ks:ke, :]
                    m = m_new
                blocks_out.append(acc / l[..., None])
            return torch.cat(blocks_out, dim=-2)
        ''',
        "sliding_window_mask": '''
            idx = torch.arange(n)
            return (idx[None, :] >= idx[:, None] - w) & (idx[None, :] <= idx[:, None] + w)
        ''',
    },
}
