"""Notebook 05: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # The FFN built before the attention, and the blocks before the embedding: the same modules,
    # drawn in another order from the random stream, so every model trained later starts elsewhere.
    "ffn first, blocks before embedding": {
        "TransformerBlock.__init__": '''
            self.norm_first = norm_first
            self.dropout = nn.Dropout(dropout)
            self.norm2 = LayerNorm(d_model)
            self.ffn = FeedForward(d_model, d_ff, activation="gelu")
            self.norm1 = LayerNorm(d_model)
            self.attn = MultiHeadAttention(d_model, n_heads)
        ''',
        "TransformerBlock.forward": '''
            def attention(h):
                return self.attn(h, mask)[0]

            if not self.norm_first:
                x = self.norm1(x + self.dropout(attention(x)))
                return self.norm2(x + self.dropout(self.ffn(x)))
            x = x + self.dropout(attention(self.norm1(x)))
            return x + self.dropout(self.ffn(self.norm2(x)))
        ''',
        "TransformerEncoder.__init__": '''
            self.positional = positional
            self.blocks = nn.ModuleList()
            for _ in range(n_layers):
                self.blocks.append(TransformerBlock(d_model, n_heads, d_ff=d_ff, dropout=dropout,
                                                    norm_first=norm_first))
            self.norm = LayerNorm(d_model) if norm_first else nn.Identity()
            self.token_emb = nn.Embedding(vocab_size, d_model)
            pe = sinusoidal_positional_encoding(max_len, d_model)
            self.register_buffer("pe", pe)
            self.max_len = max_len
        ''',
        "TransformerEncoder.forward": '''
            batch, seq = idx.shape
            if seq > self.max_len:
                raise ValueError(f"got {seq} tokens but max_len is {self.max_len}")
            x = self.token_emb(idx)
            if self.positional:
                x = x + self.pe[:seq].unsqueeze(0)
            attn_mask = padding_mask.view(batch, 1, 1, seq) if padding_mask is not None else None
            for block in self.blocks:
                x = block(x, mask=attn_mask)
            return self.norm(x)
        ''',
    },
    # A second style: one sublayer helper for both arrangements, a list comprehension for the
    # blocks, the mask built with unsqueeze, the positions added through a multiplication.
    "sublayer helper": {
        "TransformerBlock.__init__": '''
            self.attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads)
            self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
            self.ffn = FeedForward(d_model, d_ff=d_ff, activation="gelu", dropout=0.0)
            self.dropout = nn.Dropout(p=dropout)
            self.norm_first = bool(norm_first)
        ''',
        "TransformerBlock.forward": '''
            def sublayer(x, f, norm):
                if self.norm_first:
                    return x + self.dropout(f(norm(x)))
                return norm(x + self.dropout(f(x)))

            x = sublayer(x, lambda h: self.attn(h, mask)[0], self.norm1)
            x = sublayer(x, self.ffn, self.norm2)
            return x
        ''',
        "TransformerEncoder.__init__": '''
            self.token_emb = nn.Embedding(vocab_size, d_model)
            self.blocks = nn.ModuleList([TransformerBlock(d_model, n_heads, d_ff, dropout, norm_first)
                                         for layer in range(n_layers)])
            self.norm = nn.Identity() if not norm_first else LayerNorm(d_model)
            self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model), persistent=True)
            self.positional = positional
        ''',
        "TransformerEncoder.forward": '''
            n = idx.size(-1)
            if n > len(self.pe):
                raise ValueError(f"the sequence ({n} tokens) is longer than max_len ({len(self.pe)})")
            x = self.token_emb(idx) + self.pe[:n] * float(self.positional)
            mask = padding_mask.unsqueeze(1).unsqueeze(2) if padding_mask is not None else None
            for block in self.blocks:
                x = block(x, mask)
            return self.norm(x)
        ''',
    },
}
