"""Notebook 10: correct learner code in other styles (see tests_variants/test_learner_variants.py).

Written from the student notebook (docstrings, tables, hints).
"""

VARIANTS = {
    # einsum over (B, T, n_head, hs) without transposing, torch.where with a tril mask; xlogy for 0 log 0;
    # fancy indexing with aranges instead of diagonals.
    "einsum, xlogy, arange indexing": {
        "attention_weights_from_qkv": '''
            q, k = qkv[..., :C], qkv[..., C:2 * C]
            q = q.reshape(B, T, n_head, hs)
            k = k.reshape(B, T, n_head, hs)
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / hs ** 0.5
            allowed = torch.ones(T, T, dtype=torch.bool, device=qkv.device).tril()
            scores = torch.where(allowed, scores, torch.tensor(float("-inf"), dtype=scores.dtype, device=qkv.device))
            return torch.softmax(scores, dim=-1)
        ''',
        "attention_entropy": '''
            return -torch.xlogy(weights, weights).sum(dim=-1).mean(dim=(0, 2))
        ''',
        "previous_token_score": '''
            T = weights.size(-1)
            t = torch.arange(1, T, device=weights.device)
            return weights[:, :, t, t - 1].mean(dim=(0, 2))
        ''',
        "induction_score": '''
            T = weights.size(-1)
            t = torch.arange(period, T, device=weights.device)
            return weights[:, :, t, t - period + 1].mean(dim=(0, 2))
        ''',
    },
    # chunk and unflatten, a large negative number instead of -inf under triu; torch.where for 0 log 0;
    # explicit loops and sums divided by the count.
    "chunk, -1e9, loops": {
        "attention_weights_from_qkv": '''
            q, k, _ = qkv.chunk(3, dim=-1)
            q = q.unflatten(-1, (n_head, hs)).permute(0, 2, 1, 3)   # (B, nh, T, hs)
            k = k.unflatten(-1, (n_head, hs)).permute(0, 2, 1, 3)
            scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(hs))
            future = torch.triu(torch.ones(T, T, device=qkv.device), diagonal=1).bool()
            scores = scores.masked_fill(future, -1e9)
            return F.softmax(scores, dim=-1)
        ''',
        "attention_entropy": '''
            logp = torch.where(weights > 0, weights.log(), torch.zeros_like(weights))
            per_query = -(weights * logp).sum(dim=-1)                # (B, H, T)
            return per_query.mean(dim=0).mean(dim=-1)
        ''',
        "previous_token_score": '''
            B, H, T, _ = weights.shape
            total = torch.zeros(H, dtype=weights.dtype, device=weights.device)
            for t in range(1, T):
                total = total + weights[:, :, t, t - 1].sum(dim=0)
            return total / (B * (T - 1))
        ''',
        "induction_score": '''
            B, H, T, _ = weights.shape
            stripe = torch.diagonal(weights, offset=-(period - 1), dim1=2, dim2=3)[..., 1:]   # (B, H, T - period)
            return stripe.sum(dim=(0, 2)) / (B * (T - period))
        ''',
    },
}
