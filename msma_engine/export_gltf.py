"""Write a reconstructed face as a binary glTF 2.0 file (``.glb``), pure Python.

The file holds the face mesh: positions of the neutral identity shape (model frame, metres —
glTF's +y up, +z forward matches the model frame, docs/CONVENTIONS.md), vertex normals,
``TEXCOORD_0``, the baked albedo texture embedded as PNG, and one morph target per
expression basis vector (``POSITION`` deltas per unit coefficient). The targets are named
in ``mesh.extras.targetNames`` (what Blender's glTF importer reads for shape-key names) and
the mesh's default ``weights`` are the fitted expression coefficients, so the file opens
with the fitted expression. Child nodes of the face node (importers parent them to the head):

* the eyeballs (:mod:`msma_engine.eyes`), their own eye material and texture, with the
  ``eyeLook*`` turns of their side as morph targets of the same names;
* the mouth interior (:mod:`msma_engine.mouth`), one mesh per part (``upper_teeth``,
  ``lower_teeth``, ``tongue``) with a plain colour, morph targets for the expressions that
  move it (``jawOpen``, ``jawLeft`` ... ``tongueOut``) under the face's names.

A player drives the children's targets with the face's weight of the same name. Morph
targets that move few vertices are written as sparse accessors (glTF 2.0 core).
glTF meshes are triangles; the quads of the face model survive in Blender and FBX.

glTF stores one UV per vertex, so vertices are split where the UV layout has seams
(one output vertex per distinct ``(vertex, uv)`` pair). glTF's UV origin is the top-left
of the texture, ours bottom-left: ``v_gltf = 1 − v``. This is the only place that flip
happens.

Example:
    >>> write_glb(result, "face.glb")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from msma_engine.errors import ShapeError
from msma_engine.eyes import Eyeballs, eye_look_targets
from msma_engine.fileio import atomic_write
from msma_engine.model_file import triangulate_polygons
from msma_engine.mouth import PART_COLORS, MouthInterior
from msma_engine.result import FaceResult

__all__ = ["GLBMesh", "mesh_from_result", "default_node_name", "eye_meshes", "mouth_meshes", "build_glb", "glb_bytes",
           "write_glb", "split_uv_seams", "read_glb"]

_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A  # "JSON"
_CHUNK_BIN = 0x004E4942  # "BIN\0"
_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass
class GLBMesh:
    """A mesh ready to be written, already split at UV seams.

    Attributes:
        positions: ``(N, 3)`` float32 metres.
        normals: ``(N, 3)`` float32 unit normals.
        uvs: ``(N, 2)`` float32, origin bottom-left (flipped on write).
        indices: ``(F, 3)`` uint32, counter-clockwise seen from outside.
        targets: ``(K, N, 3)`` float32 position deltas per morph target.
        target_names: ``K`` names.
        target_weights: ``(K,)`` default weights.
        texture: ``(H, W, 3)`` uint8 sRGB, row 0 at the top, or None.
        name: mesh/node name.
        extras: JSON-serialisable data stored on the node.
        color: ``(3,)`` linear RGB base colour when there is no texture (default white).
    """

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    indices: np.ndarray
    targets: np.ndarray
    target_names: list[str]
    target_weights: np.ndarray
    texture: np.ndarray | None
    name: str = "face"
    extras: dict | None = None
    color: tuple[float, float, float] | None = None


def split_uv_seams(triangles: np.ndarray, uv_triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One output vertex per distinct ``(vertex, uv)`` corner pair.

    Args:
        triangles: ``(F, 3)`` vertex indices.
        uv_triangles: ``(F, 3)`` UV indices, same triangle order.

    Returns:
        ``vertex_of`` ``(N,)`` source vertex of each output vertex, ``uv_of`` ``(N,)`` its UV
        index, and ``faces`` ``(F, 3)`` the triangles re-indexed into the output vertices.
    """
    tris = np.asarray(triangles, dtype=np.int64)
    uvt = np.asarray(uv_triangles, dtype=np.int64)
    if tris.ndim != 2 or tris.shape[1] != 3 or uvt.shape != tris.shape:
        raise ShapeError(f"triangles and uv_triangles must both be (F, 3), got {tris.shape} and {uvt.shape}")
    pairs = np.stack([tris.reshape(-1), uvt.reshape(-1)], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return unique[:, 0], unique[:, 1], inverse.reshape(-1, 3)


def _vertex_normals_np(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    v0, v1, v2 = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    fn = np.cross(v1 - v0, v2 - v0)
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    # Unreferenced vertices get +z so the file stays valid (unit normals are required).
    return np.where(norm > 1e-20, n / np.maximum(norm, 1e-20), np.array([0.0, 0.0, 1.0]))


def default_node_name(result: FaceResult) -> str:
    """The photo's file stem (``"<stem>_face<N>"`` for a face other than the first), else ``"face"``."""
    stem = Path(result.image_path).stem if result.image_path else "face"
    return stem if not result.face_index else f"{stem}_face{result.face_index}"


def mesh_from_result(result: FaceResult, name: str | None = None) -> GLBMesh:
    """Build a :class:`GLBMesh` from a :class:`FaceResult` (its topology's expression basis
    becomes the morph targets).

    Args:
        result: the reconstruction.
        name: mesh/node name; defaults to :func:`default_node_name` (after the photo).
    """
    topo = result.topology
    vertex_of, uv_of, faces = split_uv_seams(topo.triangles, topo.uv_triangles)
    neutral = np.asarray(result.vertices_neutral, dtype=np.float64)
    normals = _vertex_normals_np(neutral, np.asarray(topo.triangles, dtype=np.int64))
    return GLBMesh(
        positions=neutral[vertex_of].astype(np.float32),
        normals=normals[vertex_of].astype(np.float32),
        uvs=np.asarray(topo.uv_coords, dtype=np.float32)[uv_of],
        indices=faces.astype(np.uint32),
        targets=topo.expression_basis[:, vertex_of],
        target_names=list(topo.expression_names),
        target_weights=np.asarray(result.expression_weights, dtype=np.float32),
        texture=np.asarray(result.albedo_texture),
        name=name or default_node_name(result),
        extras={
            "model_name": topo.name,
            "expression_range": np.asarray(topo.expression_range, dtype=float).tolist(),
            "sh_coeffs": np.asarray(result.sh_coeffs, dtype=float).tolist(),
            "units": "metre",
        },
    )


def eye_meshes(eyes: Eyeballs | None, face_name: str = "face", expression_names: Sequence[str] = (),
               expression_weights: np.ndarray | None = None) -> list[GLBMesh]:
    """The eyeballs as two meshes sharing one eye texture, ``eyeLook*`` turns as morph targets.

    Args:
        eyes: :class:`msma_engine.eyes.Eyeballs` (model frame, metres) or None.
        face_name: name of the face mesh; the eyes are ``"<face_name>_eye_L"`` / ``"_eye_R"``.
        expression_names: the face's expression names (the eyes' targets take the
            ``eyeLook*`` ones of their side); empty for rigid eyes.
        expression_weights: ``(Kexp,)`` the face's weights (the targets' default weights).

    Returns:
        ``[left, right]``, or ``[]`` when ``eyes`` is None.
    """
    if eyes is None:
        return []
    vertex_of, uv_of, faces = split_uv_seams(eyes.triangles, eyes.uv_triangles)
    names = list(expression_names)
    weights = np.zeros(len(names)) if expression_weights is None else np.asarray(expression_weights, np.float64)
    out = []
    for eye in eyes:
        # Sphere normals point away from the centre: exact, no need to average faces.
        normals = (eye.vertices - eye.centre) / eye.radius
        look_names, look = eye_look_targets(eye, names)
        out.append(GLBMesh(
            positions=np.asarray(eye.vertices, dtype=np.float32)[vertex_of],
            normals=normals.astype(np.float32)[vertex_of],
            uvs=np.asarray(eyes.uv_coords, dtype=np.float32)[uv_of],
            indices=faces.astype(np.uint32),
            targets=look[:, vertex_of].astype(np.float32),
            target_names=look_names,
            target_weights=np.array([weights[names.index(n)] for n in look_names], np.float32),
            texture=eyes.texture,
            name=f"{face_name}_eye_{eye.side}",
            extras={"eye": eye.side, "centre": [float(c) for c in eye.centre], "radius": float(eye.radius),
                    "units": "metre"},
        ))
    return out


def mouth_meshes(mouth: MouthInterior | None, face_name: str = "face",
                 expression_weights: np.ndarray | None = None) -> list[GLBMesh]:
    """The mouth interior as one plain-coloured mesh per part, with the expressions moving it.

    Args:
        mouth: :class:`msma_engine.mouth.MouthInterior` (model frame, metres) or None.
        face_name: the parts are ``"<face_name>_<part>"``.
        expression_weights: ``(Kexp,)`` the face's weights (the targets' default weights).

    Returns:
        One mesh per part, or ``[]`` when ``mouth`` is None.
    """
    if mouth is None:
        return []
    n_exp = len(mouth.expression_names)
    weights = np.zeros(n_exp) if expression_weights is None else np.asarray(expression_weights, np.float64)
    out = []
    for p, part in enumerate(mouth.part_names):
        polys = mouth.polygons[mouth.part == p]
        used = np.unique(polys[polys >= 0])
        local = np.full(len(mouth.vertices_neutral), -1, np.int64)
        local[used] = np.arange(len(used))
        tris = local[triangulate_polygons(polys)[0]]
        verts = np.asarray(mouth.vertices_neutral, np.float64)[used]
        keys = [k for k in range(n_exp) if np.abs(mouth.exp_basis[k][used]).max() > 1e-6]
        out.append(GLBMesh(
            positions=verts.astype(np.float32),
            normals=_vertex_normals_np(verts, tris).astype(np.float32),
            uvs=np.zeros((len(used), 2), np.float32),
            indices=tris.astype(np.uint32),
            targets=np.asarray(mouth.exp_basis, np.float32)[keys][:, used].reshape(len(keys), len(used), 3),
            target_names=[mouth.expression_names[k] for k in keys],
            target_weights=weights[keys].astype(np.float32),
            texture=None,
            name=f"{face_name}_{part}",
            extras={"mouth_part": part, "units": "metre"},
            color=PART_COLORS.get(part, (0.8, 0.8, 0.8)),
        ))
    return out


class _BinWriter:
    """Accumulates buffer views and accessors in one binary buffer (4-byte aligned)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, payload: bytes, target: int | None = None) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        entry = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            entry["target"] = target
        self.data.extend(payload)
        self.views.append(entry)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None, with_bounds: bool) -> int:
        comp = _UINT32 if array.dtype == np.uint32 else _FLOAT
        arr = np.ascontiguousarray(array, dtype=np.uint32 if comp == _UINT32 else np.float32)
        view = self.view(arr.astype(arr.dtype.newbyteorder("<")).tobytes(), target)
        flat = arr.reshape(arr.shape[0], -1)
        acc = {"bufferView": view, "componentType": comp, "count": int(arr.shape[0]), "type": kind}
        if with_bounds:
            cast = int if comp == _UINT32 else float
            acc["min"] = [cast(x) for x in flat.min(axis=0)]
            acc["max"] = [cast(x) for x in flat.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def morph_accessor(self, deltas: np.ndarray) -> int:
        """A ``(N, 3)`` morph-target accessor; sparse when under half the vertices move."""
        d = np.asarray(deltas, dtype=np.float32)
        moving = np.flatnonzero(np.any(d != 0, axis=1)).astype(np.uint32)
        if len(moving) >= len(d) // 2:
            return self.accessor(d, "VEC3", _ARRAY_BUFFER, True)
        bounds = d if len(moving) else np.zeros((1, 3), np.float32)
        acc = {"componentType": _FLOAT, "count": int(len(d)), "type": "VEC3",
               "min": [float(x) for x in bounds.min(axis=0)], "max": [float(x) for x in bounds.max(axis=0)]}
        if len(moving):
            acc["sparse"] = {
                "count": int(len(moving)),
                "indices": {"bufferView": self.view(moving.astype("<u4").tobytes()), "componentType": _UINT32},
                "values": {"bufferView": self.view(np.ascontiguousarray(d[moving]).astype("<f4").tobytes())},
            }
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _check_mesh(mesh: GLBMesh) -> None:
    n = mesh.positions.shape[0]
    if mesh.positions.shape != (n, 3) or mesh.normals.shape != (n, 3) or mesh.uvs.shape != (n, 2):
        raise ShapeError(f"mesh {mesh.name!r}: positions/normals/uvs must be (N, 3)/(N, 3)/(N, 2), got "
                         f"{mesh.positions.shape}/{mesh.normals.shape}/{mesh.uvs.shape}")
    k = len(mesh.target_names)
    if mesh.targets.shape != (k, n, 3) or np.shape(mesh.target_weights) != (k,):
        raise ShapeError(f"mesh {mesh.name!r}: targets must be ({k}, {n}, 3) with {k} weights, got "
                         f"{mesh.targets.shape} and {np.shape(mesh.target_weights)}")
    if mesh.texture is not None:
        tex = np.asarray(mesh.texture)
        if tex.ndim != 3 or tex.shape[2] != 3 or tex.dtype != np.uint8:
            raise ShapeError(f"mesh {mesh.name!r}: texture must be (H, W, 3) uint8, got {tex.dtype} {tex.shape}")


def build_glb(mesh: GLBMesh, children: Sequence[GLBMesh] = ()) -> bytes:
    """Serialise a :class:`GLBMesh` to GLB bytes.

    Args:
        mesh: the root mesh (node 0, the only scene root).
        children: more meshes written as child nodes of the root (e.g. the eyeballs), each
            with its own material; children sharing one texture array share one image.
    """
    meshes = [mesh, *children]
    for m in meshes:
        _check_mesh(m)
    w = _BinWriter()
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "msma-blender msma_engine.export_gltf"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [],
        "meshes": [],
        "materials": [],
    }
    images: dict[int, int] = {}  # id(texture array) -> texture index
    for i, m in enumerate(meshes):
        uv_gltf = np.stack([m.uvs[:, 0], 1.0 - m.uvs[:, 1]], axis=1)
        attributes = {
            "POSITION": w.accessor(m.positions, "VEC3", _ARRAY_BUFFER, True),
            "NORMAL": w.accessor(m.normals, "VEC3", _ARRAY_BUFFER, False),
            "TEXCOORD_0": w.accessor(uv_gltf, "VEC2", _ARRAY_BUFFER, False),
        }
        indices = w.accessor(np.asarray(m.indices, dtype=np.uint32).reshape(-1), "SCALAR",
                             _ELEMENT_ARRAY_BUFFER, True)
        primitive = {"attributes": attributes, "indices": indices, "mode": 4, "material": i}
        gmesh: dict = {"name": m.name, "primitives": [primitive]}
        if m.target_names:
            primitive["targets"] = [{"POSITION": w.morph_accessor(t)} for t in m.targets]
            gmesh["weights"] = [float(x) for x in m.target_weights]
            gmesh["extras"] = {"targetNames": list(m.target_names)}
        gltf["meshes"].append(gmesh)
        gltf["nodes"].append({"mesh": i, "name": m.name, **({"extras": m.extras} if m.extras else {})})
        material = {"name": f"{m.name}_albedo", "doubleSided": False,
                    "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 0.7}}
        if m.color is not None:
            material["pbrMetallicRoughness"]["baseColorFactor"] = [float(c) for c in m.color] + [1.0]
        if m.texture is not None:
            key = id(m.texture)
            if key not in images:
                png = io.BytesIO()
                Image.fromarray(np.asarray(m.texture)).save(png, format="PNG")
                gltf.setdefault("images", []).append(
                    {"bufferView": w.view(png.getvalue()), "mimeType": "image/png", "name": f"{m.name}_albedo"})
                gltf.setdefault("textures", []).append({"source": len(gltf["images"]) - 1, "sampler": 0})
                images[key] = len(gltf["textures"]) - 1
            material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": images[key], "texCoord": 0}
        gltf["materials"].append(material)
    if images:
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}]
    if children:
        gltf["nodes"][0]["children"] = list(range(1, len(meshes)))
    gltf["accessors"] = w.accessors
    gltf["bufferViews"] = w.views
    while len(w.data) % 4:
        w.data.append(0)
    gltf["buffers"] = [{"byteLength": len(w.data)}]

    json_bytes = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    json_bytes += b" " * (-len(json_bytes) % 4)
    total = 12 + 8 + len(json_bytes) + 8 + len(w.data)
    out = bytearray(struct.pack("<III", _GLB_MAGIC, 2, total))
    out += struct.pack("<II", len(json_bytes), _CHUNK_JSON) + json_bytes
    out += struct.pack("<II", len(w.data), _CHUNK_BIN) + bytes(w.data)
    return bytes(out)


def glb_bytes(result: FaceResult, name: str | None = None) -> bytes:
    """The ``.glb`` file content of ``result`` (arguments as :func:`write_glb`)."""
    face = mesh_from_result(result, name)
    children = (eye_meshes(result.eyes, face.name, result.topology.expression_names, result.expression_weights)
                + mouth_meshes(result.mouth, face.name, result.expression_weights))
    return build_glb(face, children)


def write_glb(result: FaceResult, path: str | Path, name: str | None = None, *,
              overwrite: bool = True) -> Path:
    """Write ``result`` as a ``.glb`` file, atomically (a temporary name, then a rename).

    Args:
        result: the reconstruction (neutral shape, UVs, texture, expression weights); its
            eyeballs and mouth interior, if any, become child nodes of the face node; its
            topology's expression basis becomes the morph targets.
        path: output file.
        name: mesh/node name (default: after the photo, :func:`default_node_name`).
        overwrite: replace an existing file; False raises FileExistsError instead.

    Returns:
        The path written.
    """
    return atomic_write(path, glb_bytes(result, name), overwrite=overwrite)


def read_glb(data: bytes) -> tuple[dict, bytes]:
    """Parse GLB bytes into ``(json_dict, bin_chunk)`` (for checks and tests).

    Raises:
        ValueError: not a valid GLB 2.0 container.
    """
    if len(data) < 20:
        raise ValueError(f"GLB too short: {len(data)} bytes")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC or version != 2 or length != len(data):
        raise ValueError(f"not a GLB 2.0 file (magic {magic:#x}, version {version}, length {length}/{len(data)})")
    jlen, jtype = struct.unpack_from("<II", data, 12)
    if jtype != _CHUNK_JSON:
        raise ValueError("first GLB chunk is not JSON")
    doc = json.loads(data[20:20 + jlen].decode("utf-8"))
    off = 20 + jlen
    binary = b""
    if off < len(data):
        blen, btype = struct.unpack_from("<II", data, off)
        if btype != _CHUNK_BIN:
            raise ValueError("second GLB chunk is not BIN")
        binary = data[off + 8:off + 8 + blen]
    return doc, binary
