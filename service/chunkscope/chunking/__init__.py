"""Chunk extraction (PA, DSC, UCD) as pure functions over arrays: no gRPC, config or files."""
