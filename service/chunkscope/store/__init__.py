"""Persistence in the data directory: registry and dictionaries (SQLite + safetensors, atomic)."""
