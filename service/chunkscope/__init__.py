"""chunkscope: a gRPC service that extracts, detects and steers chunks in hidden states.

Importing this package must stay cheap: torch and transformers are imported only by `engine/`.
"""

__version__ = "0.2.0"
