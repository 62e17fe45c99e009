"""Notebook 07: correct learner code in other styles (see tests_variants/test_learner_variants.py).

Written from the student notebook (docstrings, tables, hints). Each set builds its
modules in another order than the reference, so it draws other initial weights from
the random stream: every model trained after it (section 6) is another draw.
"""

VARIANTS = {
    # einsum and torch.where; c_proj before c_attn, the MLP before the attention, lm_head before wte;
    # a list-based cache; generate_cached that prefills all but the last prompt token.
    "einsum, lm_head first, prefill T-1": {
        "CausalSelfAttention.__init__": '''
            self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        ''',
        "CausalSelfAttention.forward": '''
            qkv = self.c_attn(x)                                   # (B, T, 3C)
            q, k, v = qkv.chunk(3, dim=-1)
            q = q.reshape(B, T, self.n_head, hs).permute(0, 2, 1, 3)
            k = k.reshape(B, T, self.n_head, hs).permute(0, 2, 1, 3)
            v = v.reshape(B, T, self.n_head, hs).permute(0, 2, 1, 3)
        ''',
        "CausalSelfAttention.forward#2": '''
            att = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(hs)
            allowed = mask if mask is not None else torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = torch.where(allowed, att, torch.full_like(att, float("-inf")))
            att = F.dropout(att.softmax(dim=-1), p=self.dropout, training=self.training)
            y = torch.einsum("bhqk,bhkd->bhqd", att, v)
            y = y.permute(0, 2, 1, 3).reshape(B, T, C)
        ''',
        "Block.__init__": '''
            self.mlp = MLP(config)
            self.attn = CausalSelfAttention(config)
            self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        ''',
        "Block.forward": '''
            a = self.attn(self.ln_1(x), kv_cache=kv_cache)
            x = a + x
            x = self.mlp(self.ln_2(x)) + x
        ''',
        "GPT.__init__": '''
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.lm_head.weight = self.wte.weight
            self.drop = nn.Dropout(config.dropout)
            blocks = []
            for _ in range(config.n_layer):
                blocks.append(Block(config))
            self.blocks = nn.ModuleList(blocks)
            self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        ''',
        "GPT.__init__#2": '''
            std = 0.02 / math.sqrt(2 * config.n_layer)
            for block in self.blocks:
                nn.init.normal_(block.mlp.c_proj.weight, 0.0, std)
                nn.init.normal_(block.attn.c_proj.weight, 0.0, std)
        ''',
        "GPT._init_weights": '''
            if isinstance(module, (nn.Linear, nn.Embedding)):
                torch.nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        ''',
        "GPT.forward": '''
            tok_emb = self.wte(idx)                                 # (B, T, C)
            pos_emb = self.wpe.weight[past:past + T]                # (T, C)
            x = self.drop(tok_emb + pos_emb)
            for i, block in enumerate(self.blocks):
                x = block(x, caches[i])
            x = self.ln_f(x)
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.transpose(1, 2), targets) if targets is not None else None
        ''',
        "sample_next_token": '''
            if temperature == 0:
                return torch.argmax(logits, dim=-1).unsqueeze(-1)
            scaled = logits / temperature
            if top_k is not None:
                k = min(top_k, scaled.shape[-1])
                kth = scaled.topk(k, dim=-1).values[..., -1:]
                scaled = torch.where(scaled < kth, torch.full_like(scaled, float("-inf")), scaled)
            probs = scaled.softmax(dim=-1)
            if top_p is not None:
                p_sorted, order = probs.sort(dim=-1, descending=True)
                drop = (p_sorted.cumsum(dim=-1) - p_sorted) >= top_p
                p_sorted = p_sorted.masked_fill(drop, 0.0)
                probs = torch.zeros_like(probs).scatter(-1, order, p_sorted)
                probs = probs / probs.sum(dim=-1, keepdim=True)
            return torch.multinomial(probs, 1)
        ''',
        "generate": '''
            out = idx
            for _ in range(max_new_tokens):
                ctx = out if out.size(1) <= model.config.block_size else out[:, -model.config.block_size:]
                last_logits = model(ctx)[0][:, -1, :]
                out = torch.cat((out, sample_next_token(last_logits, temperature=temperature, top_k=top_k,
                                                        top_p=top_p)), dim=1)
            return out
        ''',
        "KVCache.__init__": '''
            self.keys = []
            self.values = []
        ''',
        "KVCache.seq_len": '''
            return sum(k.size(2) for k in self.keys)
        ''',
        "KVCache.update": '''
            self.keys.append(k)
            self.values.append(v)
            return torch.cat(self.keys, dim=2), torch.cat(self.values, dim=2)
        ''',
        "generate_cached": '''
            B, T = idx.shape
            if T + max_new_tokens > model.config.block_size:
                raise ValueError(f"prompt ({T}) + new tokens ({max_new_tokens}) exceed block_size")
            caches = [KVCache() for _ in range(len(model.blocks))]
            if T > 1:
                model(idx[:, :-1], kv_caches=caches)                # all but the last prompt token
            last, out = idx[:, -1:], idx
            for _ in range(max_new_tokens):
                logits, _ = model(last, kv_caches=caches)
                last = sample_next_token(logits[:, -1, :], temperature, top_k, top_p)
                out = torch.cat([out, last], dim=1)
            return out
        ''',
    },
    # matmul and masked_fill; the embedding tied to the head the other way round (wte.weight = lm_head.weight);
    # blocks appended in a loop; a KV cache under other names; generate_cached that runs one last, unneeded step.
    "matmul, wte tied to lm_head, extra last step": {
        "CausalSelfAttention.__init__": '''
            self.c_attn = nn.Linear(in_features=config.n_embd, out_features=3 * config.n_embd, bias=config.bias)
            self.c_proj = nn.Linear(in_features=config.n_embd, out_features=config.n_embd, bias=config.bias)
        ''',
        "CausalSelfAttention.forward": '''
            q, k, v = [t.view(B, T, self.n_head, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=-1)]
        ''',
        "CausalSelfAttention.forward#2": '''
            att = (q @ k.transpose(-2, -1)) * hs ** -0.5            # (B, nh, T, T_k)
            if mask is None:
                mask = torch.tril(torch.ones(T, T, device=x.device)).bool()
            att = att.masked_fill(~mask, float("-inf"))
            att = nn.functional.dropout(nn.functional.softmax(att, dim=-1), self.dropout, self.training)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
        ''',
        "Block.__init__": '''
            self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias), nn.LayerNorm(config.n_embd, bias=config.bias)
            self.attn, self.mlp = CausalSelfAttention(config), MLP(config)
        ''',
        "Block.forward": '''
            x = x + self.attn(self.ln_1(x), kv_cache=kv_cache)
            x = x + self.mlp(self.ln_2(x))
        ''',
        "GPT.__init__": '''
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
            self.drop = nn.Dropout(config.dropout)
            self.blocks = nn.ModuleList()
            for _ in range(config.n_layer):
                self.blocks.append(Block(config))
            self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.wte.weight = self.lm_head.weight                   # one matrix, used twice
        ''',
        "GPT.__init__#2": '''
            with torch.no_grad():
                for pn, p in self.named_parameters():
                    if pn.endswith("c_proj.weight"):
                        p.normal_(mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))
        ''',
        "GPT._init_weights": '''
            if type(module) is nn.Linear:
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0.0)
            elif type(module) is nn.Embedding:
                module.weight.data.normal_(mean=0.0, std=0.02)
        ''',
        "GPT.forward": '''
            positions = torch.arange(T, device=idx.device) + past
            h = self.drop(self.wte(idx) + self.wpe(positions)[None])
            for i in range(len(self.blocks)):
                h = self.blocks[i](h, kv_cache=caches[i])
            logits = self.lm_head(self.ln_f(h))
            if targets is None:
                loss = None
            else:
                loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        ''',
        "sample_next_token": '''
            if temperature == 0:
                return logits.max(dim=-1, keepdim=True).indices
            z = logits / temperature
            if top_k is not None:
                threshold = z.topk(min(top_k, z.size(-1)), dim=-1).values.min(dim=-1, keepdim=True).values
                z = z.masked_fill(z < threshold, float("-inf"))
            if top_p is not None:
                sorted_z, order = z.sort(dim=-1, descending=True)
                sorted_p = sorted_z.softmax(dim=-1)
                mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p
                sorted_z = torch.where(mass_before < top_p, sorted_z, torch.tensor(float("-inf")))
                z = sorted_z.gather(-1, order.argsort(dim=-1))      # back to vocabulary order
            return torch.multinomial(z.softmax(dim=-1), num_samples=1)
        ''',
        "generate": '''
            block = model.config.block_size
            for _ in range(max_new_tokens):
                logits, _ = model(idx[:, -block:])
                idx = torch.cat([idx, sample_next_token(logits[:, -1], temperature, top_k, top_p)], dim=-1)
            return idx
        ''',
        "KVCache.__init__": '''
            self.cache_k, self.cache_v = None, None
        ''',
        "KVCache.seq_len": '''
            if self.cache_k is None:
                return 0
            return self.cache_k.shape[-2]
        ''',
        "KVCache.update": '''
            if self.cache_k is not None:
                k = torch.cat((self.cache_k, k), dim=-2)
                v = torch.cat((self.cache_v, v), dim=-2)
            self.cache_k, self.cache_v = k, v
            return k, v
        ''',
        "generate_cached": '''
            if idx.shape[1] + max_new_tokens > model.config.block_size:
                raise ValueError("the prompt and the new tokens must fit in block_size")
            caches = [KVCache() for _ in model.blocks]
            logits, _ = model(idx, kv_caches=caches)
            for _ in range(max_new_tokens):
                next_id = sample_next_token(logits[:, -1, :], temperature=temperature, top_k=top_k, top_p=top_p)
                idx = torch.cat([idx, next_id], dim=1)
                logits, _ = model(next_id, kv_caches=caches)        # one step more than needed: harmless
            return idx
        ''',
    },
}
