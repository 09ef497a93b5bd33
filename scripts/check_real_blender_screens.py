"""Run by scripts/check_real_blender.sh in a REAL Blender window (under Xvfb): screenshots of
the MSMA sidebar panel, of Reconstruct Face's final report, of the add-on preferences, and —
when Blender runs with ``--online-mode`` — of *Install Dependencies* running and finished,
then of Reconstruct Face's report once more with the dependencies installed.

Screenshots are taken of the X display (``xwd`` + ImageMagick), which shows what a user sees;
Blender's own ``screen.screenshot`` reads back a black frame with Mesa's software renderer.
The sidebar tab is chosen as a user would, with Ctrl+wheel over the sidebar (``xdotool``),
because ``Region.active_panel_category`` is read-only in Blender 4.3.
Prints ``SHOT <png>`` per screenshot, ``REPORT <text>`` for the operator's outcome.

With ``-- OUT face`` (Blender started on a .blend the extension wrote) it takes one screenshot
instead: the face through the photo camera, Solid shading with its albedo texture
(``face.png``; Material Preview compiles EEVEE shaders for minutes on Mesa's software renderer).
"""
import subprocess
import sys
from pathlib import Path

import addon_utils
import bpy

OUT = Path(sys.argv[sys.argv.index("--") + 1])
PHOTO = sys.argv[sys.argv.index("--") + 2]
OUT.mkdir(parents=True, exist_ok=True)
MODULE = "bl_ext.user_default.msma_face"
WINDOW = bpy.context.window_manager.windows[0]
AREA = max((a for a in WINDOW.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
UI = next(r for r in AREA.regions if r.type == "UI")
_tries = {"tab": 0, "wait": 0}


def shoot(name):
    xwd = OUT / f"{name}.xwd"
    subprocess.run(["xwd", "-root", "-silent", "-out", str(xwd)], check=True)
    subprocess.run(["convert", str(xwd), str(OUT / f"{name}.png")], check=True)
    xwd.unlink()
    print(f"SHOT {OUT / (name + '.png')}", flush=True)


def open_sidebar():
    AREA.spaces.active.show_region_ui = True
    s = bpy.context.scene.msma
    s.source, s.image_path, s.fit = "FILE", PHOTO, "fast"
    return None


def choose_msma_tab():
    """Ctrl+wheel over the sidebar until its MSMA tab is active (at most 8 steps)."""
    if UI.active_panel_category == "MSMA" or _tries["tab"] >= 8:
        print(f"REPORT sidebar tab {UI.active_panel_category}", flush=True)
        bpy.app.timers.register(lambda: shoot("panel") or bpy.app.timers.register(reconstruct, first_interval=1.0),
                                first_interval=2.0)
        return None
    _tries["tab"] += 1
    print(f"NOTE sidebar tab {UI.active_panel_category}", flush=True)
    # over the first panel's header (the transparent rest of an overlapping sidebar passes the wheel on)
    x = WINDOW.x + UI.x + UI.width // 2
    y = WINDOW.y + WINDOW.height - (UI.y + UI.height) + 30
    subprocess.run(["xdotool", "mousemove", str(x), str(y), "keydown", "ctrl", "click", "5", "keyup", "ctrl"],
                   check=True)
    return 1.0


def reconstruct():
    with bpy.context.temp_override(window=WINDOW, area=AREA, region=UI):
        print("REPORT start", bpy.ops.msma.reconstruct_face("INVOKE_DEFAULT"), flush=True)
    bpy.app.timers.register(wait_for_job, first_interval=1.0)


def wait_for_job():
    running = _operators().job_running()
    _tries["wait"] += 1
    if running and _tries["wait"] < 120:
        return 1.0
    print("REPORT status", bpy.context.window_manager.msma_job.status, flush=True)
    bpy.app.timers.register(lambda: shoot("report") or bpy.app.timers.register(show_preferences), first_interval=1.5)
    return None


def show_preferences():
    AREA.ui_type = "PREFERENCES"
    bpy.context.preferences.active_section = "ADDONS"
    bpy.context.window_manager.addon_search = "MSMA"
    for mod in addon_utils.modules(refresh=False):  # the module objects the add-ons list draws
        if mod.__name__ == MODULE:
            addon_utils.module_bl_info(mod)["show_expanded"] = True
    then = install if bpy.app.online_access else quit_blender
    bpy.app.timers.register(lambda: shoot("preferences") or bpy.app.timers.register(then), first_interval=3.0)
    return None


def _operators():
    from importlib import import_module

    return import_module(MODULE + ".operators")


def install():
    with bpy.context.temp_override(window=WINDOW, area=AREA, region=AREA.regions[-1]):
        print("REPORT install start", bpy.ops.msma.install_dependencies("INVOKE_DEFAULT"), flush=True)
    _tries["wait"] = 0
    bpy.app.timers.register(lambda: shoot("installing") or None, first_interval=6.0)
    bpy.app.timers.register(wait_for_install, first_interval=8.0)


def wait_for_install():
    _tries["wait"] += 1
    if _operators().install_running() and _tries["wait"] < 600:
        return 1.0
    inst = _operators().last_install()
    print(f"REPORT install error={inst.error if inst else 'none'!r}", flush=True)
    def then():
        shoot("installed")
        AREA.ui_type = "VIEW_3D"
        _tries["wait"] = 0
        with bpy.context.temp_override(window=WINDOW, area=AREA, region=UI):
            print("REPORT start again", bpy.ops.msma.reconstruct_face("INVOKE_DEFAULT"), flush=True)
        bpy.app.timers.register(wait_again, first_interval=1.0)
    bpy.app.timers.register(then, first_interval=2.0)
    return None


def wait_again():
    _tries["wait"] += 1
    if _operators().job_running() and _tries["wait"] < 300:
        return 1.0
    print("REPORT status again", bpy.context.window_manager.msma_job.status, flush=True)
    bpy.app.timers.register(lambda: shoot("report_with_deps") or bpy.app.timers.register(quit_blender),
                            first_interval=1.5)
    return None


def quit_blender():
    bpy.ops.wm.quit_blender()


def show_face():
    space = AREA.spaces.active
    space.shading.type = "SOLID"
    space.shading.color_type = "TEXTURE"
    space.region_3d.view_perspective = "CAMERA"
    region = next(r for r in AREA.regions if r.type == "WINDOW")
    with bpy.context.temp_override(window=WINDOW, area=AREA, region=region):
        bpy.ops.view3d.view_center_camera()
    names = sorted(o.name for o in bpy.data.objects if "msma_coeffs" in o)
    print(f"REPORT face objects {names} camera {bpy.context.scene.camera.name if bpy.context.scene.camera else None}")
    bpy.app.timers.register(lambda: shoot("face") or bpy.app.timers.register(quit_blender), first_interval=5.0)


if PHOTO == "face":
    bpy.app.timers.register(show_face, first_interval=3.0)
else:
    bpy.app.timers.register(open_sidebar, first_interval=3.0)
    bpy.app.timers.register(choose_msma_tab, first_interval=5.0)
