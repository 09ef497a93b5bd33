"""Face object built from a FaceResult with the real bpy wheel: mesh, keys, material, pose, camera."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

pytest.importorskip("bpy")

from msma_engine.shading import sh_irradiance  # noqa: E402
from msma_blender import conversion, face_builder, material  # noqa: E402


def _build(bpy, result, **kw):
    opts = face_builder.BuildOptions(**kw)
    return face_builder.build_face_object(result, bpy.context.scene.collection, opts,
                                          scene=bpy.context.scene)


def _evaluated_world_vertices(bpy, obj) -> np.ndarray:
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    mesh = ev.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    mat = np.array(obj.matrix_world)
    co = co.reshape(-1, 3).astype(np.float64)
    return co @ mat[:3, :3].T + mat[:3, 3]


class TestFaceObject:
    def test_object_mesh_uv(self, bpy_empty, sphere_face):
        bpy = bpy_empty
        result = sphere_face
        obj = _build(bpy, result)
        assert obj.name == "portrait"
        mesh = obj.data
        assert len(mesh.vertices) == len(result.vertices_neutral)
        assert len(mesh.polygons) == len(result.topology.triangles)
        assert [uv.name for uv in mesh.uv_layers] == ["UVMap"]
        uv = np.empty(len(mesh.loops) * 2, np.float32)
        mesh.uv_layers[0].data.foreach_get("uv", uv)
        topo = result.topology
        np.testing.assert_allclose(uv.reshape(-1, 2), topo.uv_coords[topo.uv_triangles.reshape(-1)], atol=1e-6)
        loops = np.empty(len(mesh.loops), np.int32)
        mesh.loops.foreach_get("vertex_index", loops)
        np.testing.assert_array_equal(loops, result.topology.triangles.reshape(-1))

    def test_shape_keys(self, bpy_empty, sphere_face):
        bpy = bpy_empty
        result = sphere_face
        obj = _build(bpy, result)
        keys = obj.data.shape_keys.key_blocks
        assert [k.name for k in keys] == ["Basis", *result.topology.expression_names]
        for k, key in enumerate(keys[1:]):
            assert key.value == pytest.approx(result.expression_weights[k], abs=1e-6)
            assert key.slider_min <= min(result.topology.expression_range[k, 0], key.value)
            assert key.slider_max >= max(result.topology.expression_range[k, 1], key.value)
            assert key.relative_key.name == "Basis"
        basis = np.empty(len(obj.data.vertices) * 3, np.float32)
        keys[0].data.foreach_get("co", basis)
        np.testing.assert_allclose(basis.reshape(-1, 3), conversion.points_to_blender(result.vertices_neutral),
                                   atol=1e-6)

    def test_evaluated_shape_is_posed_result(self, bpy_empty, sphere_face):
        """Basis + weighted keys at the object's pose = the engine's world vertices, in Blender axes."""
        bpy = bpy_empty
        result = sphere_face
        obj = _build(bpy, result, subdivision=0)
        assert not obj.modifiers
        world = _evaluated_world_vertices(bpy, obj)
        np.testing.assert_allclose(world, conversion.points_to_blender(result.vertices_world), atol=1e-5)

    def test_slider_range_widened_to_cover_value(self, bpy_empty, sphere_face):
        bpy = bpy_empty
        result = sphere_face
        coeffs = result.coeffs.copy()
        coeffs[result.topology.layout.slices()["exp"]] = [-2.5, 0.5, 3.0]
        obj = _build(bpy, dataclasses.replace(result, coeffs=coeffs))
        keys = obj.data.shape_keys.key_blocks
        assert keys[1].slider_min <= -2.5 and keys[1].value == pytest.approx(-2.5)
        assert keys[3].slider_max >= 3.0 and keys[3].value == pytest.approx(3.0)

    def test_material_image_and_sh_group(self, bpy_empty, sphere_face):
        bpy = bpy_empty
        result = sphere_face
        obj = _build(bpy, result)
        mat = obj.data.materials[0]
        nodes = mat.node_tree.nodes
        tex, group = nodes["MSMA Albedo"], nodes["MSMA SH Lighting"]
        image = tex.image
        assert image.packed_file is not None
        assert tuple(image.size) == result.albedo_texture.shape[1::-1]
        px = np.empty(len(image.pixels), np.float32)
        image.pixels.foreach_get(px)
        px = px.reshape(image.size[1], image.size[0], 4)
        # Blender rows start at the bottom; the engine texture's row 0 is the top.
        np.testing.assert_allclose(px[-1, :, :3] * 255, result.albedo_texture[0], atol=0.6)
        assert group.node_tree.name == material.SH_GROUP_NAME
        expected = material.sh_group_inputs(result.sh_coeffs)
        for k in range(9):
            np.testing.assert_allclose(group.inputs[f"SH {k}"].default_value, expected[k], atol=1e-6)
        bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
        assert bsdf.inputs["Base Color"].links[0].from_node == group
        assert group.inputs["Albedo"].links[0].from_node == tex
        # Solid-mode colour: the texture's mean colour.
        np.testing.assert_allclose(mat.diffuse_color[:3], px[..., :3].reshape(-1, 3).mean(axis=0), atol=0.03)

    def test_custom_properties(self, bpy_empty, sphere_face):
        bpy = bpy_empty
        result = sphere_face
        obj = _build(bpy, result)
        np.testing.assert_allclose(obj["msma_coeffs"], result.coeffs, atol=1e-6)
        np.testing.assert_allclose(obj["msma_angles"], result.angles, atol=1e-6)
        np.testing.assert_allclose(obj["msma_translation"], result.translation, atol=1e-6)
        np.testing.assert_allclose(obj["msma_sh"], result.sh_coeffs, atol=1e-6)
        assert obj["msma_model"] == "sphere"
        assert obj["msma_image"] == "/photos/portrait.jpg"

    def test_never_modifies_existing_data(self, bpy_empty, sphere_face):
        bpy = bpy_empty
        result = sphere_face
        user_mesh = bpy.data.meshes.new("portrait")
        user_mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
        user_obj = bpy.data.objects.new("portrait", user_mesh)
        bpy.context.scene.collection.objects.link(user_obj)
        user_mat = bpy.data.materials.new("portrait")
        user_img = bpy.data.images.new("portrait albedo", 4, 4)
        first = _build(bpy, result)
        snapshot = (np.array(first.matrix_world), len(first.data.vertices), first.data.materials[0].name,
                    [k.name for k in first.data.shape_keys.key_blocks], first.name)
        second = _build(bpy, result)
        assert user_obj.name == "portrait" and user_obj.data == user_mesh and len(user_mesh.vertices) == 3
        assert user_mesh.shape_keys is None and user_mat.name == "portrait" and user_img.size[0] == 4
        assert len({user_obj.name, first.name, second.name}) == 3
        assert first.data != second.data and first.data.materials[0] != second.data.materials[0]
        assert (np.array(first.matrix_world), len(first.data.vertices), first.data.materials[0].name,
                [k.name for k in first.data.shape_keys.key_blocks], first.name)[1:] == snapshot[1:]
        np.testing.assert_array_equal(np.array(first.matrix_world), snapshot[0])
        # The SH node group is shared between faces, not duplicated.
        assert len([g for g in bpy.data.node_groups if g.name.startswith(material.SH_GROUP_NAME)]) == 1

    def test_save_texture_beside_blend(self, bpy_empty, sphere_face, tmp_path):
        bpy = bpy_empty
        result = sphere_face
        with pytest.raises(ValueError, match="save the .blend"):
            _build(bpy, result, texture_mode="SAVE")
        (tmp_path / "portrait albedo.png").write_bytes(b"user file")
        obj = _build(bpy, result, texture_mode="SAVE", texture_dir=str(tmp_path))
        image = obj.data.materials[0].node_tree.nodes["MSMA Albedo"].image
        assert image.packed_file is None
        assert (tmp_path / "portrait albedo.png").read_bytes() == b"user file"
        saved = bpy.path.abspath(image.filepath)
        assert saved.endswith(".png") and saved != str(tmp_path / "portrait albedo.png")


class TestSHNodeGroup:
    """Evaluate the node group's graph numerically and compare with msma_engine.shading."""

    @staticmethod
    def _eval(socket, inputs, normal, cache):
        node = socket.node
        key = (node.name, socket.identifier)
        if key in cache:
            return cache[key]

        def inp(i):
            s = node.inputs[i] if isinstance(i, int) else next(x for x in node.inputs if x.identifier == i)
            if s.is_linked:
                return TestSHNodeGroup._eval(s.links[0].from_socket, inputs, normal, cache)
            v = s.default_value
            return np.array(v[:3], float) if hasattr(v, "__len__") else float(v)

        t = node.bl_idname
        if t == "NodeGroupInput":
            out = inputs[socket.name]
        elif t == "ShaderNodeNewGeometry":
            out = np.asarray(normal, float)
        elif t == "ShaderNodeSeparateXYZ":
            out = float(inp(0)["XYZ".index(socket.name)])
        elif t == "ShaderNodeMath":
            a, b, c = inp(0), inp(1), inp(2)
            out = {"MULTIPLY": a * b, "SUBTRACT": a - b, "ADD": a + b, "MULTIPLY_ADD": a * b + c}[node.operation]
        elif t == "ShaderNodeVectorMath":
            out = inp(0) * inp("Scale") if node.operation == "SCALE" else inp(0) + inp(1)
        elif t == "ShaderNodeMix":
            f, a, b = inp("Factor_Float"), inp("A_Color"), inp("B_Color")
            blended = a * b if node.blend_type == "MULTIPLY" else b
            out = a * (1 - f) + blended * f
        else:
            raise AssertionError(f"unexpected node {t}")
        cache[key] = out
        return out

    def test_matches_engine_shading(self, bpy_empty):
        group = material.ensure_sh_node_group()
        rng = np.random.default_rng(3)
        gamma = rng.normal(size=27) * 0.3
        albedo = np.array([0.7, 0.5, 0.4])
        inputs = {"Albedo": albedo, "Lighting": 1.0}
        for k, rgb in enumerate(material.sh_group_inputs(gamma)):
            inputs[f"SH {k}"] = rgb
        out_node = next(n for n in group.nodes if n.bl_idname == "NodeGroupOutput")
        for _ in range(5):
            n_engine = rng.normal(size=3)
            n_engine /= np.linalg.norm(n_engine)
            n_blender = conversion.points_to_blender(n_engine).astype(float)
            expect = sh_irradiance(torch.tensor(n_engine)[None, None], torch.tensor(gamma)[None])[0, 0].numpy()
            irr = self._eval(out_node.inputs["Irradiance"].links[0].from_socket, inputs, n_blender, {})
            np.testing.assert_allclose(irr, expect, atol=1e-6)
            col = self._eval(out_node.inputs["Color"].links[0].from_socket, inputs, n_blender, {})
            np.testing.assert_allclose(col, albedo * expect, atol=1e-6)
        inputs["Lighting"] = 0.0
        col = self._eval(out_node.inputs["Color"].links[0].from_socket, inputs, n_blender, {})
        np.testing.assert_allclose(col, albedo)

    def test_user_group_with_same_name_is_left_alone(self, bpy_empty):
        bpy = bpy_empty
        user = bpy.data.node_groups.new(material.SH_GROUP_NAME, "ShaderNodeTree")
        ours = material.ensure_sh_node_group()
        assert ours != user and len(user.nodes) == 0
        assert material.ensure_sh_node_group() == ours


