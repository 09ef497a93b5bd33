"""Add-on preferences: face model, network weights, device, and the dependency installer."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import deps

__all__ = ["MSMA_AddonPreferences", "MANUAL_INSTALL_HINT", "classes"]

MANUAL_INSTALL_HINT = ("Manual install: run Blender's Python with "
                       "'-m pip install --target <folder> -r requirements-extension.txt' (see README)")


class MSMA_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    model_path: StringProperty(name="Face Model", subtype="FILE_PATH",
                               description="Face-model .npz (empty: the default head shipped with the extension)")
    weights_path: StringProperty(name="Network Weights", subtype="FILE_PATH",
                                 description="MSMA network weights (empty: none; the fit starts from the mean "
                                             "face posed on the landmarks)")
    device: EnumProperty(name="Device", default="cpu",
                         items=[("cpu", "CPU", "Run on the CPU"),
                                ("cuda", "CUDA GPU", "Run on an NVIDIA GPU (needs a CUDA build of PyTorch)")])

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "model_path")
        col.prop(self, "weights_path")
        col.prop(self, "device")

        box = layout.box()
        box.label(text="Python Dependencies", icon="SCRIPT")
        missing = deps.missing_modules()
        if missing:
            box.label(text="Missing: " + ", ".join(missing), icon="ERROR")
        else:
            box.label(text="All dependencies found", icon="CHECKMARK")
        try:
            box.label(text=f"Folder: {deps.site_packages_dir(__package__, create=False)}")
        except ValueError:  # enabled as a legacy add-on, not an extension
            pass
        row = box.row()
        row.enabled = bpy.app.online_access
        row.operator("msma.install_dependencies", icon="IMPORT")
        if not bpy.app.online_access:
            box.label(text="Online access is disabled (Preferences > System > Network).", icon="INFO")
        box.label(text=MANUAL_INSTALL_HINT)


classes = (MSMA_AddonPreferences,)
