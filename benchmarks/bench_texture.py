"""Benchmark of the albedo bake: synthetic renders with known answers, and real photos.

(a) **Synthetic**: the default head with a known albedo texture (a random model albedo plus
fine skin detail) is rendered per pixel under SH light into a 448² "photo", then occluded
by a hair fringe, glasses frames or specular glare (additive white blobs), each with a
known pixel mask. Per case: the albedo error (mean |baked − true|, 8-bit units) over the
face-region skin texels facing the camera; the **leakage** — over the texels seen through
an occluder, the mean fraction ``clip(⟨b − t, o − t⟩ / |o − t|², 0, 1)`` of the way from the
true albedo ``t`` to what a naive bake would read there, ``o`` = occluded photo colour ÷
irradiance (0 = the occluder left no trace, 1 = baked in); the border step
(:attr:`~msma_engine.baking.BakeOutput.seam`).

(b) **Photos**: scikit-image's astronaut, ../shared/data/photos/*.jpg (default fit) and
``--faces N`` photos of ../shared/data/faces/ (CelebA and LFW, fast fit): forehead-vs-cheek
CIE76 ΔE of the median Lab colour of the baked texels (:mod:`msma_engine.texture_regions`),
border step, coverage; and the bake time at 1024² and 2048².

Usage::

    python benchmarks/bench_texture.py [--faces 20] [--size 1024] [--no-photos]

Runs against whatever ``msma_engine`` is imported: run it once with ``PYTHONPATH`` at an
older checkout for "before" numbers (the dense landmarks are passed only where ``bake``
accepts them).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_photos import SHARED_PHOTOS  # noqa: E402

from msma_engine.align import CropTransform  # noqa: E402
from msma_engine.baking import TextureBaker  # noqa: E402
from msma_engine.face_model import FaceModel, load_face_model  # noqa: E402
from msma_engine.render import RenderContext, interpolate, rasterize  # noqa: E402
from msma_engine.shading import sh_irradiance  # noqa: E402
from msma_engine.texture_regions import face_regions, median_lab_delta_e  # noqa: E402

PHOTO = 448  # synthetic photo side; the crop is its half-scale copy (224).
HAIR, GLASSES, GLARE = (62, 42, 28), (20, 20, 22), 0.55


# --- (a) synthetic --------------------------------------------------------------------------
def known_albedo(model: FaceModel, size: int, seed: int = 0) -> np.ndarray:
    """``(size, size, 3)`` float32 albedo: a random model albedo plus fine multiplicative detail."""
    rng = np.random.default_rng(seed)
    c = model.layout.zeros(1)
    c[0, model.layout.slices()["tex"]] = torch.as_tensor(rng.normal(0, 0.7, model.layout.n_tex), dtype=torch.float32)
    with torch.no_grad():
        alb = model.albedo(c[:, model.layout.slices()["tex"]])[0].numpy()
    alb = cv2.resize(alb, (size, size), interpolation=cv2.INTER_LINEAR)
    detail = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.5 * size / 1024)
    detail = 1.0 + 0.06 * detail / detail.std()
    return np.clip(alb * detail[..., None], 0, 1).astype(np.float32)


def synthetic_coeffs(model: FaceModel) -> torch.Tensor:
    c = model.layout.zeros(1)
    s = model.layout.slices()
    c[0, s["angles"]] = torch.tensor([0.05, 0.15, 0.0])
    c[0, s["gamma"]] = torch.tensor([0.3, 0.1, 0.25, 0.08, 0.04, -0.02, 0.1, 0.03, 0.0] * 3)
    return c


def render_photo(model: FaceModel, coeffs: torch.Tensor, albedo: np.ndarray, ctx: RenderContext):
    """Per-pixel textured render: ``(photo float (P, P, 3), irradiance (P, P, 3), covered (P, P))``."""
    with torch.no_grad():
        out = model(coeffs)
        cam = model.camera.scaled(PHOTO / model.camera.image_size[0])
        frags = rasterize(ctx, cam.world_to_clip(out.vertices), model.triangles, (PHOTO, PHOTO), cull_backfaces=True)
        uv = interpolate(model.uv_coords[None], frags, model.uv_triangles)[0].numpy()
        n = interpolate(out.normals, frags, model.triangles)
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        irr = sh_irradiance(n.reshape(1, -1, 3), model.layout.split(coeffs).gamma)[0].reshape(PHOTO, PHOTO, 3).numpy()
    covered = frags.triangle_id[0].numpy() >= 0
    s = albedo.shape[0]
    mx = (uv[..., 0] * s - 0.5).astype(np.float32)
    my = ((1.0 - uv[..., 1]) * s - 0.5).astype(np.float32)
    col = cv2.remap(albedo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    photo = np.where(covered[..., None], col * irr, 0.35)
    return photo.astype(np.float32), irr.astype(np.float32), covered


def occlude(photo: np.ndarray, lm: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Photo with one occluder and its ``(P, P)`` bool pixel mask; ``lm`` (68, 2) photo pixels."""
    out = photo.copy()
    mask = np.zeros(photo.shape[:2], np.uint8)
    iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    if kind == "hair":
        # A fringe from above the face down to a wavy edge 0.35 IOD above the brows.
        top = lm[17:27, 1].min() - 0.35 * iod
        xs = np.arange(photo.shape[1])
        edge = top + 0.12 * iod * np.sin(xs / (0.25 * iod)) + rng.normal(0, 0.03 * iod, len(xs))
        mask[np.arange(photo.shape[0])[:, None] < edge[None, :]] = 1
        strands = 1.0 + 0.25 * np.sin(xs / 2.3)[None, :, None]
        out = np.where(mask[..., None] > 0, np.float32(HAIR) / 255 * strands, out)
    elif kind == "glasses":
        for eye in (slice(36, 42), slice(42, 48)):
            c = lm[eye].mean(0)
            cv2.ellipse(mask, (int(c[0] * 4), int(c[1] * 4)), (int(0.42 * iod * 4), int(0.3 * iod * 4)), 0, 0, 360,
                        1, thickness=max(1, int(0.06 * iod)), shift=2)
        a, b = lm[39] + (0.0, -0.05 * iod), lm[42] + (0.0, -0.05 * iod)
        cv2.line(mask, (int(a[0] * 4), int(a[1] * 4)), (int(b[0] * 4), int(b[1] * 4)), 1,
                 thickness=max(1, int(0.06 * iod)), shift=2)
        out = np.where(mask[..., None] > 0, np.float32(GLASSES) / 255, out)
    elif kind == "glare":
        yy, xx = np.mgrid[: photo.shape[0], : photo.shape[1]].astype(np.float32)
        spots = [(lm[30], 0.10), (0.5 * (lm[19] + lm[24]) - (0.0, 0.35 * iod), 0.14),
                 (lm[2] * 0.35 + lm[31] * 0.65, 0.10)]
        glare = np.zeros(photo.shape[:2], np.float32)
        for c, sigma in spots:
            glare += GLARE * np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * (sigma * iod) ** 2))
        out = np.clip(out + glare[..., None], 0, 1)
        mask = (glare > 0.08).astype(np.uint8)
    return out, mask > 0


