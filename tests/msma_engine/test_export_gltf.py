"""Tests for msma_engine.export_gltf: GLB structure parsed by hand, and a real import with bpy."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sphere_model import make_sphere_model
from msma_engine.errors import ShapeError
from msma_engine.export_gltf import (build_glb, default_node_name, eye_meshes, mesh_from_result, read_glb,
                                     split_uv_seams, write_glb)
from msma_engine.eyes import Eyeball, Eyeballs, eye_texture, uv_sphere
from msma_engine.face_model import CoeffLayout
from msma_engine.result import FaceResult, PhotoCamera
from msma_engine.topology import FaceTopology, read_only


def make_result(seed: int = 0) -> FaceResult:
    """A FaceResult of the sphere fixture (seamed UVs; its topology holds the expression basis)."""
    d = make_sphere_model(n_lat=6, n_lon=8, n_exp=3)
    # Give the UV layout a real seam: triangles touching column 0 use a duplicated UV column at u = 1.
    uv = np.concatenate([d.uv_coords, d.uv_coords[::8] + np.array([1.0, 0.0], np.float32)])
    uvt = d.triangles.copy()
    n_lon = 8
    for f, tri in enumerate(d.triangles):
        cols = tri % n_lon
        if cols.max() == n_lon - 1 and cols.min() == 0:
            uvt[f] = np.where(cols == 0, len(d.uv_coords) + tri // n_lon, tri)
    uv = uv / np.array([1.0 + 1e-6, 1.0])
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    layout = CoeffLayout(n_id=d.n_id, n_exp=d.n_exp, n_tex=d.n_tex)
    topo = FaceTopology(name="sphere", layout=layout, triangles=read_only(d.triangles, np.int32),
                        uv_coords=read_only(uv, np.float32), uv_triangles=read_only(uvt, np.int32),
                        expression_names=tuple(d.expression_names), expression_range=read_only(d.expression_range),
                        expression_basis=read_only(d.exp_basis, np.float32))
    coeffs = np.zeros(layout.total, np.float32)
    coeffs[layout.slices()["exp"]] = [0.2, 0.0, 0.7]
    return FaceResult(
        topology=topo, image_path=None, face_index=0, coeffs=coeffs,
        vertices_neutral=d.mean_shape, vertices_model=d.mean_shape, vertices_world=d.mean_shape,
        albedo_texture=tex, rotation=np.eye(3),
        landmarks_2d=np.zeros((68, 2)), detected_landmarks=np.zeros((68, 2)), face_box=np.zeros(4),
        crop_matrix=np.array([[1.0, 0, 0], [0, 1.0, 0]]), camera=PhotoCamera(1000.0, (10.0, 10.0), (20, 20)),
    )


def with_eyes(res: FaceResult) -> FaceResult:
    """``res`` with two small eyeballs (left at +x) in front of the sphere."""
    unit, tris, uvs, uv_tris = uv_sphere(8, 6)
    eyes = [Eyeball(side, np.array(c), 0.1, np.array(c) + 0.1 * unit, np.arange(3), np.arange(3))
            for side, c in (("L", (0.3, 0.2, 0.9)), ("R", (-0.3, 0.2, 0.9)))]
    return dataclasses.replace(res, eyes=Eyeballs(left=eyes[0], right=eyes[1], triangles=tris, uv_coords=uvs,
                                                  uv_triangles=uv_tris, texture=eye_texture(size=32),
                                                  iris_color=np.array([10, 20, 30], np.uint8)))


def _view(doc: dict, binary: bytes, index: int, dtype) -> np.ndarray:
    view = doc["bufferViews"][index]
    return np.frombuffer(binary[view["byteOffset"]: view["byteOffset"] + view["byteLength"]], dtype=dtype)


def _accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    """An accessor's values, dense or sparse (glTF 2.0 sparse accessors without a base view)."""
    acc = doc["accessors"][index]
    dtype = {5126: np.float32, 5125: np.uint32}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[acc["type"]]
    if "bufferView" in acc:
        out = _view(doc, binary, acc["bufferView"], dtype).reshape(acc["count"], width).copy()
    else:
        out = np.zeros((acc["count"], width), dtype)
    if "sparse" in acc:
        sp = acc["sparse"]
        idx = _view(doc, binary, sp["indices"]["bufferView"], np.uint32)
        out[idx] = _view(doc, binary, sp["values"]["bufferView"], dtype).reshape(-1, width)
    return out