class TestPhotoCamera:
    def test_projection_matches_engine(self, bpy_empty, sphere_face):
        from bpy_extras.object_utils import world_to_camera_view

        bpy = bpy_empty
        result = sphere_face
        scene = bpy.context.scene
        obj = _build(bpy, result, add_camera=True, set_scene_camera=True)
        cam = bpy.data.objects[obj["msma_camera"]]
        bpy.context.view_layer.update()  # matrix_world follows location/rotation after an update
        assert scene.camera == cam
        h, w = result.camera.image_size
        assert (scene.render.resolution_x, scene.render.resolution_y) == (w, h)
        f, (cx, cy), d = result.camera.focal, result.camera.center, result.camera.distance
        from mathutils import Vector

        for p in result.vertices_world[::37]:
            z = d - p[2]
            u, v = cx + f * p[0] / z, cy - f * p[1] / z
            ndc = world_to_camera_view(scene, cam, Vector(conversion.points_to_blender(p).tolist()))
            assert ndc.x * w == pytest.approx(u, abs=1e-2)
            assert (1 - ndc.y) * h == pytest.approx(v, abs=1e-2)
            assert ndc.z == pytest.approx(z, abs=1e-5)


def test_pose_matrix_round_trip():
    ang = [0.3, -0.4, 0.2]
    from msma_engine.geometry import euler_to_rotation

    r = euler_to_rotation(torch.tensor([ang]))[0].numpy().astype(float)
    t = np.array([0.01, 0.02, -0.03])
    mat = conversion.pose_to_blender_matrix(r, t)
    v = np.array([0.05, -0.02, 0.08])
    np.testing.assert_allclose(mat[:3, :3] @ conversion.points_to_blender(v) + mat[:3, 3],
                               conversion.points_to_blender(r @ v + t), atol=1e-6)
    assert np.linalg.det(mat[:3, :3]) == pytest.approx(1.0)
    assert conversion.camera_to_blender(type("C", (), {"focal": 1015.0, "center": (112.0, 112.0),
                                                       "image_size": (224, 224), "distance": 1.0})()
                                        ).rotation_euler == (math.pi / 2, 0.0, 0.0)


