"""Notebook 11 · A transformer in NumPy, backward pass by hand: reference implementations.

Every layer keeps to one API:

* ``layer.params``: dict name -> float64 array (empty for a layer without parameters);
* ``out = layer.forward(*inputs)``: computes the output and keeps on ``self`` what the
  backward pass needs;
* ``d_in = layer.backward(d_out)``: takes dL/d(out), the gradient of the loss with respect to
  the output, returns dL/d(input) (a tuple when there are several inputs), and sets
  ``layer.grads[name]`` = dL/d(params[name]), an array of the same shape. It overwrites the
  previous gradients; it does not add to them.

The attention layers return ``(output, weights)`` as in notebooks 01 and 02; their backward
takes the gradient of the output only (the weights are there to be looked at).

The names start with ``Np`` because ``softmax``, ``LayerNorm``, ``MultiHeadAttention`` and
``scaled_dot_product_attention`` are already the PyTorch versions from notebooks 01-04.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NpLinear", "NpSoftmax", "NpCrossEntropy", "NpLayerNorm", "NpAttention", "NpMultiHeadAttention"]


def _swap(x: np.ndarray) -> np.ndarray:
    """Transpose the last two axes (x.transpose(-2, -1) in PyTorch)."""
    return np.swapaxes(x, -1, -2)


class NpLinear:
    """y = x @ W + b on the last axis. W: (d_in, d_out), so no transpose in the forward pass."""

    def __init__(self, d_in: int, d_out: int, rng: np.random.Generator):
        bound = 1 / np.sqrt(d_in)  # nn.Linear's initial scale
        self.params = {"W": rng.uniform(-bound, bound, (d_in, d_out)), "b": np.zeros(d_out)}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x  # (..., d_in)
        return x @ self.params["W"] + self.params["b"]  # (..., d_out)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x2 = self.x.reshape(-1, self.x.shape[-1])  # (N, d_in): every leading axis is a batch axis
        dy2 = dy.reshape(-1, dy.shape[-1])  # (N, d_out)
        self.grads["W"] = x2.T @ dy2  # (d_in, d_out): summed over the N rows
        self.grads["b"] = dy2.sum(axis=0)  # (d_out,)
        return dy @ self.params["W"].T  # (..., d_in)


class NpSoftmax:
    """Softmax over the last axis; backward is the Jacobian-vector product p * (dp - <dp, p>)."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=-1, keepdims=True))  # the largest entry becomes exp(0) = 1
        self.p = e / e.sum(axis=-1, keepdims=True)
        return self.p

    def backward(self, dp: np.ndarray) -> np.ndarray:
        p = self.p
        return p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # (diag(p) - p pᵀ) dp, row by row


class NpCrossEntropy:
    """Mean cross-entropy of logits (N, C) against integer targets (N,); backward gives (p - y) / N."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        z = logits - logits.max(axis=-1, keepdims=True)  # stable: the largest logit becomes 0
        log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (N, C) log-softmax
        rows = np.arange(len(targets))
        self.p, self.rows, self.targets = np.exp(log_p), rows, targets
        return float(-log_p[rows, targets].mean())

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        dlogits = self.p.copy()  # (N, C)
        dlogits[self.rows, self.targets] -= 1.0  # p - y, y one-hot
        return dlogits * (dloss / len(self.targets))  # the mean divides by N


class NpLayerNorm:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased variance)."""

    def __init__(self, d: int, eps: float = 1e-5):
        self.eps = eps
        self.params = {"weight": np.ones(d), "bias": np.zeros(d)}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
        var = x.var(axis=-1, keepdims=True)  # (..., 1), divides by d
        self.rstd = 1 / np.sqrt(var + self.eps)  # (..., 1)
        self.x_hat = (x - mean) * self.rstd  # (..., d)
        return self.x_hat * self.params["weight"] + self.params["bias"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        d = dy.shape[-1]
        self.grads["weight"] = (dy * self.x_hat).reshape(-1, d).sum(axis=0)  # (d,)
        self.grads["bias"] = dy.reshape(-1, d).sum(axis=0)  # (d,)
        g = dy * self.params["weight"]  # dL/dx_hat, (..., d)
        # minus the mean term (through the mean) and the variance term (through the std)
        return self.rstd * (g - g.mean(axis=-1, keepdims=True)
                            - self.x_hat * (g * self.x_hat).mean(axis=-1, keepdims=True))


class NpAttention:
    """Scaled dot-product attention softmax(q kᵀ / sqrt(d_k)) v; mask: True = may attend."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.softmax = NpSoftmax()

    def forward(self, q, k, v, mask=None):
        self.scale = 1 / np.sqrt(q.shape[-1])
        scores = q @ _swap(k) * self.scale  # (..., seq_q, seq_k)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)  # masked keys get weight exactly 0
        weights = self.softmax.forward(scores)  # (..., seq_q, seq_k)
        self.q, self.k, self.v, self.weights = q, k, v, weights
        return weights @ v, weights  # (..., seq_q, d_v), (..., seq_q, seq_k)

    def backward(self, dout):
        dv = _swap(self.weights) @ dout  # (..., seq_k, d_v)
        dweights = dout @ _swap(self.v)  # (..., seq_q, seq_k)
        dscores = self.softmax.backward(dweights) * self.scale  # the scale is in the backward too
        dq = dscores @ self.k  # (..., seq_q, d_k)
        dk = _swap(dscores) @ self.q  # (..., seq_k, d_k)
        return dq, dk, dv


def _split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    b, t, d = x.shape
    return x.reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)  # (b, heads, t, d_head)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    b, h, t, d_head = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d_head)  # (b, t, d_model)


class NpMultiHeadAttention:
    """Notebook 02's multi-head self-attention; its parameters live in its four NpLinear layers."""

    def __init__(self, d_model: int, n_heads: int, rng: np.random.Generator):
        self.n_heads = n_heads
        self.q_proj = NpLinear(d_model, d_model, rng)
        self.k_proj = NpLinear(d_model, d_model, rng)
        self.v_proj = NpLinear(d_model, d_model, rng)
        self.out_proj = NpLinear(d_model, d_model, rng)
        self.attn = NpAttention()
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x, mask=None):
        q = _split_heads(self.q_proj.forward(x), self.n_heads)  # (b, heads, t, d_head)
        k = _split_heads(self.k_proj.forward(x), self.n_heads)
        v = _split_heads(self.v_proj.forward(x), self.n_heads)
        out, weights = self.attn.forward(q, k, v, mask)  # (b, heads, t, d_head), (b, heads, t, t)
        return self.out_proj.forward(_merge_heads(out)), weights  # (b, t, d_model)

    def backward(self, dout):
        dheads = _split_heads(self.out_proj.backward(dout), self.n_heads)  # the inverse of merge
        dq, dk, dv = self.attn.backward(dheads)
        # x fed three projections, so its gradient is the sum of the three paths
        return (self.q_proj.backward(_merge_heads(dq)) + self.k_proj.backward(_merge_heads(dk))
                + self.v_proj.backward(_merge_heads(dv)))
