"""Notebook 02: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # reshape/permute, the layers created in reverse order (so every later random draw differs).
    "permute, layers in reverse order": {
        "split_heads": '''
            b, t, c = x.shape
            if c % n_heads:
                raise ValueError(f"d_model={c} must be divisible by n_heads={n_heads}")
            return x.reshape(b, t, n_heads, -1).permute(0, 2, 1, 3)
        ''',
        "merge_heads": '''
            b, h, t, dh = x.shape
            return x.permute(0, 2, 1, 3).contiguous().view(b, t, h * dh)
        ''',
        "MultiHeadAttention.__init__": '''
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
            self.out_proj = nn.Linear(d_model, d_model, bias=bias)
            self.v_proj = nn.Linear(d_model, d_model, bias=bias)
            self.k_proj = nn.Linear(d_model, d_model, bias=bias)
            self.q_proj = nn.Linear(d_model, d_model, bias=bias)
            self.n_heads, self.d_head = n_heads, d_model // n_heads
        ''',
        "MultiHeadAttention.forward": '''
            q, k, v = (split_heads(proj(x), self.n_heads) for proj in (self.q_proj, self.k_proj, self.v_proj))
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
            return self.out_proj(merge_heads(out)), weights
        ''',
    },
    # chunk/stack and unbind/cat (copies, not views), Xavier weights and zero biases, attention by hand.
    "chunk and cat, xavier init, attention by hand": {
        "split_heads": '''
            if x.size(-1) % n_heads != 0:
                raise ValueError(f"cannot split {x.size(-1)} features into {n_heads} heads")
            return torch.stack(x.chunk(n_heads, dim=-1), dim=1)
        ''',
        "merge_heads": '''
            return torch.cat(x.unbind(dim=1), dim=-1)
        ''',
        "MultiHeadAttention.__init__": '''
            self.n_heads = n_heads
            self.d_head = d_model // n_heads
            for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                layer = nn.Linear(d_model, d_model, bias=bias)
                nn.init.xavier_uniform_(layer.weight)
                if bias:
                    nn.init.zeros_(layer.bias)
                setattr(self, name, layer)
        ''',
        "MultiHeadAttention.forward": '''
            q = split_heads(self.q_proj(x), self.n_heads)
            k = split_heads(self.k_proj(x), self.n_heads)
            v = split_heads(self.v_proj(x), self.n_heads)
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (batch, heads, seq, seq)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            return self.out_proj(merge_heads(weights @ v)), weights
        ''',
    },
    # The key and value layers first (they are what a KV cache keeps), then the query and the output.
    "kv first": {
        "MultiHeadAttention.__init__": '''
            self.n_heads = n_heads
            self.d_head = d_model // n_heads
            self.k_proj = nn.Linear(d_model, d_model, bias=bias)
            self.v_proj = nn.Linear(d_model, d_model, bias=bias)
            self.q_proj = nn.Linear(d_model, d_model, bias=bias)
            self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        ''',
    },
    # GPT-2's initialisation: normal(0, 0.02) weights, zero biases.
    "gpt2 init": {
        "MultiHeadAttention.__init__": '''
            self.n_heads = n_heads
            self.d_head = d_model // n_heads
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
                nn.Linear(d_model, d_model, bias=bias) for _ in range(4))
            for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
                nn.init.normal_(layer.weight, mean=0.0, std=0.02)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        ''',
    },
}
