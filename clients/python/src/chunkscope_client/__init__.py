"""Python client for chunkscope: generated stubs (`chunkscope_client.v1`) plus a thin typed wrapper.

    from chunkscope_client import Client

    with Client.connect("127.0.0.1:50051") as cs:
        model = cs.register_model("tiny", "tiny-llama", wait=True)
        for point in cs.list_hook_points("tiny"):
            print(point.name, list(point.shape))

Errors raise `ChunkscopeError` with the status code, message, reason and field violations.
"""

from chunkscope_client.client import DEFAULT_MAX_MESSAGE_BYTES, ChunkscopeError, Client

# The version of this package and of the API it speaks (scripts/version.py keeps it in step).
__version__ = "0.2.0"

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "ChunkscopeError", "Client", "__version__"]
