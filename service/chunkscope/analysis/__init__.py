"""Representation analysis as pure functions on arrays (docs/METHODS.md section 6).

linear CKA and Procrustes shape distance (`geometry`), Gromov-Wasserstein distance (`gw`),
Dynamical Similarity Analysis (`dsa`), layer-similarity maps with layer groups and PNG heatmaps
(`layers`), and the BIMT connection cost with function-preserving neuron swaps (`bimt`).
Nothing here imports gRPC or the api package; errors on bad arguments are ValueError.
"""