class TestSplitSeams:
    def test_one_vertex_per_corner_pair(self):
        tris = np.array([[0, 1, 2], [0, 2, 3]])
        uvt = np.array([[0, 1, 2], [4, 2, 3]])  # vertex 0 has two UVs
        vertex_of, uv_of, faces = split_uv_seams(tris, uvt)
        assert len(vertex_of) == 5
        assert np.array_equal(vertex_of[faces], tris) and np.array_equal(uv_of[faces], uvt)

    def test_shape_error(self):
        with pytest.raises(ShapeError, match="uv_triangles"):
            split_uv_seams(np.zeros((2, 3), int), np.zeros((3, 3), int))


class TestGLB:
    def test_structure_and_content(self, tmp_path):
        res = make_result()
        basis, topo = res.topology.expression_basis, res.topology
        path = write_glb(res, tmp_path / "face.glb")
        doc, binary = read_glb(path.read_bytes())
        assert doc["asset"]["version"] == "2.0"
        mesh = doc["meshes"][0]
        prim = mesh["primitives"][0]
        assert mesh["extras"]["targetNames"] == ["e0", "e1", "e2"]
        assert len(prim["targets"]) == 3 and mesh["weights"] == pytest.approx([0.2, 0.0, 0.7])
        pos = _accessor(doc, binary, prim["attributes"]["POSITION"])
        uv = _accessor(doc, binary, prim["attributes"]["TEXCOORD_0"])
        idx = _accessor(doc, binary, prim["indices"]).reshape(-1, 3)
        nrm = _accessor(doc, binary, prim["attributes"]["NORMAL"])
        assert len(pos) > len(res.vertices_neutral)  # split at the seam
        vertex_of, uv_of, faces = split_uv_seams(topo.triangles, topo.uv_triangles)
        assert np.allclose(pos, res.vertices_neutral[vertex_of])
        assert np.allclose(uv[:, 1], 1.0 - topo.uv_coords[uv_of, 1])  # glTF v is flipped
        assert np.array_equal(idx, faces)
        assert np.allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-5)
        assert doc["accessors"][prim["attributes"]["POSITION"]]["min"] == pytest.approx(pos.min(0).tolist())
        delta = _accessor(doc, binary, prim["targets"][2]["POSITION"])
        assert np.allclose(delta, basis[2][vertex_of])
        img = doc["images"][0]
        view = doc["bufferViews"][img["bufferView"]]
        png = Image.open(io.BytesIO(binary[view["byteOffset"]: view["byteOffset"] + view["byteLength"]]))
        assert np.array_equal(np.asarray(png), res.albedo_texture)
        assert doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"] == 0

    def test_eyes_are_child_meshes(self, tmp_path):
        res = make_result()
        doc, _ = read_glb(write_glb(dataclasses.replace(res, image_path="/photos/portrait.jpg"),
                                    tmp_path / "plain.glb").read_bytes())
        assert len(doc["meshes"]) == 1 and "children" not in doc["nodes"][0]
        assert doc["nodes"][0]["name"] == "portrait"
        res = with_eyes(res)
        doc, binary = read_glb(write_glb(res, tmp_path / "face.glb").read_bytes())
        assert len(doc["meshes"]) == 3 and len(doc["materials"]) == 3
        assert doc["scenes"][0]["nodes"] == [0] and doc["nodes"][0]["children"] == [1, 2]
        # Both eyes use one image; the face keeps its own.
        assert len(doc["images"]) == 2
        eye_tex = [doc["materials"][doc["meshes"][i]["primitives"][0]["material"]]
                   ["pbrMetallicRoughness"]["baseColorTexture"]["index"] for i in (1, 2)]
        assert eye_tex[0] == eye_tex[1] != doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"]
        for node_i, eye in ((1, res.eyes.left), (2, res.eyes.right)):
            node = doc["nodes"][node_i]
            # Named after the photo (issue 14.17), "face" for an in-memory image; not after the model.
            assert node["name"] == f"face_eye_{eye.side}" and node["extras"]["eye"] == eye.side
            prim = doc["meshes"][node["mesh"]]["primitives"][0]
            assert "targets" not in prim
            pos = _accessor(doc, binary, prim["attributes"]["POSITION"])
            nrm = _accessor(doc, binary, prim["attributes"]["NORMAL"])
            assert np.allclose(np.linalg.norm(pos - eye.centre, axis=1), eye.radius, atol=1e-6)
            assert np.allclose(nrm, (pos - eye.centre) / eye.radius, atol=1e-5)
            idx = _accessor(doc, binary, prim["indices"]).reshape(-1, 3)
            assert idx.shape == res.eyes.triangles.shape
        assert eye_meshes(None) == []

    def test_bad_inputs(self):
        res = make_result()
        topo = res.topology
        with pytest.raises(ShapeError, match=r"expression_basis must be \(3, V, 3\)"):
            dataclasses.replace(topo, expression_basis=topo.expression_basis[:2])
        with pytest.raises(ShapeError, match=r"coeffs must be \(%d,\)" % topo.layout.total):
            dataclasses.replace(res, coeffs=res.coeffs[:-1])
        with pytest.raises(ShapeError, match="vertices_world"):
            dataclasses.replace(res, vertices_world=res.vertices_world[:-1])
        mesh = mesh_from_result(res)
        mesh.texture = np.zeros((4, 4), np.uint8)
        with pytest.raises(ShapeError, match="texture"):
            build_glb(mesh)
        with pytest.raises(ValueError, match="GLB"):
            read_glb(b"not a glb file at all")

    def test_blender_imports_shape_keys(self, tmp_path):
        pytest.importorskip("bpy")
        path = write_glb(with_eyes(make_result()), tmp_path / "face.glb")
        script = (
            "import bpy, json, sys\n"
            "bpy.ops.wm.read_factory_settings(use_empty=True)\n"
            f"bpy.ops.import_scene.gltf(filepath={str(path)!r})\n"
            "obj = [o for o in bpy.data.objects if o.type == 'MESH' and o.data.shape_keys][0]\n"
            "eyes = sorted(o.name for o in bpy.data.objects if o.type == 'MESH' and o.parent == obj)\n"
            "keys = obj.data.shape_keys.key_blocks\n"
            "img = [i for i in bpy.data.images if i.size[0] > 0]\n"
            "print('RESULT', json.dumps({'names': [k.name for k in keys], 'values': [k.value for k in keys],"
            " 'uv': len(obj.data.uv_layers), 'images': len(img), 'eyes': eyes}))\n"
        )
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender"))
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        assert line is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
        got = json.loads(line[len("RESULT "):])
        assert got["names"] == ["Basis", "e0", "e1", "e2"]
        assert got["values"][1:] == pytest.approx([0.2, 0.0, 0.7], abs=1e-6)
        assert got["uv"] == 1 and got["images"] == 2
        assert got["eyes"] == ["face_eye_L", "face_eye_R"]


