"""Notebook 03: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # The PyTorch tutorial's encoding (float32, exp/log form), GPT-2's init for the table,
    # Hugging Face's bucket code, the ALiBi paper's recursive slopes, RoPE as complex numbers.
    "tutorial style, complex rope": {
        "sinusoidal_positional_encoding": '''
            position = torch.arange(seq_len).unsqueeze(1).float()
            div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
            pe = torch.zeros(seq_len, d_model)
            pe[:, 0::2] = torch.sin(position * div_term)
            pe[:, 1::2] = torch.cos(position * div_term)
            return pe
        ''',
        "LearnedPositionalEmbedding.__init__": '''
            self.embedding = nn.Embedding(max_len, d_model)
            nn.init.normal_(self.embedding.weight, mean=0.0, std=0.02)
        ''',
        "LearnedPositionalEmbedding.forward": '''
            if x.shape[1] > self.max_len:
                raise ValueError(f"input of length {x.shape[1]} exceeds max_len {self.max_len}")
            return x + self.embedding.weight[: x.shape[1]]
        ''',
        "relative_position_bucket": '''
            ret = 0
            n = -relative_position
            if bidirectional:
                num_buckets //= 2
                ret += (n < 0).to(torch.long) * num_buckets
                n = torch.abs(n)
            else:
                n = torch.max(n, torch.zeros_like(n))
            max_exact = num_buckets // 2
            is_small = n < max_exact
            val_if_large = max_exact + (
                torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
            ).to(torch.long)
            val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
            ret += torch.where(is_small, n, val_if_large)
            return ret
        ''',
        "alibi_bias": '''
            def get_slopes(n):
                def power_of_2(n):
                    start = 2 ** (-(2 ** -(math.log2(n) - 3)))
                    return [start * start ** i for i in range(n)]
                if math.log2(n).is_integer():
                    return power_of_2(n)
                closest = 2 ** math.floor(math.log2(n))
                return power_of_2(closest) + get_slopes(2 * closest)[0::2][: n - closest]

            slopes = torch.tensor(get_slopes(n_heads), dtype=torch.float32).view(-1, 1, 1)
            i = torch.arange(seq_len).view(-1, 1)
            j = torch.arange(seq_len).view(1, -1)
            return -slopes * (i - j)
        ''',
        "apply_rope": '''
            d_head = x.shape[-1]
            theta = 10000.0 ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)
            angles = torch.outer(positions.to(torch.float64), theta)  # (seq, d_head/2)
            rotation = torch.polar(torch.ones_like(angles), angles)
            rotation = rotation.to(torch.complex64 if x.dtype == torch.float32 else torch.complex128)
            pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
            return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)
        ''',
    },
    # Computing in the input's dtype, stack-and-flatten interleaving, a zero-initialised table
    # (no random draw: every later layer gets other weights), a loop over heads for ALiBi,
    # RoPE with rotate-by-pairs in the dtype of x.
    "dtype of x, zero table, loops": {
        "sinusoidal_positional_encoding": '''
            pos = torch.arange(seq_len, dtype=torch.float64).unsqueeze(-1)
            freqs = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
            angles = pos * freqs
            return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(start_dim=1).to(torch.float32)
        ''',
        "LearnedPositionalEmbedding.__init__": '''
            self.embedding = nn.Embedding(num_embeddings=max_len, embedding_dim=d_model)
            nn.init.zeros_(self.embedding.weight)
        ''',
        "LearnedPositionalEmbedding.forward": '''
            batch, seq, _ = x.shape
            if seq > self.max_len:
                raise ValueError(f"got {seq} tokens but max_len is {self.max_len}")
            positions = torch.arange(seq, device=x.device).unsqueeze(0).expand(batch, seq)
            return x + self.embedding(positions)
        ''',
        "relative_position_bucket": '''
            if bidirectional:
                half = num_buckets // 2
                offset = torch.where(relative_position > 0, half, 0)
                distance = relative_position.abs()
                n_buckets = half
            else:
                offset = torch.zeros_like(relative_position)
                distance = torch.clamp(-relative_position, min=0)
                n_buckets = num_buckets
            exact = n_buckets // 2
            scaled = torch.log(distance.double().clamp(min=1) / exact) / math.log(max_distance / exact)
            far = (exact + torch.floor(scaled * (n_buckets - exact))).long().clamp(max=n_buckets - 1)
            return (offset + torch.where(distance < exact, distance, far)).long()
        ''',
        "alibi_bias": '''
            def slopes_for(n):
                return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

            k = 1
            while 2 * k <= n_heads:
                k *= 2
            slopes = slopes_for(k) + slopes_for(2 * k)[::2][: n_heads - k]
            distance = torch.arange(seq_len)[:, None] - torch.arange(seq_len)[None, :]  # i - j
            return torch.stack([-m * distance.to(torch.float32) for m in slopes])
        ''',
        "apply_rope": '''
            d = x.size(-1)
            theta = 10000 ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
            angles = positions.to(x.dtype)[:, None] * theta  # (seq, d/2)
            cos = angles.cos().repeat_interleave(2, dim=-1)  # (seq, d)
            sin = angles.sin().repeat_interleave(2, dim=-1)
            swapped = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)  # (-x1, x0, -x3, x2, ...)
            return x * cos + swapped * sin
        ''',
    },
}
