"""``python -m msma_blender reconstruct ...``: the headless command with the ``bpy`` module.

Same arguments and exit status as ``blender -b --command msma ...`` (see :mod:`.commands`).
"""

import sys

from .commands import main

sys.exit(main(sys.argv[1:]))
