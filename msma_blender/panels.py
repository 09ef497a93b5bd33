"""The "MSMA" sidebar tab of the 3D viewport."""

from __future__ import annotations

import bpy

from .operators import job_running

__all__ = ["MSMA_PT_reconstruct", "MSMA_PT_options", "MSMA_PT_animation", "MSMA_UL_images", "classes"]


class _MSMAPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MSMA"


class MSMA_UL_images(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        layout.label(text=bpy.path.basename(item.path) or item.path, icon="IMAGE_DATA")


class MSMA_PT_reconstruct(_MSMAPanel, bpy.types.Panel):
    bl_label = "Reconstruct Face"
    bl_idname = "MSMA_PT_reconstruct"

    def draw(self, context):
        layout = self.layout
        s = context.scene.msma
        layout.prop(s, "source", expand=True)
        if s.source == "FILE":
            layout.prop(s, "image_path")
        elif s.source == "FILES":
            layout.template_list("MSMA_UL_images", "", s, "images", s, "images_index", rows=3)
            row = layout.row(align=True)
            row.operator("msma.add_images", icon="ADD")
            row.operator("msma.clear_images", icon="X")
        else:
            layout.prop(s, "folder")
        job = context.window_manager.msma_job
        running = job.running and job_running()
        col = layout.column()
        col.scale_y = 1.5
        col.enabled = not running
        col.operator("msma.reconstruct_face", icon="USER")
        if running:
            layout.progress(factor=job.progress, type="BAR", text=job.status)
        elif job.status:
            layout.label(text=job.status, icon="INFO")


class MSMA_PT_options(_MSMAPanel, bpy.types.Panel):
    bl_label = "Options"
    bl_parent_id = "MSMA_PT_reconstruct"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        s = context.scene.msma
        layout.prop(s, "model_path")
        layout.prop(s, "fit")
        layout.prop(s, "texture_size")
        layout.prop(s, "device")
        layout.prop(s, "all_faces")
        layout.prop(s, "texture_mode")
        layout.prop(s, "add_camera")
        layout.prop(s, "lighting")
        layout.prop(s, "subdivision")
        layout.prop(s, "add_mouth")


class MSMA_PT_animation(_MSMAPanel, bpy.types.Panel):
    bl_label = "Animation"
    bl_parent_id = "MSMA_PT_reconstruct"

    @classmethod
    def poll(cls, context):
        return context.scene.msma.source == "SEQUENCE"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        s = context.scene.msma
        layout.prop(s, "identity")
        layout.prop(s, "smoothing")
        layout.prop(context.scene, "frame_start", text="First Frame")


classes = (MSMA_UL_images, MSMA_PT_reconstruct, MSMA_PT_options, MSMA_PT_animation)
