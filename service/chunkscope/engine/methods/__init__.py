"""Chunking methods: one module each behind one interface (`base.Method`), found in `registry`.

The science is in chunking/ (pure functions); a method's module turns captured rows into their
inputs (labels for PA, trajectories for DSC), their outputs into manifest entries and tensors, and
holds the rest of what is specific to it (request parameters, stored layout, detection, steering).
What each method holds in memory: PA, the training (and held-out) states of one hook point;
DSC, the (small) recurrent trajectories; the cosine dictionary, the states of one hook point
plus K x d atoms; density chunks, the states of one hook point (HDBSCAN sees at most
max_fit_states of them). Captured states of other hook points are released after their fit.
"""

from chunkscope.chunking import dsc, pa, ucd
from chunkscope.engine.methods.base import (
    N_EXAMPLES,
    Detection,
    Fit,
    FitOutput,
    Graft,
    Layout,
    Method,
    ProgressFn,
)
from chunkscope.engine.methods.cosine_dictionary import fit_cosine_dictionary
from chunkscope.engine.methods.density_chunks import fit_density_chunks
from chunkscope.engine.methods.discrete_sequence_chunking import fit_discrete_sequence_chunking
from chunkscope.engine.methods.population_averaging import (
    PASpec,
    check_spans,
    concept_rows,
    concept_spans,
    fit_population_averaging,
)
from chunkscope.engine.methods.registry import METHODS, by_proto, get

__all__ = [
    "METHODS", "N_EXAMPLES", "Detection", "Fit", "FitOutput", "Graft", "Layout", "Method",
    "PASpec", "ProgressFn", "by_proto", "check_spans", "concept_rows", "concept_spans", "dsc",
    "fit_cosine_dictionary", "fit_density_chunks", "fit_discrete_sequence_chunking",
    "fit_population_averaging", "get", "pa", "ucd",
]  # fmt: skip
