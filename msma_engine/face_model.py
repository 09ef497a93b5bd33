"""The 3D morphable face model as a torch module.

Every constant of the model is a registered buffer, so ``model.to(device)`` just works;
:meth:`FaceModel.forward` maps a batch of coefficient vectors to a :class:`FaceOutput`.
The coefficient layout (``id | exp | tex | angles | gamma | trans``) is fixed by the
model's basis sizes, see :class:`CoeffLayout` and docs/CONVENTIONS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from msma_engine.camera import PerspectiveCamera
from msma_engine.errors import ShapeError
from msma_engine.geometry import euler_to_rotation, vertex_normals
from msma_engine.model_file import FaceModelData, load_face_model_data
from msma_engine.shading import sh_irradiance

if TYPE_CHECKING:
    from msma_engine.topology import FaceTopology

__all__ = ["CoeffLayout", "Coeffs", "FaceModel", "FaceOutput", "DEFAULT_MODEL_PATH", "load_face_model"]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "default_head.npz"


@dataclass(frozen=True)
class CoeffLayout:
    """Sizes and slices of the flat coefficient vector ``id | exp | tex | angles | gamma | trans``.

    The one description of the layout: the face model, the fitter, the losses and the
    networks' heads (:mod:`msma_engine.network`) all read it from here. BFM09: 80/64/80,
    257 in all.

    Raises:
        ShapeError: a size that is not a non-negative int.
    """

    n_id: int
    n_exp: int
    n_tex: int
    n_angles: int = 3
    n_gamma: int = 27
    n_trans: int = 3

    def __post_init__(self) -> None:
        for name, value in zip(self.names, self.sizes):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ShapeError(f"CoeffLayout size of {name!r} must be a non-negative int, got {value!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return ("id", "exp", "tex", "angles", "gamma", "trans")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_id, self.n_exp, self.n_tex, self.n_angles, self.n_gamma, self.n_trans)

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            out[name] = slice(start, start + size)
            start += size
        return out

    def split(self, coeffs: torch.Tensor) -> "Coeffs":
        """Split ``(B, total)`` into named parts."""
        if coeffs.ndim != 2 or coeffs.shape[1] != self.total:
            raise ShapeError(f"coefficients must be (B, {self.total}) for this face model, got {tuple(coeffs.shape)}")
        return Coeffs(**{name: coeffs[:, s] for name, s in self.slices().items()})

    def zeros(self, batch: int = 1, **kwargs) -> torch.Tensor:
        """All-zero coefficients: the mean face, frontal, evenly lit, at the origin."""
        return torch.zeros(batch, self.total, **kwargs)


@dataclass
class Coeffs:
    """Named coefficient parts, each ``(B, n)``: angles in radians, trans in metres."""

    id: torch.Tensor
    exp: torch.Tensor
    tex: torch.Tensor
    angles: torch.Tensor
    gamma: torch.Tensor
    trans: torch.Tensor

    def join(self) -> torch.Tensor:
        """Concatenate back to ``(B, total)``."""
        return torch.cat([self.id, self.exp, self.tex, self.angles, self.gamma, self.trans], dim=1)


@dataclass
class FaceOutput:
    """Result of :meth:`FaceModel.forward`; every tensor has a leading batch dimension B.

    Attributes:
        vertices_model: ``(B, V, 3)`` identity+expression shape in the model frame, metres.
        vertices: ``(B, V, 3)`` posed vertices in the world frame (camera at z = d), metres.
        normals: ``(B, V, 3)`` unit vertex normals of the posed mesh.
        rotation: ``(B, 3, 3)`` head rotation.
        landmarks_3d: ``(B, 68, 3)`` posed landmark vertices, metres.
        landmarks_2d: ``(B, 68, 2)`` landmark pixels on the camera image.
        albedo: ``(B, V, 3)`` (vertex albedo) or ``(B, H, W, 3)`` (UV albedo), in [0, 1].
        vertex_albedo: ``(B, V, 3)`` albedo at the vertices (sampled from the UV map if needed).
        vertex_colors: ``(B, V, 3)`` shaded colours ``vertex_albedo × SH irradiance``.
    """

    vertices_model: torch.Tensor
    vertices: torch.Tensor
    normals: torch.Tensor
    rotation: torch.Tensor
    landmarks_3d: torch.Tensor
    landmarks_2d: torch.Tensor
    albedo: torch.Tensor
    vertex_albedo: torch.Tensor
    vertex_colors: torch.Tensor


class FaceModel(nn.Module):
    """A linear 3D morphable model with SH lighting and the Deep3DFaceRecon camera.

    Args:
        data: the model arrays (see :mod:`msma_engine.model_file`).
        camera: the camera used for ``landmarks_2d``.
    """

    def __init__(self, data: FaceModelData, camera: PerspectiveCamera | None = None):
        super().__init__()
        data.validate()
        self.name = data.name
        self.expression_names = list(data.expression_names)
        self.albedo_space = data.albedo_space
        self.metadata = dict(data.metadata)
        self.camera = camera or PerspectiveCamera()
        self.layout = CoeffLayout(n_id=data.n_id, n_exp=data.n_exp, n_tex=data.n_tex)
        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        i64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64))  # noqa: E731
        self.register_buffer("mean_shape", f32(data.mean_shape))
        self.register_buffer("id_basis", f32(data.id_basis))
        self.register_buffer("exp_basis", f32(data.exp_basis))
        self.register_buffer("expression_range", f32(data.expression_range))
        self.register_buffer("albedo_mean", f32(data.albedo_mean))
        self.register_buffer("albedo_basis", f32(data.albedo_basis))
        self.register_buffer("triangles", i64(data.triangles))
        self.register_buffer("uv_coords", f32(data.uv_coords))
        self.register_buffer("uv_triangles", i64(data.uv_triangles))
        self.register_buffer("landmark_indices", i64(data.landmark_indices))
        self.register_buffer("skin_mask", f32(data.skin_mask))
        self.register_buffer("face_region", torch.as_tensor(np.asarray(data.face_region, dtype=bool)))
        self.register_buffer("vertex_uv", _vertex_uv(data), persistent=False)
        # Optional parts (NumPy, not used by the differentiable model): the source polygons
        # (quads) for exporters, and the mouth interior (:mod:`msma_engine.mouth`).
        self.polygons = None if data.polygons is None else np.asarray(data.polygons, np.int32)
        self.uv_polygons = None if data.uv_polygons is None else np.asarray(data.uv_polygons, np.int32)
        self.interior = None if not data.has_interior else {
            "mean_shape": np.asarray(data.interior_mean_shape, np.float32),
            "id_basis": np.asarray(data.interior_id_basis, np.float32),
            "exp_basis": np.asarray(data.interior_exp_basis, np.float32),
            "polygons": np.asarray(data.interior_polygons, np.int32),
            "part": np.asarray(data.interior_part, np.int32),
            "part_names": list(data.interior_part_names),
        }
        # Optional dense (478-point Face Mesh) correspondence; None for models without one.
        dense = data.dense_landmark_vertices is not None
        self.register_buffer("dense_landmark_vertices", i64(data.dense_landmark_vertices) if dense else None)
        self.register_buffer("dense_landmark_weights", f32(data.dense_landmark_weights) if dense else None)

    @property
    def n_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @cached_property
    def topology(self) -> FaceTopology:
        """The shared, read-only :class:`~msma_engine.topology.FaceTopology` of this model's results.

        Built on first use and kept (the model's buffers are not expected to change afterwards).
        """
        from msma_engine.topology import FaceTopology

        return FaceTopology.from_model(self)

    # --- pure model evaluation -------------------------------------------------------
    def shape(self, id_coeffs: torch.Tensor, exp_coeffs: torch.Tensor) -> torch.Tensor:
        """``mean + A_id α + A_exp β`` → ``(B, V, 3)`` metres, model frame."""
        self._check("id", id_coeffs, self.layout.n_id)
        self._check("exp", exp_coeffs, self.layout.n_exp)
        return (self.mean_shape
                + torch.einsum("bk,kvc->bvc", id_coeffs, self.id_basis)
                + torch.einsum("bk,kvc->bvc", exp_coeffs, self.exp_basis))

    def albedo(self, tex_coeffs: torch.Tensor) -> torch.Tensor:
        """``mean + A_tex γ`` in the model's albedo space, clamped to [0, 1].

        Returns:
            ``(B, V, 3)`` for vertex albedo, ``(B, H, W, 3)`` for UV albedo.
        """
        self._check("tex", tex_coeffs, self.layout.n_tex)
        alb = self.albedo_mean + torch.einsum("bk,k...->b...", tex_coeffs, self.albedo_basis)
        return alb.clamp(0.0, 1.0)

    def vertex_albedo(self, albedo: torch.Tensor) -> torch.Tensor:
        """Albedo at the vertices ``(B, V, 3)`` from the output of :meth:`albedo`."""
        if self.albedo_space == "vertex":
            return albedo
        # Bilinear lookup of each vertex's UV (row 0 at the top, UV origin bottom-left).
        grid = torch.stack([self.vertex_uv[:, 0] * 2 - 1, 1 - self.vertex_uv[:, 1] * 2], dim=-1)
        grid = grid.to(albedo.dtype).expand(albedo.shape[0], 1, -1, 2)
        sampled = nn.functional.grid_sample(albedo.permute(0, 3, 1, 2), grid, mode="bilinear",
                                            padding_mode="border", align_corners=False)
        return sampled[:, :, 0].permute(0, 2, 1)

    def forward(self, coeffs: torch.Tensor) -> FaceOutput:
        """Evaluate the model.

        Args:
            coeffs: ``(B, layout.total)`` in the order ``id | exp | tex | angles | gamma | trans``.
        """
        c = self.layout.split(coeffs)
        verts_model = self.shape(c.id, c.exp)
        rotation = euler_to_rotation(c.angles)
        verts = verts_model @ rotation.transpose(1, 2) + c.trans[:, None, :]
        normals = vertex_normals(verts, self.triangles)
        albedo = self.albedo(c.tex)
        v_alb = self.vertex_albedo(albedo)
        colors = v_alb * sh_irradiance(normals, c.gamma)
        lm3d = verts[:, self.landmark_indices]
        return FaceOutput(
            vertices_model=verts_model, vertices=verts, normals=normals, rotation=rotation,
            landmarks_3d=lm3d, landmarks_2d=self.camera.project(lm3d),
            albedo=albedo, vertex_albedo=v_alb, vertex_colors=colors,
        )

    def _check(self, name: str, t: torch.Tensor, n: int) -> None:
        if t.ndim != 2 or t.shape[1] != n:
            raise ShapeError(f"{name} coefficients must be (B, {n}) for model {self.name!r}, got {tuple(t.shape)}")


def _vertex_uv(data: FaceModelData) -> torch.Tensor:
    """One UV per vertex ``(V, 2)`` (the first UV corner seen; seams pick one side)."""
    uv = np.zeros((data.n_vertices, 2), dtype=np.float32)
    # Assign in reverse so the first occurrence wins.
    uv[data.triangles[::-1].reshape(-1)] = data.uv_coords[data.uv_triangles[::-1].reshape(-1)]
    return torch.as_tensor(uv)


def load_face_model(path: str | Path | None = None, camera: PerspectiveCamera | None = None) -> FaceModel:
    """Load a container ``.npz`` (the shipped default head when ``path`` is None)."""
    return FaceModel(load_face_model_data(path or DEFAULT_MODEL_PATH), camera=camera)
