"""Every notebook-07 checker accepts the reference and rejects plausible mistakes.

Each wrong implementation below is a mistake learners really make; the test
asserts the checker rejects it AND that its message points at that mistake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import checks, reference
from utils.checks._core import rng
from utils.checks.gpt import _block_truth, _block_params, _config, _gpt2_to_ours, _gpt_forward, _hf_gpt2

from checker_harness import checker_tests

CSA, Block, GPT, KVCache = reference.CausalSelfAttention, reference.Block, reference.GPT, reference.KVCache

# ------------------------------------------------------------ CausalSelfAttention


class _CSA(CSA):
    """The reference attention written out with knobs, so one step can be changed."""
    causal, transpose, scale_by_model, order, project, use_mask = True, True, False, "qkv", True, True

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        if self.order == "kqv":
            q, k = k, q
        if self.transpose:
            q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        else:
            q, k, v = (t.reshape(B, self.n_head, T, hs) for t in (q, k, v))
        mask = None
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)
            mask = reference.causal_mask(k.size(2))[-T:]
        if not self.use_mask:
            mask = None
        scale = 1 / math.sqrt(C) if self.scale_by_model else None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and mask is None,
                                           scale=scale)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y) if self.project else y


class CSANoCausalMask(_CSA):  # is_causal forgotten: every position sees the whole sequence
    causal = False


class CSASplitWithoutTranspose(_CSA):  # reshape to (B, nh, T, hs) directly
    transpose = False


class CSAScaleByModelDim(_CSA):  # 1/sqrt(n_embd) instead of 1/sqrt(head_size)
    scale_by_model = True


class CSAKeysFirst(_CSA):  # split's order read as k, q, v
    order = "kqv"


class CSANoOutputProjection(_CSA):  # c_proj built but never applied
    project = False


class CSAIsCausalWithCache(_CSA):  # ignores the mask built for the cache, is_causal=True always
    use_mask = False


class CSAAlwaysBias(CSA):  # config.bias ignored: the Linear layers always have biases
    def __init__(self, config):
        super().__init__(config)
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)


# ------------------------------------------------------------ Block


class _Block(Block):
    def forward(self, x, kv_cache=None):
        return self.step(x)


class BlockPostNorm(_Block):  # the 2017 layout
    def step(self, x):
        x = self.ln_1(x + self.attn(x))
        return self.ln_2(x + self.mlp(x))


class BlockNoAttentionResidual(_Block):
    def step(self, x):
        x = self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class BlockNoMLPResidual(_Block):
    def step(self, x):
        x = x + self.attn(self.ln_1(x))
        return self.mlp(self.ln_2(x))


class BlockMLPFirst(_Block):
    def step(self, x):
        x = x + self.mlp(self.ln_2(x))
        return x + self.attn(self.ln_1(x))


class BlockOneNorm(_Block):  # ln_1 used for both sublayers
    def step(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_1(x))


# ------------------------------------------------------------ GPT


class GPTUntied(GPT):  # a separate lm_head matrix
    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        nn.init.normal_(self.lm_head.weight, std=0.02)


class GPTDefaultInit(GPT):  # PyTorch's default initialisation left in place
    def __init__(self, config):
        nn.Module.__init__(self)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight


class GPTUnscaledResidualInit(GPTDefaultInit):  # N(0, 0.02) everywhere, c_proj not scaled down
    def __init__(self, config):
        super().__init__(config)
        self.apply(self._init_weights)


class GPTPlainListBlocks(GPT):  # a Python list hides the blocks from .parameters()
    def __init__(self, config):
        super().__init__(config)
        blocks = list(self._modules.pop("blocks"))
        self.blocks = blocks


class GPTNoFinalNorm(GPT):
    def forward(self, idx, targets=None, kv_caches=None):
        self.ln_f.forward = lambda x: x
        return super().forward(idx, targets, kv_caches)


class GPTNoPositionEmbedding(GPT):
    def forward(self, idx, targets=None, kv_caches=None):
        self.wpe.forward = lambda pos: torch.zeros(pos.size(0), self.config.n_embd)
        return super().forward(idx, targets, kv_caches)


class GPTLossOnProbabilities(GPT):
    def forward(self, idx, targets=None, kv_caches=None):
        logits, _ = super().forward(idx, None, kv_caches)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.softmax(-1).view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


class GPTPositionsRestart(GPT):  # with a cache, positions start again at 0
    def forward(self, idx, targets=None, kv_caches=None):
        B, T = idx.shape
        caches = kv_caches if kv_caches is not None else [None] * len(self.blocks)
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block, cache in zip(self.blocks, caches):
            x = block(x, cache)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


# ------------------------------------------------------------ sampling


def sample_divides_by_zero(logits, temperature=1.0, top_k=None, top_p=None):  # no greedy special case
    return torch.multinomial(F.softmax(logits / temperature, dim=-1), 1)


def sample_multiplies_by_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    return reference.sample_next_token(logits * temperature * temperature, temperature, top_k, top_p)


def sample_always_argmax(logits, temperature=1.0, top_k=None, top_p=None):  # never samples
    return logits.argmax(-1, keepdim=True)


def sample_top_k_smallest(logits, temperature=1.0, top_k=None, top_p=None):  # topk(largest=False)
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1, largest=False).values[:, [-1]]
        logits = logits.masked_fill(logits > kth, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1)


def sample_top_p_drops_crossing_token(logits, temperature=1.0, top_k=None, top_p=None):  # cumsum > p removed
    if top_p is None:
        return reference.sample_next_token(logits, temperature, top_k, top_p)
    sorted_logits, order = torch.sort(logits / temperature, dim=-1, descending=True)
    cum = F.softmax(sorted_logits, dim=-1).cumsum(-1)
    sorted_logits = sorted_logits.masked_fill(cum > top_p, float("-inf"))
    sorted_logits[:, 0] = torch.sort(logits, dim=-1, descending=True).values[:, 0]  # keep at least one
    logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(F.softmax(logits, dim=-1), 1)


def sample_top_p_unsorted(logits, temperature=1.0, top_k=None, top_p=None):  # cumsum in vocabulary order
    if top_p is None:
        return reference.sample_next_token(logits, temperature, top_k, top_p)
    probs = F.softmax(logits / temperature, dim=-1)
    before = probs.cumsum(-1) - probs
    return torch.multinomial(probs.masked_fill(before >= top_p, 0.0), 1)


def sample_with_numpy(logits, temperature=1.0, top_k=None, top_p=None):  # NumPy's RNG: torch.manual_seed ignored
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1, keepdim=True)
    probs = F.softmax(logits / temperature, dim=-1).double().numpy()
    if top_k is not None:
        kth = np.sort(probs, axis=-1)[:, [-top_k]]
        probs = np.where(probs < kth, 0.0, probs)
    if top_p is not None:
        return reference.sample_next_token(logits, temperature, top_k, top_p)
    probs = probs / probs.sum(-1, keepdims=True)
    picks = [np.random.default_rng().choice(len(p), p=p) for p in probs]
    return torch.tensor(picks)[:, None]


# ------------------------------------------------------------ generate


@torch.no_grad()
def generate_no_crop(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    for _ in range(max_new_tokens):
        logits, _ = model(idx)
        idx = torch.cat([idx, reference.sample_next_token(logits[:, -1], temperature, top_k, top_p)], dim=1)
    return idx


@torch.no_grad()
def generate_first_position(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])
        idx = torch.cat([idx, reference.sample_next_token(logits[:, 0], temperature, top_k, top_p)], dim=1)
    return idx


def generate_only_new_tokens(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    return reference.generate(model, idx, max_new_tokens, temperature, top_k, top_p)[:, idx.size(1):]


def generate_ignores_top_k(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    return reference.generate(model, idx, max_new_tokens, temperature)


# ------------------------------------------------------------ KVCache


class KVCacheReturnsOnlyNew(KVCache):
    def update(self, k, v):
        super().update(k, v)
        return k, v


class KVCacheNewFirst(KVCache):  # torch.cat([new, old])
    def update(self, k, v):
        if self.k is not None:
            k, v = torch.cat([k, self.k], dim=2), torch.cat([v, self.v], dim=2)
        self.k, self.v = k, v
        return k, v


class KVCacheWrongAxis(KVCache):  # concatenates the heads axis
    def update(self, k, v):
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=1), torch.cat([self.v, v], dim=1)
        self.k, self.v = k, v
        return k, v


class KVCacheCountsCalls(KVCache):  # seq_len counts updates, not positions
    def __init__(self):
        super().__init__()
        self.calls = 0

    @property
    def seq_len(self):
        return self.calls

    def update(self, k, v):
        self.calls += 1
        return super().update(k, v)


class KVCacheSwapped(KVCache):
    def update(self, k, v):
        k_all, v_all = super().update(k, v)
        return v_all, k_all


# ------------------------------------------------------------ generate_cached


@torch.no_grad()
def generate_cached_one_shared_cache(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    if idx.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError("too long")
    cache = KVCache()
    caches = [cache] * len(model.blocks)   # every layer appends to the same cache
    logits, _ = model(idx, kv_caches=caches)
    for _ in range(max_new_tokens):
        next_id = reference.sample_next_token(logits[:, -1], temperature, top_k, top_p)
        idx = torch.cat([idx, next_id], dim=1)
        logits, _ = model(next_id, kv_caches=caches) if idx.size(1) < model.config.block_size else (logits, None)
    return idx


def generate_cached_without_cache(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    if idx.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError("too long")
    return reference.generate(model, idx, max_new_tokens, temperature, top_k, top_p)


@torch.no_grad()
def generate_cached_fresh_caches(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    if idx.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError("too long")
    logits, _ = model(idx, kv_caches=[KVCache() for _ in model.blocks])
    for _ in range(max_new_tokens):
        next_id = reference.sample_next_token(logits[:, -1], temperature, top_k, top_p)
        idx = torch.cat([idx, next_id], dim=1)
        logits, _ = model(next_id, kv_caches=[KVCache() for _ in model.blocks])  # forgets the past
    return idx


@torch.no_grad()
def generate_cached_first_position(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    if idx.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError("too long")
    caches = [KVCache() for _ in model.blocks]
    logits, _ = model(idx, kv_caches=caches)
    for _ in range(max_new_tokens):
        next_id = reference.sample_next_token(logits[:, 0], temperature, top_k, top_p)
        idx = torch.cat([idx, next_id], dim=1)
        logits, _ = model(next_id, kv_caches=caches)
    return idx


CASES = (
    (checks.check_CausalSelfAttention, CSANoCausalMask, "position t sees later positions"),
    (checks.check_CausalSelfAttention, CSASplitWithoutTranspose, "without the transpose"),
    (checks.check_CausalSelfAttention, CSAScaleByModelDim, "sqrt(head_size)"),
    (checks.check_CausalSelfAttention, CSAKeysFirst, "[q | k | v]"),
    (checks.check_CausalSelfAttention, CSANoOutputProjection, "never projected"),
    (checks.check_CausalSelfAttention, CSAIsCausalWithCache, "attn_mask=mask"),
    (checks.check_CausalSelfAttention, CSAAlwaysBias, "should not have a bias"),
    (checks.check_Block, BlockPostNorm, "post-norm"),
    (checks.check_Block, BlockNoAttentionResidual, "attention sublayer has no residual"),
    (checks.check_Block, BlockNoMLPResidual, "MLP sublayer has no residual"),
    (checks.check_Block, BlockMLPFirst, "MLP runs before the attention"),
    (checks.check_Block, BlockOneNorm, "ln_1 is used twice"),
    (checks.check_GPT, GPTUntied, "not tied"),
    (checks.check_GPT, GPTDefaultInit, "N(0, 0.02²)"),
    (checks.check_GPT, GPTUnscaledResidualInit, "0.02 / sqrt(2 * n_layer)"),
    (checks.check_GPT, GPTPlainListBlocks, "nn.ModuleList"),
    (checks.check_GPT, GPTNoFinalNorm, "final layer norm is missing"),
    (checks.check_GPT, GPTNoPositionEmbedding, "position embedding is missing"),
    (checks.check_GPT, GPTLossOnProbabilities, "raw logits"),
    (checks.check_GPT, GPTPositionsRestart, "torch.arange(past, past + T)"),
    (checks.check_sample_next_token, sample_divides_by_zero, "handle temperature == 0 first"),
    (checks.check_sample_next_token, sample_multiplies_by_temperature, "divide the logits by the temperature"),
    (checks.check_sample_next_token, sample_always_argmax, "always picks the most likely token"),
    (checks.check_sample_next_token, sample_top_k_smallest, "keep the k largest logits"),
    (checks.check_sample_next_token, sample_top_p_drops_crossing_token, "crosses p must stay"),
    (checks.check_sample_next_token, sample_top_p_unsorted, "sort the probabilities"),
    (checks.check_sample_next_token, sample_with_numpy, "same seed gave different draws"),
    (checks.check_generate, generate_no_crop, "crop the context"),
    (checks.check_generate, generate_first_position, "LAST position"),
    (checks.check_generate, generate_only_new_tokens, "prompt followed by the new tokens"),
    (checks.check_generate, generate_ignores_top_k, "pass temperature, top_k and top_p"),
    (checks.check_KVCache, KVCacheReturnsOnlyNew, "return everything stored so far"),
    (checks.check_KVCache, KVCacheNewFirst, "in front of the old ones"),
    (checks.check_KVCache, KVCacheWrongAxis, "dim=2"),
    (checks.check_KVCache, KVCacheCountsCalls, "seq_len should count"),
    (checks.check_KVCache, KVCacheSwapped, "values where the keys belong"),
    (checks.check_generate_cached, generate_cached_one_shared_cache, "one KVCache per block"),
    (checks.check_generate_cached, generate_cached_without_cache, "prompt once, then one new token"),
    (checks.check_generate_cached, generate_cached_fresh_caches, "made once"),
    (checks.check_generate_cached, generate_cached_first_position, "feed the whole prompt first"),
)

REFERENCES = [
    (checks.check_CausalSelfAttention, reference.CausalSelfAttention),
    (checks.check_Block, reference.Block),
    (checks.check_GPT, reference.GPT),
    (checks.check_sample_next_token, reference.sample_next_token),
    (checks.check_generate, reference.generate),
    (checks.check_KVCache, reference.KVCache),
    (checks.check_generate_cached, reference.generate_cached),
]

(test_checker_accepts_reference,
 test_checker_rejects_mistake_with_targeted_message,
 test_every_checker_has_at_least_four_mistakes,
 test_checker_passes_not_implemented_through,
 test_checker_leaves_the_global_random_stream_alone) = checker_tests(REFERENCES, CASES)


# ------------------------------------------------------------ correct answers in other styles (must pass)


class GPTHeadBuiltFirst(GPT):  # lm_head built before wte, then tied: named_parameters() lists lm_head.weight only
    def __init__(self, config):
        nn.Module.__init__(self)
        self.config = config
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.lm_head.weight = self.wte.weight
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))


class GPTTiedTheOtherWay(GPT):  # wte.weight = lm_head.weight: the same single matrix
    def __init__(self, config):
        nn.Module.__init__(self)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))


@torch.no_grad()
def generate_cached_prefill_all_but_last(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    # The prompt's last token is fed like the new ones: the same positions, each seen once.
    if idx.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError("too long")
    caches = [KVCache() for _ in model.blocks]
    if idx.size(1) > 1:
        model(idx[:, :-1], kv_caches=caches)
    last = idx[:, -1:]
    for _ in range(max_new_tokens):
        logits, _ = model(last, kv_caches=caches)
        last = reference.sample_next_token(logits[:, -1], temperature, top_k, top_p)
        idx = torch.cat([idx, last], dim=1)
    return idx


@torch.no_grad()
def generate_cached_one_step_more(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
    # Runs the model on the final token too (its logits are never used): wasted, but the tokens are right.
    if idx.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError("too long")
    caches = [KVCache() for _ in model.blocks]
    logits, _ = model(idx, kv_caches=caches)
    for _ in range(max_new_tokens):
        next_id = reference.sample_next_token(logits[:, -1], temperature, top_k, top_p)
        idx = torch.cat([idx, next_id], dim=1)
        logits, _ = model(next_id, kv_caches=caches)
    return idx


CORRECT_VARIANTS = [
    (checks.check_GPT, GPTHeadBuiltFirst),
    (checks.check_GPT, GPTTiedTheOtherWay),
    (checks.check_generate_cached, generate_cached_prefill_all_but_last),
    (checks.check_generate_cached, generate_cached_one_step_more),
]


@pytest.mark.parametrize("checker, solution", CORRECT_VARIANTS, ids=[s.__name__ for _, s in CORRECT_VARIANTS])
def test_checker_accepts_correct_answer_in_another_style(checker, solution, capsys):
    checker(solution)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "all checks passed" in out[0], out


def test_functional_gpt_is_hugging_faces_gpt2():
    # The mistake variants come from the same functional forward as this, so it must match GPT-2 exactly.
    c = _config(vocab_size=23, block_size=8, n_layer=2, n_head=2, n_embd=16)
    hf = _hf_gpt2(c, seed=1)
    p = {k: v.double() for k, v in _gpt2_to_ours(hf).items()}
    idx = torch.randint(0, 23, (2, 8), generator=rng(0))
    with torch.no_grad():
        assert torch.allclose(_gpt_forward(p, idx, c).float(), hf(idx).logits, atol=1e-5)


def test_reference_gpt_loads_gpt2_weights():
    # The course's GPT is GPT-2: the same weights give the same logits.
    c = _config(vocab_size=23, block_size=8, n_layer=2, n_head=2, n_embd=16)
    hf = _hf_gpt2(c, seed=2)
    model = reference.GPT(c).eval()
    missing, unexpected = model.load_state_dict(_gpt2_to_ours(hf), strict=False)
    assert missing == ["lm_head.weight"] and not unexpected  # tied: it is wte.weight
    idx = torch.randint(0, 23, (3, 8), generator=rng(1))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], hf(idx).logits, atol=1e-5)


def test_block_truth_is_the_reference_block():
    c = _config()
    p = _block_params(c, rng(3))
    block = reference.Block(c).double().eval()
    block.load_state_dict(p)
    x = torch.randn(2, 5, c.n_embd, generator=rng(4), dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(block(x), _block_truth(x, p, c.n_head), atol=1e-12)
