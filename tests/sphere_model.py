"""A tiny fabricated face model (a UV sphere) in the container format, for tests."""

from __future__ import annotations

import numpy as np

from msma_engine.model_file import FaceModelData


def make_sphere_model(n_lat: int = 12, n_lon: int = 16, radius: float = 0.09, n_id: int = 4,
                      n_exp: int = 3, n_tex: int = 2, albedo_space: str = "vertex", seed: int = 0) -> FaceModelData:
    """A UV-sphere 'head' (metres) with random bases, CCW outward triangles, seamless UVs."""
    rng = np.random.default_rng(seed)
    verts, uvs = [], []
    for i in range(n_lat + 1):
        theta = np.pi * i / n_lat
        for j in range(n_lon):
            phi = 2 * np.pi * j / n_lon
            # +z is the face direction, +y up.
            verts.append([radius * np.sin(theta) * np.sin(phi), radius * np.cos(theta),
                          radius * np.sin(theta) * np.cos(phi)])
            uvs.append([j / n_lon, 1 - i / n_lat])
    verts = np.asarray(verts, np.float32)
    tris = []
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = (i + 1) * n_lon + j, (i + 1) * n_lon + (j + 1) % n_lon
            tris += [[a, c, b], [b, c, d]]
    tris = np.asarray(tris, np.int32)
    v = len(verts)
    if albedo_space == "vertex":
        alb_mean = np.full((v, 3), 0.6, np.float32)
    else:
        alb_mean = np.full((16, 16, 3), 0.6, np.float32)
    return FaceModelData(
        name="sphere",
        mean_shape=verts,
        id_basis=(rng.normal(size=(n_id, v, 3)) * 1e-3).astype(np.float32),
        exp_basis=(rng.normal(size=(n_exp, v, 3)) * 1e-3).astype(np.float32),
        expression_names=[f"e{k}" for k in range(n_exp)],
        expression_range=np.tile(np.array([[0.0, 1.0]], np.float32), (n_exp, 1)),
        albedo_space=albedo_space,
        albedo_mean=alb_mean,
        albedo_basis=(rng.normal(size=(n_tex, *alb_mean.shape)) * 0.05).astype(np.float32),
        triangles=tris,
        uv_coords=np.asarray(uvs, np.float32),
        uv_triangles=tris.copy(),
        landmark_indices=np.arange(68, dtype=np.int32) % v,
        skin_mask=np.ones(v, np.float32),
        face_region=verts[:, 2] > 0,
        metadata={"source": "test fixture"},
    )
