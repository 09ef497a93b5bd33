"""Write a reconstructed face as a binary glTF 2.0 file (``.glb``), pure Python.

The file holds the face mesh: positions of the neutral identity shape (model frame, metres —
glTF's +y up, +z forward matches the model frame, docs/CONVENTIONS.md), vertex normals,
``TEXCOORD_0``, the baked albedo texture embedded as PNG, and one morph target per
expression basis vector (``POSITION`` deltas per unit coefficient). The targets are named
in ``mesh.extras.targetNames`` (what Blender's glTF importer reads for shape-key names) and
the mesh's default ``weights`` are the fitted expression coefficients, so the file opens
with the fitted expression. The eyeballs (:mod:`msma_engine.eyes`), when the result has them, are two
more meshes (rigid, no morph targets, their own eye material and texture) in child nodes
of the face node, so importers parent them to the head.

glTF stores one UV per vertex, so vertices are split where the UV layout has seams
(one output vertex per distinct ``(vertex, uv)`` pair). glTF's UV origin is the top-left
of the texture, ours bottom-left: ``v_gltf = 1 − v``. This is the only place that flip
happens.

Example:
    >>> write_glb(result, model.exp_basis.numpy(), "face.glb")  # doctest: +SKIP
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
from msma_engine.eyes import Eyeballs
from msma_engine.fileio import atomic_write
from msma_engine.result import FaceResult

__all__ = ["GLBMesh", "mesh_from_result", "default_node_name", "eye_meshes", "build_glb", "glb_bytes", "write_glb",
           "split_uv_seams", "read_glb"]

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


def mesh_from_result(result: FaceResult, expression_basis: np.ndarray, name: str | None = None) -> GLBMesh:
    """Build a :class:`GLBMesh` from a :class:`FaceResult` and the model's expression basis.

    Args:
        result: the reconstruction.
        expression_basis: ``(Kexp, V, 3)`` metres per unit expression coefficient
            (``FaceModel.exp_basis``).
        name: mesh/node name; defaults to :func:`default_node_name` (after the photo).
    """
    basis = np.asarray(expression_basis, dtype=np.float32)
    nv = result.vertices_neutral.shape[0]
    kexp = len(result.expression_names)
    if basis.shape != (kexp, nv, 3):
        raise ShapeError(f"expression_basis must be ({kexp}, {nv}, 3) for this result, got {basis.shape}")
    vertex_of, uv_of, faces = split_uv_seams(result.triangles, result.uv_triangles)
    neutral = np.asarray(result.vertices_neutral, dtype=np.float64)
    normals = _vertex_normals_np(neutral, np.asarray(result.triangles, dtype=np.int64))
    return GLBMesh(
        positions=neutral[vertex_of].astype(np.float32),
        normals=normals[vertex_of].astype(np.float32),
        uvs=np.asarray(result.uv_coords, dtype=np.float32)[uv_of],
        indices=faces.astype(np.uint32),
        targets=basis[:, vertex_of],
        target_names=list(result.expression_names),
        target_weights=np.asarray(result.expression_weights, dtype=np.float32),
        texture=np.asarray(result.albedo_texture),
        name=name or default_node_name(result),
        extras={
            "model_name": result.model_name,
            "expression_range": np.asarray(result.expression_range, dtype=float).tolist(),
            "sh_coeffs": np.asarray(result.sh_coeffs, dtype=float).tolist(),
            "units": "metre",
        },
    )


def eye_meshes(eyes: Eyeballs | None, face_name: str = "face") -> list[GLBMesh]:
    """The eyeballs as two rigid meshes (no morph targets) sharing one eye texture.

    Args:
        eyes: :class:`msma_engine.eyes.Eyeballs` (model frame, metres) or None.
        face_name: name of the face mesh; the eyes are ``"<face_name>_eye_L"`` / ``"_eye_R"``.

    Returns:
        ``[left, right]``, or ``[]`` when ``eyes`` is None.
    """
    if eyes is None:
        return []
    vertex_of, uv_of, faces = split_uv_seams(eyes.triangles, eyes.uv_triangles)
    out = []
    for eye in eyes:
        # Sphere normals point away from the centre: exact, no need to average faces.
        normals = (eye.vertices - eye.centre) / eye.radius
        out.append(GLBMesh(
            positions=np.asarray(eye.vertices, dtype=np.float32)[vertex_of],
            normals=normals.astype(np.float32)[vertex_of],
            uvs=np.asarray(eyes.uv_coords, dtype=np.float32)[uv_of],
            indices=faces.astype(np.uint32),
            targets=np.zeros((0, len(vertex_of), 3), np.float32),
            target_names=[],
            target_weights=np.zeros(0, np.float32),
            texture=eyes.texture,
            name=f"{face_name}_eye_{eye.side}",
            extras={"eye": eye.side, "centre": [float(c) for c in eye.centre], "radius": float(eye.radius),
                    "units": "metre"},
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
            primitive["targets"] = [{"POSITION": w.accessor(t, "VEC3", _ARRAY_BUFFER, True)} for t in m.targets]
            gmesh["weights"] = [float(x) for x in m.target_weights]
            gmesh["extras"] = {"targetNames": list(m.target_names)}
        gltf["meshes"].append(gmesh)
        gltf["nodes"].append({"mesh": i, "name": m.name, **({"extras": m.extras} if m.extras else {})})
        material = {"name": f"{m.name}_albedo", "doubleSided": False,
                    "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 0.7}}
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


def glb_bytes(result: FaceResult, expression_basis: np.ndarray, name: str | None = None) -> bytes:
    """The ``.glb`` file content of ``result`` (arguments as :func:`write_glb`)."""
    face = mesh_from_result(result, expression_basis, name)
    return build_glb(face, eye_meshes(result.eyes, face.name))


def write_glb(result: FaceResult, expression_basis: np.ndarray, path: str | Path, name: str | None = None, *,
              overwrite: bool = True) -> Path:
    """Write ``result`` as a ``.glb`` file, atomically (a temporary name, then a rename).

    Args:
        result: the reconstruction (neutral shape, UVs, texture, expression weights); its
            eyeballs, if any, become child nodes of the face node.
        expression_basis: ``(Kexp, V, 3)`` the face model's expression basis, metres.
        path: output file.
        name: mesh/node name (default: after the photo, :func:`default_node_name`).
        overwrite: replace an existing file; False raises FileExistsError instead.

    Returns:
        The path written.
    """
    return atomic_write(path, glb_bytes(result, expression_basis, name), overwrite=overwrite)


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
