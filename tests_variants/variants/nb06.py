"""Notebook 06: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # Submodules created in another order (the cross-attention before the self-attention, the
    # target side and the head before the encoder): every model trained later starts from other
    # weights. A Python loop with a list for decoding, stopping with break.
    "target side first, list decoding": {
        "DecoderBlock.__init__": '''
            self.norm_first = norm_first
            self.cross_attn = MultiHeadAttention(d_model, n_heads)
            self.self_attn = MultiHeadAttention(d_model, n_heads)
            self.ffn = FeedForward(d_model, d_ff, activation="gelu")
            self.norm1, self.norm2, self.norm3 = (LayerNorm(d_model) for _ in range(3))
            self.dropout = nn.Dropout(dropout)
        ''',
        "DecoderBlock.forward": '''
            sublayers = [
                (self.norm1, lambda h: self.self_attn(h, self_mask)[0]),
                (self.norm2, lambda h: self.cross_attn(h, memory_mask, context=memory)[0]),
                (self.norm3, self.ffn),
            ]
            for norm, f in sublayers:
                if self.norm_first:
                    x = x + self.dropout(f(norm(x)))
                else:
                    x = norm(x + self.dropout(f(x)))
            return x
        ''',
        "EncoderDecoder.__init__": '''
            self.lm_head = nn.Linear(d_model, tgt_vocab, bias=False)
            self.tgt_emb = nn.Embedding(tgt_vocab, d_model)
            self.blocks = nn.ModuleList()
            for _ in range(n_layers):
                self.blocks.append(DecoderBlock(d_model, n_heads, d_ff=d_ff, dropout=dropout, norm_first=norm_first))
            self.encoder = TransformerEncoder(src_vocab, d_model, n_heads, n_layers, d_ff=d_ff, max_len=max_len,
                                              dropout=dropout, norm_first=norm_first)
            self.norm = LayerNorm(d_model) if norm_first else nn.Identity()
            self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model))
        ''',
        "EncoderDecoder.encode": '''
            memory = self.encoder(src, padding_mask=src_padding_mask)
            return memory
        ''',
        "EncoderDecoder.decode": '''
            T = tgt.shape[1]
            h = self.tgt_emb(tgt) + self.pe[:T]
            causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=tgt.device))
            cross = src_padding_mask.unsqueeze(1).unsqueeze(1) if src_padding_mask is not None else None
            for block in self.blocks:
                h = block(h, memory, self_mask=causal, memory_mask=cross)
            h = self.norm(h)
            return self.lm_head(h)
        ''',
        "EncoderDecoder.forward": '''
            return self.decode(tgt, self.encode(src, src_padding_mask), src_padding_mask)
        ''',
        "greedy_decode": '''
            memory = model.encode(src, src_padding_mask)
            batch = src.shape[0]
            tokens = [torch.full((batch,), bos_id, dtype=torch.long)]
            finished = torch.zeros(batch, dtype=torch.bool)
            for _ in range(max_len - 1):
                if finished.all():
                    break
                logits = model.decode(torch.stack(tokens, dim=1), memory, src_padding_mask)
                best = logits[:, -1, :].argmax(-1)
                best = torch.where(finished, torch.full_like(best, eos_id), best)
                tokens.append(best)
                finished |= best == eos_id
            return torch.stack(tokens, dim=1)
        ''',
    },
    # A second style: the FFN first, explicit pre/post branches, memory masks with view,
    # positions added with unsqueeze, a preallocated output for decoding that is cut at the end.
    "ffn first, preallocated decoding": {
        "DecoderBlock.__init__": '''
            self.ffn = FeedForward(d_model, d_ff=d_ff, activation="gelu")
            self.self_attn = MultiHeadAttention(d_model, n_heads)
            self.cross_attn = MultiHeadAttention(d_model, n_heads)
            self.norm1 = LayerNorm(d_model)
            self.norm2 = LayerNorm(d_model)
            self.norm3 = LayerNorm(d_model)
            self.dropout = nn.Dropout(p=dropout)
            self.norm_first = norm_first
        ''',
        "DecoderBlock.forward": '''
            if self.norm_first:
                h = self.norm1(x)
                x = x + self.dropout(self.self_attn(h, self_mask)[0])
                h = self.norm2(x)
                x = x + self.dropout(self.cross_attn(h, memory_mask, context=memory)[0])
                h = self.norm3(x)
                x = x + self.dropout(self.ffn(h))
                return x
            a, _ = self.self_attn(x, self_mask)
            x = self.norm1(x + self.dropout(a))
            c, _ = self.cross_attn(x, memory_mask, context=memory)
            x = self.norm2(x + self.dropout(c))
            return self.norm3(x + self.dropout(self.ffn(x)))
        ''',
        "EncoderDecoder.__init__": '''
            self.encoder = TransformerEncoder(src_vocab, d_model, n_heads, n_layers, d_ff, max_len, dropout, norm_first)
            self.blocks = nn.ModuleList([DecoderBlock(d_model, n_heads, d_ff, dropout, norm_first)
                                         for i in range(n_layers)])
            self.tgt_emb = nn.Embedding(tgt_vocab, d_model)
            self.lm_head = nn.Linear(d_model, tgt_vocab, bias=False)
            self.norm = nn.Identity()
            if norm_first:
                self.norm = LayerNorm(d_model)
            self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model))
        ''',
        "EncoderDecoder.encode": '''
            return self.encoder(src, src_padding_mask)
        ''',
        "EncoderDecoder.decode": '''
            batch, n = tgt.shape
            x = self.tgt_emb(tgt) + self.pe[:n].unsqueeze(0)
            self_mask = causal_mask(n).to(tgt.device)
            memory_mask = None
            if src_padding_mask is not None:
                memory_mask = src_padding_mask.view(batch, 1, 1, -1)
            for block in self.blocks:
                x = block(x, memory, self_mask, memory_mask)
            return self.lm_head(self.norm(x))
        ''',
        "EncoderDecoder.forward": '''
            memory = self.encode(src, src_padding_mask=src_padding_mask)
            logits = self.decode(tgt, memory, src_padding_mask=src_padding_mask)
            return logits
        ''',
        "greedy_decode": '''
            model.eval()
            memory = model.encode(src, src_padding_mask)
            B = src.size(0)
            out = torch.full((B, max_len), eos_id, dtype=torch.long, device=src.device)
            out[:, 0] = bos_id
            alive = torch.ones(B, dtype=torch.bool, device=src.device)
            length = 1
            while length < max_len and alive.any():
                next_token = model.decode(out[:, :length], memory, src_padding_mask)[:, -1].argmax(-1)
                out[:, length] = torch.where(alive, next_token, eos_id)
                alive = alive & (next_token != eos_id)
                length += 1
            return out[:, :length]
        ''',
    },
}
