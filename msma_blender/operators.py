"""Operators: choose images, Reconstruct Face (modal, threaded), install dependencies.

The engine is imported lazily (in the worker thread); its one-line errors are reported in
Blender's UI and the operator keeps going with the next image.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import CollectionProperty, StringProperty
from msma_engine.cli_common import resolve_fit

from . import deps
from .face_builder import BuildOptions, build_face_object
from .jobs import JobConsumer, JobRequest, Outcome, ReconstructJob
from .pipeline import EngineSettings, InputError, collect_images

__all__ = ["MSMA_OT_add_images", "MSMA_OT_clear_images", "MSMA_OT_reconstruct_face",
           "MSMA_OT_install_dependencies", "MSMA_OT_copy_install_commands", "classes", "install_running",
           "job_running", "last_install", "request_from_settings"]

_TIMER_SECONDS = 0.2
# The job of the running modal operator (module state, not a saved property: a .blend saved
# during a run must not reopen with the button disabled).
_active_job: ReconstructJob | None = None
# The last dependency installation of this session (the preferences draw its progress or error).
_installer: deps.Installer | None = None


def job_running() -> bool:
    """True while a Reconstruct Face job is in progress in this Blender session."""
    return _active_job is not None and not _active_job.finished


def install_running() -> bool:
    """True while Install Dependencies runs pip."""
    return _installer is not None and not _installer.done


def last_install() -> deps.Installer | None:
    """The last dependency installation of this session, if any (for the preferences)."""
    return _installer


def _preferences(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def _install_steps(context, create: bool) -> list[deps.InstallStep]:
    """The install commands for the missing dependencies, with the preferences' PyTorch build.

    Raises:
        ValueError: not an installed extension, or a missing package has no pin.
        FileNotFoundError: the extension's requirement file is missing.
    """
    prefs = _preferences(context)
    return deps.install_steps(deps.site_packages_dir(__package__, create=create),
                              torch_build=prefs.torch_build if prefs else "cpu",
                              cuda_index_url=prefs.cuda_index_url if prefs else deps.DEFAULT_CUDA_INDEX_URL)


def request_from_settings(context) -> tuple[JobRequest, BuildOptions]:
    """Turn the sidebar settings (and preferences) into a job request and build options.

    Raises:
        InputError: a chosen path is missing or holds no images.
    """
    s = context.scene.msma
    prefs = _preferences(context)
    if s.source == "FILE":
        if not s.image_path:
            raise InputError("Image", "choose a photo first")
        paths = [bpy.path.abspath(s.image_path)]
    elif s.source == "FILES":
        if not len(s.images):
            raise InputError("Images", "add photos first")
        paths = [bpy.path.abspath(item.path) for item in s.images]
    else:
        if not s.folder:
            raise InputError("Folder", "choose a folder first")
        paths = [bpy.path.abspath(s.folder)]
    images = collect_images(paths)
    device = (prefs.device if prefs is not None else "cpu") if s.device == "PREFS" else s.device
    settings = EngineSettings(
        model_path=bpy.path.abspath(s.model_path or (prefs.model_path if prefs else "")),
        weights_path=bpy.path.abspath(prefs.weights_path) if prefs and prefs.weights_path else "",
        device=device)
    request = JobRequest(images=images, settings=settings, fit=resolve_fit(s.fit),
                         texture_size=int(s.texture_size), face="all" if s.all_faces else "largest",
                         animation=s.source == "SEQUENCE")
    options = BuildOptions(texture_mode=s.texture_mode, add_camera=s.add_camera, lighting=s.lighting,
                           subdivision=s.subdivision, add_mouth=s.add_mouth,
                           set_scene_camera=s.add_camera and context.scene.camera is None,
                           # an animation is named after its frames' folder, a photo's face after the photo
                           name=Path(paths[0]).name if s.source == "SEQUENCE" else None)
    return request, options


class MSMA_OT_add_images(bpy.types.Operator):
    """Add photos to the list (several can be selected)"""

    bl_idname = "msma.add_images"
    bl_label = "Add Images"
    bl_options = {"REGISTER", "UNDO"}

    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        images = context.scene.msma.images
        for f in self.files:
            if f.name:
                images.add().path = str(Path(self.directory) / f.name)
        return {"FINISHED"}


class MSMA_OT_clear_images(bpy.types.Operator):
    """Empty the list of photos"""

    bl_idname = "msma.clear_images"
    bl_label = "Clear Images"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.msma.images.clear()
        return {"FINISHED"}


class _BlenderBuilder:
    """The :class:`~.jobs.Builder` of the operator: face objects in ``collection``."""

    def __init__(self, context, collection, options: BuildOptions):
        self.scene, self.collection, self.options = context.scene, collection, options

    def face(self, result):
        obj = build_face_object(result, self.collection, self.options, scene=self.scene)
        self.options.set_scene_camera = False  # only the first camera becomes the scene camera
        return obj

    def animation(self, frames):
        from .animation import build_animated_face

        s = self.scene.msma
        return build_animated_face(frames, self.collection, self.options, scene=self.scene,
                                   frame_start=self.scene.frame_start, sigma=s.smoothing, identity=s.identity)


class MSMA_OT_reconstruct_face(bpy.types.Operator):
    """Reconstruct a 3D face from the chosen photo(s): mesh, expression shape keys, textured material"""

    bl_idname = "msma.reconstruct_face"
    bl_label = "Reconstruct Face"
    bl_options = {"REGISTER", "UNDO"}

    _consumer: JobConsumer | None = None
    _timer = None

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not job_running()

    def _prepare(self, context) -> bool:
        try:
            request, options = request_from_settings(context)
        except InputError as err:
            self.report({"ERROR"}, str(err))
            return False
        builder = _BlenderBuilder(context, context.collection or context.scene.collection, options)
        self._consumer = JobConsumer(ReconstructJob(request), builder,
                                     report=lambda level, message: self.report({level}, message))
        return True

    def _close(self, outcome: Outcome) -> set[str]:
        self.report({outcome.level}, outcome.message)
        return {"FINISHED"} if outcome.finished else {"CANCELLED"}

    # --- synchronous (scripts, background mode) --------------------------------------
    def execute(self, context):
        if not self._prepare(context):
            return {"CANCELLED"}
        return self._close(self._consumer.run_sync())

    # --- interactive: worker thread + timer; the logic is JobConsumer's -------------------
    def invoke(self, context, event):
        if not self._prepare(context):
            return {"CANCELLED"}
        wm = context.window_manager
        wm.msma_job.running, wm.msma_job.progress = True, 0.0
        wm.msma_job.status = f"Reconstructing {self._consumer.job.total} image(s)... (Esc to cancel)"
        global _active_job
        _active_job = self._consumer.job
        self._consumer.start()
        self._timer = wm.event_timer_add(_TIMER_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            outcome = self._consumer.cancel()
        elif event.type == "TIMER":
            outcome = self._consumer.step()
            self._show_progress(context)
        else:
            return {"PASS_THROUGH"}
        if outcome is None:
            return {"RUNNING_MODAL"}
        self._end(context, outcome.status)
        return self._close(outcome)

    def _show_progress(self, context) -> None:
        wm = context.window_manager
        wm.msma_job.progress = self._consumer.progress
        wm.progress_update(int(self._consumer.progress * 1000))
        wm.msma_job.status = self._consumer.status
        for area in context.screen.areas if context.screen else []:
            if area.type == "VIEW_3D":
                area.tag_redraw()

    def _end(self, context, status: str) -> None:
        global _active_job
        _active_job = None
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        wm.msma_job.running = False
        wm.msma_job.status = status


class MSMA_OT_install_dependencies(bpy.types.Operator):
    """Download and install the Python packages the engine needs (PyTorch, SciPy, Pillow, OpenCV)
