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
}
