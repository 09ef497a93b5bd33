"""MSMA Face: single-photo 3D face reconstruction for Blender (extension entry point).

Blender reads the extension's metadata from ``blender_manifest.toml``; this module only
registers the classes, the scene settings, and the ``msma`` command-line command
(``blender -b --command msma reconstruct ...``). The engine and its heavy dependencies are
imported lazily, when a reconstruction runs.
"""

from __future__ import annotations

import bpy

from . import deps, operators, panels, preferences, properties

__all__ = ["classes", "register", "unregister"]

classes = (
    *properties.classes,
    *preferences.classes,
    *operators.classes,
    *panels.classes,
)

_cli_handle = None


def _cli_command(argv: list[str]) -> int:
    from .commands import main

    return main(argv)


def register() -> None:
    global _cli_handle
    deps.activate_site_packages(__package__)
    for cls in classes:
        bpy.utils.register_class(cls)
    properties.register_pointers()
    _cli_handle = bpy.utils.register_cli_command("msma", _cli_command)


def unregister() -> None:
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    properties.unregister_pointers()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
