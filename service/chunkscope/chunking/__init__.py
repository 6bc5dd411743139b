"""Chunk extraction methods (PA, DSC, UCD) as pure functions over arrays. No gRPC, no config, no files."""
