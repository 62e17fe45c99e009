"""Notebook 04: correct learner code in other styles (see tests_variants/test_learner_variants.py)."""

VARIANTS = {
    # The second layer created first: the same parameters, drawn in another order from the random stream.
    "linear2 first": {
        "FeedForward.__init__": '''
            d_ff = d_ff or 4 * d_model
            self.linear2 = nn.Linear(d_ff, d_model)
            self.linear1 = nn.Linear(d_model, d_ff)
            if isinstance(activation, str):
                if activation not in ACTIVATIONS:
                    raise ValueError(f"unknown activation {activation!r}; choose from {list(ACTIVATIONS)}")
                activation = ACTIVATIONS[activation]
            self.activation = activation
            self.dropout = nn.Dropout(dropout)
        ''',
    },
    # Every exercise in a second style: F.dropout instead of a module, torch.var_mean, rsqrt,
    # parameters from torch.empty with nn.init, SwiGLU's layers created down-projection first
    # (another use of the random stream for every model built after it).
    "functional and rsqrt": {
        "FeedForward.__init__": '''
            if d_ff is None:
                d_ff = d_model * 4
            if not callable(activation):
                try:
                    activation = ACTIVATIONS[activation]
                except KeyError:
                    raise ValueError(f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)}") from None
            self.activation = activation
            self.p = dropout
            self.linear1 = nn.Linear(d_model, d_ff)
            self.linear2 = nn.Linear(d_ff, d_model)
        ''',
        "FeedForward.forward": '''
            x = self.linear1(x)
            x = self.activation(x)
            x = self.linear2(x)
            return F.dropout(x, p=self.p, training=self.training)
        ''',
        "SwiGLU.__init__": '''
            self.w2 = nn.Linear(d_ff, d_model, bias=False)
            self.w3 = nn.Linear(d_model, d_ff, bias=False)
            self.w1 = nn.Linear(d_model, d_ff, bias=False)
        ''',
        "SwiGLU.forward": '''
            gate = self.w1(x)
            gate = gate * torch.sigmoid(gate)  # silu by hand
            return self.w2(gate * self.w3(x))
        ''',
        "LayerNorm.__init__": '''
            self.bias = nn.Parameter(torch.empty(d_model))
            self.weight = nn.Parameter(torch.empty(d_model))
            nn.init.zeros_(self.bias)
            nn.init.ones_(self.weight)
            self.eps = eps
        ''',
        "LayerNorm.forward": '''
            var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
            return self.weight * (x - mean) * torch.rsqrt(var + self.eps) + self.bias
        ''',
        "RMSNorm.__init__": '''
            self.weight = nn.Parameter(torch.empty(d_model))
            nn.init.ones_(self.weight)
            self.eps = eps
        ''',
        "RMSNorm.forward": '''
            return self.weight * x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps)
        ''',
    },
    # A third style: hand-written statistics, a norm from torch.linalg, the dropout created first,
    # layers built with explicit in/out names; FeedForward's layers are re-initialised with
    # nn.init's Kaiming-uniform (PyTorch's default, drawn a second time: another random stream).
    "by hand and re-initialised": {
        "FeedForward.__init__": '''
            self.dropout = nn.Dropout(p=dropout)
            hidden = 4 * d_model if d_ff is None else d_ff
            if isinstance(activation, str) and activation not in ACTIVATIONS:
                raise ValueError("unknown activation " + repr(activation))
            self.activation = ACTIVATIONS[activation] if isinstance(activation, str) else activation
            self.linear1 = nn.Linear(in_features=d_model, out_features=hidden)
            self.linear2 = nn.Linear(in_features=hidden, out_features=d_model)
            for layer in (self.linear1, self.linear2):  # PyTorch's default init, written out
                nn.init.kaiming_uniform_(layer.weight, a=5 ** 0.5)
                bound = layer.in_features ** -0.5
                nn.init.uniform_(layer.bias, -bound, bound)
        ''',
        "FeedForward.forward": '''
            return self.dropout(self.linear2(self.activation(self.linear1(x))))
        ''',
        "SwiGLU.__init__": '''
            make = lambda n_in, n_out: nn.Linear(n_in, n_out, bias=False)  # noqa: E731
            self.w1, self.w3, self.w2 = make(d_model, d_ff), make(d_model, d_ff), make(d_ff, d_model)
        ''',
        "SwiGLU.forward": '''
            return self.w2(torch.mul(F.silu(self.w1(x)), self.w3(x)))
        ''',
        "LayerNorm.__init__": '''
            self.eps = float(eps)
            self.weight = nn.Parameter(torch.ones(d_model))
            self.bias = nn.Parameter(torch.zeros(d_model))
        ''',
        "LayerNorm.forward": '''
            d = x.shape[-1]
            mu = x.sum(dim=-1, keepdim=True) / d
            centred = x - mu
            var = (centred * centred).sum(dim=-1, keepdim=True) / d
            return centred / (var + self.eps).sqrt() * self.weight + self.bias
        ''',
        "RMSNorm.__init__": '''
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(d_model))
        ''',
        "RMSNorm.forward": '''
            d = x.size(-1)
            mean_square = torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2 / d
            return x / (mean_square + self.eps).sqrt() * self.weight
        ''',
    },
}