into this extension's user folder. Needs "Allow Online Access\""""

    bl_idname = "msma.install_dependencies"
    bl_label = "Install Dependencies"

    _timer = None

    @classmethod
    def poll(cls, context):
        return not install_running()

    def execute(self, context):
        global _installer
        try:
            _installer = deps.Installer(_install_steps(context, create=True), deps.pip_log_path(__package__),
                                        online_access=bpy.app.online_access)
        except (deps.OfflineError, FileNotFoundError, ValueError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        if context.window is None:  # background: wait here
            _installer.wait()
            return self._finish()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        self.report({"INFO"}, f"Installing: {_installer.status} (PyTorch's CPU build is a few hundred MB)")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        done = _installer.poll()
        context.window_manager.progress_update(int(_installer.fraction * 1000))
        for window in context.window_manager.windows:  # the preferences show the progress
            for area in window.screen.areas:
                if area.type == "PREFERENCES":
                    area.tag_redraw()
        if not done:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        return self._finish()

    def _finish(self) -> set[str]:
        if _installer.error:
            self.report({"ERROR"}, f"Installing dependencies failed: {_installer.error} "
                                   f"(full log: {_installer.log_file})")
            return {"CANCELLED"}
        deps.activate_site_packages(__package__)
        missing = deps.missing_modules()
        if missing:
            self.report({"WARNING"}, "Installed, but still missing: " + ", ".join(missing))
        else:
            self.report({"INFO"}, "Dependencies installed")
        return {"FINISHED"}


class MSMA_OT_copy_install_commands(bpy.types.Operator):
    """Copy the pip commands that install the missing dependencies (for a terminal, e.g. offline)"""

    bl_idname = "msma.copy_install_commands"
    bl_label = "Copy pip Commands"

    def execute(self, context):
        try:
            steps = _install_steps(context, create=False)
        except (FileNotFoundError, ValueError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        text = deps.command_line([s.cmd for s in steps])
        context.window_manager.clipboard = text
        self.report({"INFO"}, f"Copied: {text}" if text else "Nothing is missing")
        return {"FINISHED"}


classes = (MSMA_OT_add_images, MSMA_OT_clear_images, MSMA_OT_reconstruct_face, MSMA_OT_install_dependencies,
           MSMA_OT_copy_install_commands)
