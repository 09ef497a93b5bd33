"""Eyeball child objects of a face built from the default head (real bpy wheel)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("bpy")

from blender_fixtures import make_face_result  # noqa: E402
from msma_engine.eyes import eyeballs_for, find_eye_sockets  # noqa: E402
from msma_engine.face_model import load_face_model  # noqa: E402
from msma_blender import conversion, face_builder  # noqa: E402


@pytest.fixture(scope="module")
def head():
    model = load_face_model()
    res = make_face_result(model, seed=3, image_path="/photos/portrait.jpg")
    return model, dataclasses.replace(res, eyes=eyeballs_for(model, res.vertices_neutral))


def _world_vertices(obj) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    mat = np.array(obj.matrix_world)
    return co.reshape(-1, 3).astype(np.float64) @ mat[:3, :3].T + mat[:3, 3]


def _build(bpy, res, model, **kw):
    return face_builder.build_face_object(res, bpy.context.scene.collection,
                                          face_builder.BuildOptions(**kw))


def test_eyes_are_parented_children_in_the_sockets(bpy_empty, head):
    bpy = bpy_empty
    model, res = head
    obj = _build(bpy, res, model)
    kids = sorted(obj.children, key=lambda o: o.name)
    assert [k.name for k in kids] == ["portrait Eye.L", "portrait Eye.R"]
    assert list(obj["msma_eyes"]) == ["portrait Eye.L", "portrait Eye.R"]
    bpy.context.view_layer.update()
    face_world = _world_vertices(obj)
    # Posed engine world frame in Blender axes, for comparison.
    for kid, eye in zip(kids, res.eyes):
        assert kid.parent == obj and kid["msma_eye"] == eye.side
        assert kid.data.materials[0].node_tree.nodes["MSMA Eye"].image.packed_file is not None
        assert len(kid.data.vertices) == len(eye.vertices)
        expected = conversion.points_to_blender(eye.vertices @ res.rotation.T + res.translation)
        np.testing.assert_allclose(_world_vertices(kid), expected, atol=1e-5)
        # Inside the socket: the eye centre is within the socket rim's bounds in world space.
        rim = face_world[find_eye_sockets(model).rim[eye.side]]
        centre = _world_vertices(kid).mean(axis=0)
        assert np.all(centre > rim.min(axis=0) - 0.015) and np.all(centre < rim.max(axis=0) + 0.015)
        assert np.linalg.norm(centre - rim.mean(axis=0)) < 0.015


def test_eyes_follow_the_head(bpy_empty, head):
    bpy = bpy_empty
    model, res = head
    obj = _build(bpy, res, model)
    left = next(k for k in obj.children if k["msma_eye"] == "L")
    bpy.context.view_layer.update()
    before = np.array(left.matrix_world) @ np.linalg.inv(np.array(obj.matrix_world))
    obj.location.x += 0.3
    obj.rotation_euler.z += 0.5
    bpy.context.view_layer.update()
    after = np.array(left.matrix_world) @ np.linalg.inv(np.array(obj.matrix_world))
    np.testing.assert_allclose(after, before, atol=1e-6)
    np.testing.assert_allclose(np.array(left.matrix_world), np.array(obj.matrix_world), atol=1e-6)


def test_no_eyes_when_disabled_or_absent_and_unique_names(bpy_empty, head):
    bpy = bpy_empty
    model, res = head
    assert not _build(bpy, res, model, add_eyes=False).children
    assert not _build(bpy, dataclasses.replace(res, eyes=None), model).children
    first = _build(bpy, res, model)
    second = _build(bpy, res, model)
    assert (first.name, second.name) == ("portrait.002", "portrait.003")
    assert sorted(k.name for k in first.children) == ["portrait.002 Eye.L", "portrait.002 Eye.R"]
    assert sorted(k.name for k in second.children) == ["portrait.003 Eye.L", "portrait.003 Eye.R"]


def test_eyes_follow_another_identity(bpy_empty, head):
    """The animation builds on another identity: the eyes move with their sockets."""
    bpy = bpy_empty
    model, res = head
    other = model.mean_shape.numpy().astype(np.float64)
    obj = face_builder.build_face_object(res, bpy.context.scene.collection,
                                         vertices_neutral=other)
    want = eyeballs_for(model, other)
    for kid in obj.children:
        eye = want.left if kid["msma_eye"] == "L" else want.right
        co = np.empty(len(kid.data.vertices) * 3, np.float32)
        kid.data.vertices.foreach_get("co", co)
        got_centre = co.reshape(-1, 3).mean(axis=0)
        # Where the engine seats it on that identity.
        assert np.linalg.norm(got_centre - conversion.points_to_blender(eye.centre[None])[0]) < 1e-5
