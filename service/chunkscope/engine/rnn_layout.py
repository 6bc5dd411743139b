"""BIMT on a registered recurrent model (docs/METHODS.md section 6): its weights as the cost graph
of chunkscope.analysis.bimt, and how far a reordering of its hidden neurons moves its outputs."""

from __future__ import annotations

import numpy as np
import torch

from chunkscope.analysis import bimt
from chunkscope.engine.recurrent import RecurrentLM


class RecurrentNetwork:
    """A float64 CPU copy of a recurrent model's weights and the cost graph built from them.

    Reads the weights without changing them, so building one need not wait for the compute
    thread; the output check runs fresh float64 copies, never the registered module.
    """

    def __init__(self, module: RecurrentLM) -> None:
        self.config = module.config
        self.state = {k: v.detach().double().cpu() for k, v in module.state_dict().items()}
        self.graph = bimt.recurrent_graph(
            self.config.architecture, self.state, self.config.vocab_size
        )

    def output_difference(self, orders: dict[str, np.ndarray]) -> float:
        """max |Δlogits| over seeded random inputs once the hidden units are put in
        orders["rnn.hidden"] (identity when absent): 0 up to rounding for a valid reordering."""
        config = self.config
        order = orders.get("rnn.hidden", np.arange(config.hidden_size))
        permuted = bimt.permute_recurrent(config.architecture, self.state, config.vocab_size, order)
        original, moved = RecurrentLM(config).double(), RecurrentLM(config).double()
        original.load_state_dict(self.state)
        moved.load_state_dict(permuted)
        tokens = bimt.one_hot_inputs(config.vocab_size, 8, 50)
        with torch.no_grad():
            return float((original(tokens)[0] - moved(tokens)[0]).abs().max())