def synthetic_table(model: FaceModel, size: int) -> list[tuple]:
    ctx = RenderContext("torch")
    baker = TextureBaker(model, ctx=ctx)
    truth = known_albedo(model, size)
    coeffs = synthetic_coeffs(model)
    photo, irr, covered = render_photo(model, coeffs, truth, ctx)
    crop = CropTransform(matrix=np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]), size=224)
    with torch.no_grad():
        out = model(coeffs)
        lm = crop.inverse(out.landmarks_2d[0].numpy())
    # Texel geometry (independent of the baker's weights): surface point, facing, photo pixel.
    lay = baker._layout(size)
    idx = lay.index.numpy()
    with torch.no_grad():
        pts = baker._interp(lay, out.vertices[0])
        nrm = baker._interp(lay, out.normals[0])
        nrm = nrm / nrm.norm(dim=-1, keepdim=True)
        view = torch.tensor([0.0, 0.0, model.camera.distance]) - pts
        facing = ((nrm * view).sum(-1) / view.norm(dim=-1)).numpy()
        px = crop.inverse(model.camera.project(pts).numpy())
    face = (lay.face.numpy() > 0.5) & (lay.skin.numpy() > 0.5) & (facing > 0.5)
    # A texel is seen through an occluder pixel only where the surface is the visible one.
    depth_ok = facing > 0.3
    true_t = truth.reshape(-1, 3)[idx] * 255.0
    ij = np.clip(np.round(px - 0.5).astype(int), 0, PHOTO - 1)
    rows = []
    rng = np.random.default_rng(1)
    for kind in ("clean", "hair", "glasses", "glare"):
        img, occ = (photo, np.zeros(photo.shape[:2], bool)) if kind == "clean" else occlude(photo, lm, kind, rng)
        img8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        res = baker.bake(coeffs, img8, crop, size)
        baked = res.texture.reshape(-1, 3)[idx].astype(np.float32)
        err = float(np.abs(baked[face] - true_t[face]).mean())
        hit = occ[ij[:, 1], ij[:, 0]] & depth_ok & (lay.face.numpy() > 0.5)
        naive = img[ij[:, 1], ij[:, 0]] / np.maximum(irr[ij[:, 1], ij[:, 0]], 0.15) * 255.0
        d = naive - true_t
        far = hit & (np.linalg.norm(d, axis=1) > 25.0)
        leak = (float(np.mean(np.clip(((baked - true_t) * d).sum(1)[far] / (d[far] ** 2).sum(1), 0, 1)))
                if far.any() else float("nan"))
        rows.append((kind, err, leak, int(far.sum()), res.seam, res.coverage))
    return rows


