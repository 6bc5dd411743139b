"""Generated from protos/chunkscope/v1 by scripts/genproto.py; do not edit."""
