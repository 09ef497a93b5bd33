"""Settings shown in the sidebar (per scene) and the running job's state (per window manager)."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

__all__ = ["MSMA_ImageItem", "MSMA_SceneSettings", "MSMA_JobState", "classes", "register_pointers",
           "unregister_pointers"]

SOURCE_ITEMS = [
    ("FILE", "Image", "One photo"),
    ("FILES", "Images", "Several photos, one object per face"),
    ("FOLDER", "Folder", "Every image in a folder, one object per face"),
    ("SEQUENCE", "Sequence", "Frames of a video in a folder (sorted by name): one animated face"),
]
FIT_ITEMS = [
    ("default", "Default", "The start point (network prediction with weights, else the mean face posed on the "
                           "landmarks) refined by a short landmark/photometric fit"),
    ("fast", "Fast", "A few fitting steps"),
    ("none", "No Fitting", "The start point only: the network's prediction with weights, else the mean face "
                           "posed on the landmarks"),
]
TEXTURE_ITEMS = [(s, s, f"{s}×{s} pixels albedo texture") for s in ("256", "512", "1024", "2048")]
DEVICE_ITEMS = [
    ("PREFS", "Preferences", "Use the device set in the add-on preferences"),
    ("cpu", "CPU", "Run on the CPU"),
    ("cuda", "CUDA GPU", "Run on an NVIDIA GPU (needs a CUDA build of PyTorch)"),
]


class MSMA_ImageItem(bpy.types.PropertyGroup):
    """One chosen photo."""

    path: StringProperty(name="Path", subtype="FILE_PATH")


class MSMA_SceneSettings(bpy.types.PropertyGroup):
    """What to reconstruct and how (Scene.msma)."""

    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default="FILE")
    image_path: StringProperty(name="Image", subtype="FILE_PATH", description="Photo with a face")
    images: CollectionProperty(type=MSMA_ImageItem, name="Images")
    images_index: IntProperty(name="Active Image")
    folder: StringProperty(name="Folder", subtype="DIR_PATH",
                           description="Folder of photos, or of video frames for a sequence")
    model_path: StringProperty(name="Face Model", subtype="FILE_PATH",
                               description="Face-model .npz (empty: the preferences' model, else the default head)")
    fit: EnumProperty(name="Fitting", items=FIT_ITEMS, default="default")
    texture_size: EnumProperty(name="Texture Size", items=TEXTURE_ITEMS, default="1024")
    all_faces: BoolProperty(name="All Faces", default=False,
                            description="One object per detected face (otherwise the largest face only)")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="PREFS")
    texture_mode: EnumProperty(
        name="Texture", default="PACK",
        items=[("PACK", "Pack in .blend", "Store the albedo image inside the .blend file"),
               ("SAVE", "Save Beside .blend", "Write a PNG next to the saved .blend file")])
    add_camera: BoolProperty(name="Photo Camera", default=True,
                             description="Add a camera that sees the face as the photo did")
    lighting: FloatProperty(name="Photo Lighting", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
                            description="Initial mix of the photo's SH lighting (0 = plain albedo)")
    subdivision: IntProperty(name="Subdivision", default=1, min=0, max=3,
                             description="Subdivision Surface levels in the viewport (render: one more; "
                                         "0 = no modifier). Shape keys act under it")
    add_mouth: BoolProperty(name="Teeth and Tongue", default=True,
                            description="Add the mouth interior (models that have one, not BFM09)")
    smoothing: FloatProperty(name="Smoothing", default=1.0, min=0.0, max=10.0,
                             description="Gaussian smoothing over frames (sigma, in frames; 0 = off)")
    identity: EnumProperty(name="Identity", default="FIRST",
                           items=[("FIRST", "First Frame", "Keep the first frame's face shape"),
                                  ("MEAN", "Mean", "Average the face shape over all frames")])


class MSMA_JobState(bpy.types.PropertyGroup):
    """Progress of the running reconstruction, for the panel (WindowManager.msma_job)."""

    running: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(default="")


classes = (MSMA_ImageItem, MSMA_SceneSettings, MSMA_JobState)


def register_pointers() -> None:
    bpy.types.Scene.msma = PointerProperty(type=MSMA_SceneSettings)
    bpy.types.WindowManager.msma_job = PointerProperty(type=MSMA_JobState)


def unregister_pointers() -> None:
    del bpy.types.WindowManager.msma_job
    del bpy.types.Scene.msma
