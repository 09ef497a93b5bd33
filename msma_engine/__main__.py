"""``python -m msma_engine``: the engine's command line (see :mod:`msma_engine.cli`)."""

import sys

from msma_engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
