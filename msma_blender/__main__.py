"""``python -m msma_blender reconstruct ...``: the headless command with the ``bpy`` module.

Same arguments and exit status as ``blender -b --command msma ...`` (see :mod:`.commands`).
"""

import sys

from msma_engine.cli_common import set_thread_policy

set_thread_policy()  # before anything imports torch

from .commands import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
