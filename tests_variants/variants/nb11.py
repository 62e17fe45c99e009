"""Notebook 11: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # einsum for the products (tensordot for the weight's gradient), take_along_axis to pick the targets, a variance written out,
    # an additive -inf mask, heads split and merged inline.
    "einsum": {
        "NpLinear.forward": '''
            self.x = x
            return np.einsum("...i,ij->...j", x, self.params["W"]) + self.params["b"]
        ''',
        "NpLinear.backward": '''
            lead = tuple(range(dy.ndim - 1))  # every axis but the last is a batch axis
            self.grads["W"] = np.tensordot(self.x, dy, axes=(lead, lead))
            self.grads["b"] = dy.sum(axis=lead)
            return np.einsum("...j,ij->...i", dy, self.params["W"])
        ''',
        "NpSoftmax.forward": '''
            shifted = x - np.max(x, axis=-1, keepdims=True)
            e = np.exp(shifted)
            self.out = e / np.sum(e, axis=-1, keepdims=True)
            return self.out
        ''',
        "NpSoftmax.backward": '''
            s = np.einsum("...i,...i->...", dp, self.out)[..., None]
            return self.out * dp - self.out * s
        ''',
        "NpCrossEntropy.forward": '''
            m = logits.max(axis=1, keepdims=True)
            lse = m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
            log_p = logits - lse
            self.probs, self.t = np.exp(log_p), targets
            picked = np.take_along_axis(log_p, targets[:, None], axis=1)
            return float(-picked.mean())
        ''',
        "NpCrossEntropy.backward": '''
            n, c = self.probs.shape
            onehot = np.eye(c)[self.t]
            return dloss * (self.probs - onehot) / n
        ''',
        "NpLayerNorm.forward": '''
            mu = x.mean(-1, keepdims=True)
            xc = x - mu
            var = (xc ** 2).mean(-1, keepdims=True)
            self.inv = (var + self.eps) ** -0.5
            self.xhat = xc * self.inv
            return self.params["weight"] * self.xhat + self.params["bias"]
        ''',
        "NpLayerNorm.backward": '''
            d = dy.shape[-1]
            lead = tuple(range(dy.ndim - 1))
            self.grads["weight"] = np.sum(dy * self.xhat, axis=lead)
            self.grads["bias"] = np.sum(dy, axis=lead)
            g = dy * self.params["weight"]
            return (d * g - g.sum(-1, keepdims=True)
                    - self.xhat * (g * self.xhat).sum(-1, keepdims=True)) * self.inv / d
        ''',
        "NpAttention.forward": '''
            d_k = q.shape[-1]
            scores = np.einsum("...qd,...kd->...qk", q, k) / np.sqrt(d_k)
            if mask is not None:
                scores = scores + np.where(mask, 0.0, -np.inf)
            w = self.softmax.forward(scores)
            self.saved = (q, k, v, w, d_k)
            return np.einsum("...qk,...kd->...qd", w, v), w
        ''',
        "NpAttention.backward": '''
            q, k, v, w, d_k = self.saved
            dv = np.einsum("...qk,...qd->...kd", w, dout)
            dw = np.einsum("...qd,...kd->...qk", dout, v)
            ds = self.softmax.backward(dw) / np.sqrt(d_k)
            dq = np.einsum("...qk,...kd->...qd", ds, k)
            dk = np.einsum("...qk,...qd->...kd", ds, q)
            return dq, dk, dv
        ''',
        "NpMultiHeadAttention.forward": '''
            B, T, D = x.shape
            h = self.n_heads

            def heads(t):
                return t.reshape(B, T, h, D // h).swapaxes(1, 2)

            q, k, v = (heads(proj.forward(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
            o, w = self.attn.forward(q, k, v, mask)
            return self.out_proj.forward(o.swapaxes(1, 2).reshape(B, T, D)), w
        ''',
        "NpMultiHeadAttention.backward": '''
            B, T, D = dout.shape
            h = self.n_heads
            do = self.out_proj.backward(dout).reshape(B, T, h, D // h).swapaxes(1, 2)
            grads = self.attn.backward(do)
            projections = (self.q_proj, self.k_proj, self.v_proj)
            return sum(proj.backward(g.swapaxes(1, 2).reshape(B, T, D)) for proj, g in zip(projections, grads))
        ''',
    },
    # Explicit and long-hand: np.dot on flattened rows, a log-softmax, the full Jacobian of
    # every softmax row, a one-hot target, the step-by-step (cs231n) layer-norm backward,
    # an indexed mask, and the three projections run and differentiated in another order.
    "long hand": {
        "NpLinear.forward": '''
            W, b = self.params["W"], self.params["b"]
            self.x = x.copy()
            return np.matmul(x, W) + b
        ''',
        "NpLinear.backward": '''
            d_in, d_out = self.params["W"].shape
            X = self.x.reshape(-1, d_in)
            G = dy.reshape(-1, d_out)
            self.grads = {"W": np.dot(X.T, G), "b": G.sum(0)}
            return np.matmul(dy, self.params["W"].T)
        ''',
        "NpSoftmax.forward": '''
            m = np.amax(x, axis=-1, keepdims=True)
            log_sum = m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
            self.p = np.exp(x - log_sum)
            return self.p
        ''',
        "NpSoftmax.backward": '''
            p = self.p
            n = p.shape[-1]
            jacobian = p[..., :, None] * (np.eye(n) - p[..., None, :])  # J[i, j] = p_i (delta_ij - p_j)
            return np.einsum("...i,...ij->...j", dp, jacobian)  # J^T dp
        ''',
        "NpCrossEntropy.forward": '''
            N, C = logits.shape
            z = logits - logits.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            self.y = np.zeros((N, C))
            self.y[np.arange(N), targets] = 1.0
            self.p = np.exp(log_p)
            return float(-(self.y * log_p).sum() / N)
        ''',
        "NpCrossEntropy.backward": '''
            N = self.p.shape[0]
            return (self.p - self.y) * dloss / N
        ''',
        "NpLayerNorm.forward": '''
            self.xc = x - np.mean(x, axis=-1, keepdims=True)
            self.std = np.sqrt(np.var(x, axis=-1, keepdims=True) + self.eps)
            self.xh = self.xc / self.std
            return self.xh * self.params["weight"] + self.params["bias"]
        ''',
        "NpLayerNorm.backward": '''
            d = dy.shape[-1]
            self.grads["weight"] = (dy * self.xh).reshape(-1, d).sum(0)
            self.grads["bias"] = dy.reshape(-1, d).sum(0)
            dxhat = dy * self.params["weight"]
            dvar = np.sum(dxhat * self.xc * -0.5 * self.std ** -3, axis=-1, keepdims=True)
            dmu = (np.sum(-dxhat / self.std, axis=-1, keepdims=True)
                   + dvar * np.mean(-2.0 * self.xc, axis=-1, keepdims=True))
            return dxhat / self.std + dvar * 2.0 * self.xc / d + dmu / d
        ''',
        "NpAttention.forward": '''
            self.q, self.k, self.v = q, k, v
            self.d_k = q.shape[-1]
            scores = np.matmul(q, np.swapaxes(k, -1, -2)) / np.sqrt(self.d_k)
            if mask is not None:
                scores = scores.copy()
                scores[~np.broadcast_to(mask, scores.shape)] = -np.inf
            self.w = self.softmax.forward(scores)
            return np.matmul(self.w, v), self.w
        ''',
        "NpAttention.backward": '''
            dw = np.matmul(dout, np.swapaxes(self.v, -1, -2))
            dv = np.matmul(np.swapaxes(self.w, -1, -2), dout)
            dscores = self.softmax.backward(dw)
            dq = np.matmul(dscores, self.k) / np.sqrt(self.d_k)
            dk = np.matmul(np.swapaxes(dscores, -1, -2), self.q) / np.sqrt(self.d_k)
            return dq, dk, dv
        ''',
        "NpMultiHeadAttention.forward": '''
            self.x_shape = x.shape
            v = np_split_heads(self.v_proj.forward(x), self.n_heads)
            k = np_split_heads(self.k_proj.forward(x), self.n_heads)
            q = np_split_heads(self.q_proj.forward(x), self.n_heads)
            heads, weights = self.attn.forward(q, k, v, mask=mask)
            y = self.out_proj.forward(np_merge_heads(heads))
            return y, weights
        ''',
        "NpMultiHeadAttention.backward": '''
            d_heads = np_split_heads(self.out_proj.backward(dout), self.n_heads)
            dq, dk, dv = self.attn.backward(d_heads)
            dx = np.zeros(self.x_shape)
            dx += self.v_proj.backward(np_merge_heads(dv))
            dx += self.k_proj.backward(np_merge_heads(dk))
            dx += self.q_proj.backward(np_merge_heads(dq))
            return dx
        ''',
    },
}
