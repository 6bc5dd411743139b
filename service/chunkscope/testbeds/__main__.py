"""Entry point for `python -m chunkscope.testbeds train ...`; see chunkscope.testbeds.train."""

from chunkscope.testbeds.train import main

raise SystemExit(main())