@pytest.fixture(scope="module")
def default_head():
    """The shipped default head and a FaceResult of it with the mouth closed (neutral expression)."""
    from blender_fixtures import make_face_result
    from msma_engine.face_model import load_face_model

    model = load_face_model()
    res = make_face_result(model, seed=4, exp_weights=np.zeros(model.layout.n_exp, np.float32))
    return model, res


def _set_key(bpy, obj, name, value):
    obj.data.shape_keys.key_blocks[name].value = value
    bpy.context.view_layer.update()


def _evaluated_local(bpy, obj) -> np.ndarray:
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(len(ev.data.vertices) * 3, np.float32)
    ev.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


class TestDefaultHead:
    def test_quads_subdivision_and_keys_through_it(self, bpy_empty, default_head):
        bpy = bpy_empty
        model, res = default_head
        obj = _build(bpy, res)
        sizes = np.array([len(p.vertices) for p in obj.data.polygons])
        assert (sizes == 4).mean() >= 0.5
        mod = obj.modifiers[face_builder.SUBSURF_NAME]
        assert mod.type == "SUBSURF" and mod.levels == 1 and mod.render_levels == 2
        rest = _evaluated_local(bpy, obj)
        assert len(rest) > 3 * len(obj.data.vertices)  # subdivided
        _set_key(bpy, obj, "jawOpen", 1.0)
        opened = _evaluated_local(bpy, obj)
        # Shape keys act under the modifier: the subdivided chin drops by centimetres.
        assert (rest[:, 2] - opened[:, 2]).max() > 0.01
        flat = _build(bpy, res, subdivision=0)
        assert not flat.modifiers and np.all(np.array([len(p.vertices) for p in flat.data.polygons]) == 4)

    def test_mouth_parts_follow_the_jaw_keys(self, bpy_empty, default_head):
        bpy = bpy_empty
        model, res = default_head
        obj = _build(bpy, res, subdivision=0)
        mouth = res.mouth
        n_head = model.n_vertices
        assert len(obj.data.vertices) == n_head + len(mouth.vertices_neutral)
        assert [g.name for g in obj.vertex_groups] == ["upper_teeth", "lower_teeth", "tongue"]
        mats = [m.name.split()[-1] for m in obj.data.materials]
        assert mats[1:] == ["Teeth", "Tongue"]
        index = np.empty(len(obj.data.polygons), np.int32)
        obj.data.polygons.foreach_get("material_index", index)
        assert set(index[len(model.polygons):]) == {1, 2} and set(index[:len(model.polygons)]) == {0}
        # The head vertices come first, unchanged; the interior moves with jawOpen exactly as the engine says.
        w = np.zeros(len(res.topology.expression_names))
        w[res.topology.expression_names.index("jawOpen")] = 1.0
        _set_key(bpy, obj, "jawOpen", 1.0)
        got = _evaluated_local(bpy, obj)
        np.testing.assert_allclose(got[n_head:], conversion.points_to_blender(mouth.posed(w)), atol=1e-6)
        lower = mouth.part_vertices("lower_teeth") + n_head
        upper = mouth.part_vertices("upper_teeth") + n_head
        _set_key(bpy, obj, "jawOpen", 0.0)
        rest = _evaluated_local(bpy, obj)
        assert (rest[lower, 2] - got[lower, 2]).mean() > 0.01  # Blender z is up: the lower teeth drop
        np.testing.assert_allclose(rest[upper], got[upper], atol=1e-7)

    def test_teeth_hidden_at_rest_and_seen_with_jaw_open(self, bpy_empty, default_head):
        """Ray casts from the photo-like front camera through Blender's own BVH of the evaluated mesh."""
        from mathutils import Vector
        from mathutils.bvhtree import BVHTree

        bpy = bpy_empty
        model, res = default_head
        obj = _build(bpy, res, subdivision=0)
        n_head_polys = len(model.polygons)
        mouth_verts = np.arange(model.n_vertices, len(obj.data.vertices))
        camera = Vector((0.0, -1.0, 0.0))  # engine (0, 0, 1) in Blender axes, model frame

        def seen_fraction() -> float:
            dg = bpy.context.evaluated_depsgraph_get()
            ev = obj.evaluated_get(dg)
            tree = BVHTree.FromObject(ev, dg)
            seen = 0
            for i in mouth_verts:
                target = ev.data.vertices[int(i)].co
                direction = (target - camera).normalized()
                _, _, poly, _ = tree.ray_cast(camera, direction)
                seen += poly is not None and poly >= n_head_polys
            return seen / len(mouth_verts)

        assert seen_fraction() < 0.05
        _set_key(bpy, obj, "jawOpen", 1.0)
        assert seen_fraction() > 0.15

    def test_eyeballs_turn_with_the_look_keys(self, bpy_empty, default_head):
        bpy = bpy_empty
        model, res = default_head
        obj = _build(bpy, res)
        eyes = {o["msma_eye"]: o for o in obj.children}

        def forward(eye_obj) -> np.ndarray:
            co = _evaluated_local(bpy, eye_obj)
            centre = conversion.points_to_blender(np.array(eye_obj["msma_eye_centre"])[None])[0]
            return co[0] - centre  # vertex 0: the front pole of the eyeball

        rest = {s: forward(e) for s, e in eyes.items()}
        for key, side, sign in (("eyeLookOutLeft", "L", 1.0), ("eyeLookOutRight", "R", -1.0)):
            _set_key(bpy, obj, key, 1.0)
            turned = {s: forward(e) for s, e in eyes.items()}
            _set_key(bpy, obj, key, 0.0)
            a, b = rest[side], turned[side]
            angle = np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))
            assert angle >= 5.0, (key, angle)
            assert np.sign(b[0] - a[0]) == sign  # outwards: +x for the subject's left eye
            other = "R" if side == "L" else "L"
            np.testing.assert_allclose(turned[other], rest[other], atol=1e-7)
        # Drivers, not copies: the eye's key follows the face's slider.
        _set_key(bpy, obj, "eyeLookUpLeft", 0.5)
        assert eyes["L"].data.shape_keys.key_blocks["eyeLookUpLeft"].value == pytest.approx(0.5)

    @pytest.mark.parametrize("fmt", ["fbx", "glb"])
    def test_exports_keep_quads_parts_and_keys(self, bpy_empty, default_head, tmp_path, fmt):
        """The headless command's writer: FBX keeps quads; both keep the mouth, the eyes and their keys."""
        from types import SimpleNamespace

        from msma_blender.commands import _write

        bpy = bpy_empty
        model, res = default_head
        args = SimpleNamespace(texture="pack", camera=False, preview=None, lighting=1.0, animation=False,
                               smoothing=1.0, identity="first", preview_over_photo=False, force=False)
        path = tmp_path / f"head.{fmt}"
        _write(path, fmt, [res], args)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        (bpy.ops.import_scene.fbx if fmt == "fbx" else bpy.ops.import_scene.gltf)(filepath=str(path))
        meshes = {o.name: o for o in bpy.data.objects if o.type == "MESH"}
        face = next(o for o in meshes.values() if o.data.shape_keys and "jawOpen" in o.data.shape_keys.key_blocks
                    and len(o.data.vertices) > 1000)
        n_mouth = len(res.mouth.vertices_neutral)
        assert len(face.data.vertices) >= model.n_vertices + n_mouth  # glTF splits UV seams
        if fmt == "fbx":
            sizes = np.array([len(p.vertices) for p in face.data.polygons])
            assert (sizes == 4).mean() >= 0.5
            assert len(face.data.vertices) == model.n_vertices + n_mouth
        eyes = [o for o in meshes.values() if o.parent == face]
        assert len(eyes) == 2
        for eye in eyes:
            assert {k.name for k in eye.data.shape_keys.key_blocks} & {"eyeLookOutLeft", "eyeLookOutRight"}

    def test_mouth_follows_another_identity(self, bpy_empty, default_head):
        """Animations build on a mean identity: the teeth are re-fitted to it (its identity is the
        mean of the coefficients, then fitted behind that head's skin)."""
        from blender_fixtures import make_face_result
        from msma_engine.mouth import mouth_interior_for

        bpy = bpy_empty
        model, res = default_head
        other = make_face_result(model, seed=9, exp_weights=np.zeros(model.layout.n_exp, np.float32))
        mean = 0.5 * (res.vertices_neutral + other.vertices_neutral)
        obj = face_builder.build_face_object(res, bpy.context.scene.collection,
                                             face_builder.BuildOptions(subdivision=0), vertices_neutral=mean)
        basis = np.empty(len(obj.data.vertices) * 3, np.float32)
        obj.data.shape_keys.key_blocks[0].data.foreach_get("co", basis)
        ids = model.layout.slices()["id"]
        want = mouth_interior_for(model, 0.5 * (res.coeffs[ids] + other.coeffs[ids])).vertices_neutral
        got = basis.reshape(-1, 3)[model.n_vertices:]
        np.testing.assert_allclose(got, conversion.points_to_blender(want), atol=5e-5)
        assert np.abs(want - res.mouth.vertices_neutral).max() > 5e-4  # the check can tell them apart
