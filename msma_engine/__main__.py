"""``python -m msma_engine``: the engine's command line (see :mod:`msma_engine.cli`)."""

import sys

from msma_engine.cli_common import set_thread_policy

set_thread_policy()  # before anything imports torch

from msma_engine.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
