"""Add-on preferences: face model, network weights, device, and the dependency installer."""

from __future__ import annotations

import sys

import bpy
from bpy.props import EnumProperty, StringProperty

from . import deps

__all__ = ["MSMA_AddonPreferences", "classes"]


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
    torch_build: EnumProperty(
        name="PyTorch Build", default="cpu",
        description="Which PyTorch 'Install Dependencies' downloads",
        items=[("cpu", "CPU", "PyTorch's CPU build from PyTorch's CPU wheel index (a few hundred MB)"),
               ("cuda", "CUDA", "A CUDA build for NVIDIA GPUs from the index below (several GB). "
                                "macOS always gets PyPI's build (CPU and Metal)")])
    cuda_index_url: StringProperty(
        name="CUDA Index", default=deps.DEFAULT_CUDA_INDEX_URL,
        description="PyTorch's wheel index for your CUDA version (pytorch.org, Get Started)")

    def draw(self, context):
        from .operators import install_running, last_install

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
        row.prop(self, "torch_build", expand=True)
        if self.torch_build == "cuda" and sys.platform != "darwin":
            box.prop(self, "cuda_index_url")
        row = box.row()
        sub = row.row()
        sub.enabled = bpy.app.online_access and not install_running()
        sub.operator("msma.install_dependencies", icon="IMPORT")
        row.operator("msma.copy_install_commands", icon="COPYDOWN")  # also (especially) offline
        installer = last_install()
        if installer is not None and not installer.done:
            box.progress(factor=installer.fraction, type="BAR", text=installer.status)
        elif installer is not None and installer.error:
            for i, line in enumerate(installer.error.split(" | ")):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
            box.label(text=f"Log: {installer.log_file}")
        if not bpy.app.online_access:
            box.label(text="Online access is disabled (Preferences > System > Network).", icon="INFO")
        box.label(text="Offline or your own build: run the copied pip commands in a terminal (docs/BLENDER.md).")


classes = (MSMA_AddonPreferences,)
