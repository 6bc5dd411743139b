"""Entry point for `python -m chunkscope.testbeds train ...` (also `chunkscope testbed train`)."""

from chunkscope.testbeds.train import main

raise SystemExit(main())
