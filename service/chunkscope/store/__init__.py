"""Persistence: the model registry and dictionaries in the data directory (SQLite + safetensors, atomic writes)."""