def _default_head_result():
    """A FaceResult of the shipped default head (eyes, mouth, quads) with a photo-like texture."""
    import importlib.util
    from pathlib import Path

    from msma_engine.face_model import load_face_model

    path = Path(__file__).resolve().parents[1] / "msma_blender" / "blender_fixtures.py"
    spec = importlib.util.spec_from_file_location("msma_blender_fixtures_for_gltf", path)
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    model = load_face_model()
    weights = np.zeros(model.layout.n_exp, np.float32)
    weights[model.expression_names.index("jawOpen")] = 0.3
    weights[model.expression_names.index("eyeLookOutLeft")] = 0.6
    res = fixtures.make_face_result(model, seed=2, exp_weights=weights)
    # A smooth 1024² texture like a baked photo (the model's mean albedo, upsampled).
    mean = np.clip(model.albedo_mean.numpy() * 255, 0, 255).astype(np.uint8)
    texture = np.asarray(Image.fromarray(mean).resize((1024, 1024), Image.BICUBIC))
    return model, dataclasses.replace(res, albedo_texture=texture)


class TestDefaultHeadParts:
    def test_eyes_and_mouth_carry_their_targets(self, tmp_path):
        from msma_engine.eyes import EYE_LOOK_DEGREES

        model, res = _default_head_result()
        path = write_glb(res, tmp_path / "head.glb")
        assert path.stat().st_size < 5e6
        doc, binary = read_glb(path.read_bytes())
        nodes = {n["name"]: n for n in doc["nodes"]}
        face = doc["nodes"][0]
        kids = [doc["nodes"][i]["name"] for i in face["children"]]
        assert kids == [f"{face['name']}_eye_L", f"{face['name']}_eye_R", f"{face['name']}_upper_teeth",
                        f"{face['name']}_lower_teeth", f"{face['name']}_tongue"]
        names = res.topology.expression_names
        for side, suffix in (("L", "Left"), ("R", "Right")):
            mesh = doc["meshes"][nodes[f"{face['name']}_eye_{side}"]["mesh"]]
            targets = mesh["extras"]["targetNames"]
            assert sorted(targets) == sorted(f"eyeLook{d}{suffix}" for d in ("In", "Out", "Up", "Down"))
            assert mesh["weights"] == pytest.approx([res.expression_weights[names.index(t)] for t in targets])
            prim = mesh["primitives"][0]
            pos = _accessor(doc, binary, prim["attributes"]["POSITION"])
            out = _accessor(doc, binary, prim["targets"][targets.index(f"eyeLookOut{suffix}")]["POSITION"])
            eye = res.eyes.left if side == "L" else res.eyes.right
            # The cornea's front point moves round the centre by the look angle, outwards.
            front = np.argmax(pos[:, 2])
            a, b = pos[front] - eye.centre, pos[front] + out[front] - eye.centre
            angle = np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
            assert angle == pytest.approx(EYE_LOOK_DEGREES["Out"], abs=0.5)
            assert np.sign(out[front, 0]) == (1 if side == "L" else -1)
        upper = doc["meshes"][nodes[f"{face['name']}_upper_teeth"]["mesh"]]
        # The upper teeth sit on the skull: no jaw key moves them.
        upper_keys = set(upper.get("extras", {}).get("targetNames", []))
        assert not {"jawOpen", "jawLeft", "jawRight", "jawForward"} & upper_keys
        for part in ("lower_teeth", "tongue"):
            node = nodes[f"{face['name']}_{part}"]
            mesh = doc["meshes"][node["mesh"]]
            targets = mesh["extras"]["targetNames"]
            assert {"jawOpen", "jawLeft", "jawRight", "jawForward"} <= set(targets)
            prim = mesh["primitives"][0]
            mat = doc["materials"][prim["material"]]["pbrMetallicRoughness"]
            assert "baseColorTexture" not in mat and len(mat["baseColorFactor"]) == 4
            pos = _accessor(doc, binary, prim["attributes"]["POSITION"])
            jaw = _accessor(doc, binary, prim["targets"][targets.index("jawOpen")]["POSITION"])
            used = res.mouth.part_vertices(part)
            np.testing.assert_allclose(pos, res.mouth.vertices_neutral[used], atol=1e-6)
            np.testing.assert_allclose(jaw, res.mouth.exp_basis[names.index("jawOpen")][used], atol=1e-6)
        # Sparse accessors are used where few vertices move (e.g. a one-eye blink on the face).
        face_prim = doc["meshes"][face["mesh"]]["primitives"][0]
        blink = doc["accessors"][face_prim["targets"][names.index("eyeBlinkLeft")]["POSITION"]]
        assert "sparse" in blink and blink["sparse"]["count"] < blink["count"] // 2

    def test_blender_round_trip_keeps_parts_and_targets(self, tmp_path):
        pytest.importorskip("bpy")
        model, res = _default_head_result()
        path = write_glb(res, tmp_path / "head.glb")
        script = (
            "import bpy, json\n"
            "bpy.ops.wm.read_factory_settings(use_empty=True)\n"
            f"bpy.ops.import_scene.gltf(filepath={str(path)!r})\n"
            "out = {}\n"
            "for o in bpy.data.objects:\n"
            "    if o.type == 'MESH':\n"
            "        keys = o.data.shape_keys.key_blocks if o.data.shape_keys else []\n"
            "        out[o.name] = {'parent': o.parent.name if o.parent else None, 'keys': [k.name for k in keys],\n"
            "                       'verts': len(o.data.vertices)}\n"
            "print('RESULT', json.dumps(out))\n"
        )
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender"))
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        assert line is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
        got = json.loads(line[len("RESULT "):])
        face = default_node_name(res)
        assert got[face]["keys"] == ["Basis", *res.topology.expression_names]
        for part in ("eye_L", "eye_R", "upper_teeth", "lower_teeth", "tongue"):
            assert got[f"{face}_{part}"]["parent"] == face
        assert "eyeLookOutLeft" in got[f"{face}_eye_L"]["keys"] and "eyeLookOutRight" in got[f"{face}_eye_R"]["keys"]
        assert "jawOpen" in got[f"{face}_lower_teeth"]["keys"] and "tongueOut" in got[f"{face}_tongue"]["keys"]
