"""Run by scripts/check_real_blender.sh in a REAL Blender window (under Xvfb): screenshots of
the MSMA sidebar panel in the 3D viewport and of the add-on's preferences, then quit.
Prints one ``SHOT <file>`` line per screenshot written."""
import sys
from pathlib import Path

import bpy

OUT = Path(sys.argv[sys.argv.index("--") + 1])
OUT.mkdir(parents=True, exist_ok=True)
MODULE = "bl_ext.user_default.msma_face"


def _view3d():
    window = bpy.context.window_manager.windows[0]
    area = max((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    return window, area


def show_panel():
    window, area = _view3d()
    area.spaces.active.show_region_ui = True
    ui = next(r for r in area.regions if r.type == "UI")
    try:
        ui.active_panel_category = "MSMA"  # writable in recent Blender versions
    except (AttributeError, TypeError):
        pass
    return None


def shoot(name):
    window, area = _view3d()
    path = OUT / name
    with bpy.context.temp_override(window=window, area=area):
        bpy.ops.screen.screenshot(filepath=str(path))
    print(f"SHOT {path}", flush=True)


def panel_shot():
    shoot("panel.png")
    # the add-on preferences, expanded, in the preferences editor (in place of the 3D view)
    window, area = _view3d()
    prefs = bpy.context.preferences
    area.ui_type = "PREFERENCES"
    try:
        import addon_utils

        addon_utils.module_bl_info(sys.modules[MODULE])["show_expanded"] = True
    except Exception as exc:  # noqa: BLE001 - a screenshot without the expanded box still helps
        print(f"SHOT-NOTE could not expand the add-on: {exc}")
    bpy.context.window_manager.addon_search = "MSMA"
    prefs.active_section = "ADDONS"
    return None


def prefs_shot():
    shoot("preferences.png")
    return None


def quit_blender():
    bpy.ops.wm.quit_blender()


bpy.app.timers.register(show_panel, first_interval=1.0)
bpy.app.timers.register(panel_shot, first_interval=3.0)
bpy.app.timers.register(prefs_shot, first_interval=5.0)
bpy.app.timers.register(quit_blender, first_interval=7.0)
