"""Notebook 01: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # einsum for both products, torch.where for the mask, a comparison of positions for the causal mask.
    "einsum and where": {
        "softmax": '''
            m = x.max(dim=dim, keepdim=True).values
            e = torch.exp(x - m)
            return e / torch.sum(e, dim=dim, keepdim=True)
        ''',
        "scaled_dot_product_attention": '''
            scores = torch.einsum("...qd,...kd->...qk", q, k) * (1.0 / math.sqrt(q.shape[-1]))
            if mask is not None:
                scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
            weights = softmax(scores, dim=-1)
            return torch.einsum("...qk,...kv->...qv", weights, v), weights
        ''',
        "causal_mask": '''
            positions = torch.arange(seq_len)
            return positions[:, None] >= positions[None, :]
        ''',
    },
    # The queries scaled before the product, the softmax axis moved last and back, an additive mask.
    "scale q first, additive mask": {
        "softmax": '''
            moved = x.transpose(dim, -1)
            shifted = moved - moved.amax(dim=-1, keepdim=True)
            e = shifted.exp()
            out = e / e.sum(dim=-1, keepdim=True)
            return out.transpose(dim, -1)
        ''',
        "scaled_dot_product_attention": '''
            scores = torch.matmul(q / q.shape[-1] ** 0.5, k.mT)  # (..., seq_q, seq_k)
            if mask is not None:
                bias = torch.zeros(mask.shape, dtype=scores.dtype).masked_fill(mask.logical_not(), -math.inf)
                scores = scores + bias
            weights = softmax(scores)
            return torch.matmul(weights, v), weights
        ''',
        "causal_mask": '''
            return ~torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), diagonal=1)
        ''',
    },
}