# --- (b) photos -----------------------------------------------------------------------------
def photo_cases(n_faces: int) -> list[tuple[str, object, str]]:
    """``(name, path or array, fit)`` for the test photos and ``n_faces`` dataset photos."""
    from skimage import data

    cases = [("astronaut", data.astronaut(), "default")]
    cases += [(p.stem.split("_")[0], str(p), "default") for p in sorted(SHARED_PHOTOS.glob("*.jpg"))]
    faces = SHARED_PHOTOS.parent / "faces"
    picks = sorted((faces / "celeba10k").glob("*.jpg"))[: (n_faces + 1) // 2]
    picks += [sorted(d.glob("*.jpg"))[0] for d in sorted((faces / "lfw").glob("*"))[: n_faces // 2] if d.is_dir()]
    cases += [(p.stem[:16], str(p), "fast") for p in picks]
    return cases


def fit_photo(rec, mp, image, fit: str):
    """Fitted coefficients, crop, photo pixels and dense Face Mesh points (None if it fails)."""
    from msma_engine.align import align_crop
    from msma_engine.detect import detect_faces, five_from_68, landmarks68, pick_face
    from msma_engine.fitting import FitTarget
    from msma_engine.image_io import load_image, load_image_array

    loaded = load_image_array(image) if isinstance(image, np.ndarray) else load_image(image)
    det = pick_face(detect_faces(loaded.pixels, rec.detector), "largest", image_name="x", min_size=rec.min_face_size)[0]
    lm = landmarks68(loaded.pixels, det, rec.landmarker).points
    try:
        dense = mp.mesh(loaded.pixels, det)[:, :2]
    except Exception:  # noqa: BLE001 - the bake works without dense points
        dense = None
    crop = align_crop(five_from_68(lm), rec.template)
    size = rec.model.camera.image_size[0]
    crop_img = crop.warp(loaded.pixels, size)
    valid = crop.warp(np.ones(loaded.pixels.shape[:2], np.float32), size)
    target = FitTarget(image=torch.as_tensor(crop_img, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0,
                       landmarks=torch.as_tensor(crop.apply(lm), dtype=torch.float32)[None],
                       valid=torch.as_tensor(valid, dtype=torch.float32)[None, None])
    coeffs = rec._fitter(fit).fit(target, init=None, rigid_init=True).coeffs
    return coeffs, crop, loaded.pixels, dense


def region_texels(baker: TextureBaker, size: int) -> dict[str, np.ndarray]:
    """Flat texel indices of the forehead and cheeks."""
    m = baker.model
    regions = face_regions(m.mean_shape.numpy(), m.landmark_indices.numpy(), m.skin_mask.numpy() > 0.5)
    lay = baker._layout(size)
    idx = lay.index.numpy()
    out = {}
    for name, vmask in regions.items():
        t = baker._interp(lay, torch.as_tensor(vmask, dtype=torch.float32)[:, None])[:, 0].numpy() > 0.5
        out[name] = idx[t]
    return out


def forehead_cheek_delta_e(texture: np.ndarray, regions: dict[str, np.ndarray]) -> float:
    flat = texture.reshape(-1, 3)
    return median_lab_delta_e(flat[regions["forehead"]], flat[regions["cheeks"]])


def photo_table(model: FaceModel, n_faces: int, size: int, save: Path | None) -> tuple[list[tuple], list[tuple]]:
    from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker
    from msma_engine.pipeline import Reconstructor

    rec = Reconstructor(model)
    mp = MediaPipeLandmarker()
    takes_dense = "dense_landmarks" in inspect.signature(rec.baker.bake).parameters
    regions = region_texels(rec.baker, size)
    rows, timing = [], []
    for name, image, fit in photo_cases(n_faces):
        try:
            coeffs, crop, pixels, dense = fit_photo(rec, mp, image, fit)
        except Exception as exc:  # noqa: BLE001 - a benchmark row, not a pipeline
            logging.getLogger(__name__).warning("%s: %s", name, exc)
            continue
        kw = {"dense_landmarks": dense} if takes_dense else {}
        t = time.perf_counter()
        res = rec.baker.bake(coeffs, pixels, crop, size, **kw)
        dt = time.perf_counter() - t
        rows.append((name, fit, dense is not None, forehead_cheek_delta_e(res.texture, regions), res.seam,
                     res.coverage, dt))
        if save is not None:
            cv2.imwrite(str(save / f"{name}_albedo.png"), res.texture[..., ::-1])
            np.savez(save / f"{name}_fit.npz", coeffs=coeffs.numpy(), crop=crop.matrix,
                     dense=np.zeros((0, 2)) if dense is None else dense)
        if fit == "default":  # the 2048² option: time and what it adds (high-frequency energy)
            t = time.perf_counter()
            big = rec.baker.bake(coeffs, pixels, crop, 2048, **kw)
            dt2 = time.perf_counter() - t
            timing.append((name, dt, dt2, _detail(res.texture, 1024), _detail(big.texture, 2048)))
    return rows, timing


def _detail(texture: np.ndarray, size: int) -> float:
    """RMS of the finest band (texture − its 2× blur) in the face's central quarter, 8-bit units."""
    c = texture[size // 4: 3 * size // 4, size // 4: 3 * size // 4].astype(np.float32)
    return float(np.sqrt(np.mean((c - cv2.GaussianBlur(c, (0, 0), 2.0 * size / 1024)) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=20, help="dataset photos (half CelebA, half LFW)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--no-photos", action="store_true", help="only the synthetic table")
    ap.add_argument("--save", type=Path, default=None, help="folder for the baked textures")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    model = load_face_model()
    print("## (a) synthetic renders (known albedo, 448² photo)\n")
    print("| case | albedo error (8-bit) | leakage | texels under occluder | border step | coverage |")
    print("|---|---|---|---|---|---|")
    for kind, err, leak, n, seam, cov in synthetic_table(model, args.size):
        print(f"| {kind} | {err:.1f} | {leak:.2f} | {n} | {seam:.1f} | {cov:.3f} |")
    if args.no_photos:
        return
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
    rows, timing = photo_table(model, args.faces, args.size, args.save)
    print(f"\n## (b) photos, {args.size}²\n")
    print("| photo | fit | dense points | forehead-cheek ΔE | border step | coverage | bake s |")
    print("|---|---|---|---|---|---|---|")
    for name, fit, dense, de, seam, cov, dt in rows:
        print(f"| {name} | {fit} | {'yes' if dense else 'no'} | {de:.1f} | {seam:.1f} | {cov:.3f} | {dt:.2f} |")
    data = [r for r in rows if r[1] == "fast"]
    if data:
        print(f"| **median of {len(data)} dataset photos** | fast | | {np.median([r[3] for r in data]):.1f} | "
              f"{np.nanmedian([r[4] for r in data]):.1f} | {np.median([r[5] for r in data]):.3f} | "
              f"{np.median([r[6] for r in data]):.2f} |")
    print("\n## 1024² vs 2048² (bake seconds, finest-band detail RMS in 8-bit units)\n")
    print("| photo | 1024² s | 2048² s | detail 1024² | detail 2048² |")
    print("|---|---|---|---|---|")
    for name, t1, t2, d1, d2 in timing:
        print(f"| {name} | {t1:.2f} | {t2:.2f} | {d1:.2f} | {d2:.2f} |")


if __name__ == "__main__":
    main()
