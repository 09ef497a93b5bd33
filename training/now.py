"""The NoW benchmark (Sanyal et al., CVPR 2019) for users who hold the data set.

Two steps, each a ``python -m training`` command:

- :func:`predict_now` reconstructs every image of a split's image list with the engine and
  writes the NoW submission layout;
- :func:`evaluate_now` scores such predictions against the validation scans with
  :func:`training.metrics.now_scan_to_mesh` and :func:`now_table` prints the NoW table.

The data set is not distributed with this project (its licence is non-commercial; users
download it from the NoW website). Its layout, as the official evaluation code reads it::

    <root>/imagepathsvalidation.txt | imagepathstest.txt      one image per line,
                                    <subject>/<challenge>/<name>.jpg
    <root>/final_release_version/iphone_pictures/<subject>/<challenge>/<name>.jpg
    <root>/final_release_version/detected_face/<subject>/<challenge>/<name>.npy
                                    a pickled dict {'left', 'top', 'right', 'bottom'}, pixels
    <root>/scans/<subject>/*.obj                 the subject's neutral scan, millimetres
    <root>/scans_lmks_onlypp/<subject>/*.pp      its 7 landmarks, MeshLab picked points

(The image lists are also looked for under ``final_release_version/``.) Predictions::

    <pred>/<subject>/<challenge>/<name>.obj      neutral mesh (expression zeroed, pose removed)
    <pred>/<subject>/<challenge>/<name>.npy      (7, 3) landmarks on that mesh, same units

The 7 landmarks, in NoW's order: right eye outer corner, right eye inner corner, left eye
inner corner, left eye outer corner, nose bottom, right mouth corner, left mouth corner
(the subject's right/left), i.e. iBUG-68 points 36, 39, 42, 45, 33, 48, 54.

Protocol: the scan is cropped to a sphere around the face centre computed from its 7
landmarks; the prediction is aligned to the scan by a similarity on the 7 landmarks and a
scan-to-mesh refinement; the error of an image is the distance of every cropped scan vertex
to the predicted surface (mm, because the scans are in mm). A challenge's median / mean /
std are over all its images' distances pooled. The similarity makes the prediction's unit
irrelevant; metres are written by default, the unit the official code's metric variant assumes.
"""

from __future__ import annotations

import csv
import logging
import pickle
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msma_engine.detect import FaceDetection, detect_faces, pick_face
from msma_engine.errors import MSMAError
from msma_engine.fileio import atomic_write

__all__ = [
    "CHALLENGES",
    "NOW_IBUG68",
    "IMAGE_LISTS",
    "NowDataError",
    "NowItem",
    "find_image_list",
    "read_image_list",
    "load_face_box",
    "read_pp",
    "read_obj",
    "write_obj",
    "now_landmark_vertices",
    "crop_scan",
    "choose_detection",
    "PredictSummary",
    "predict_now",
    "NowImageError",
    "evaluate_now",
    "now_table",
    "write_errors_csv",
]

logger = logging.getLogger(__name__)

CHALLENGES = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
"""The four NoW challenges, the middle folder of every image path."""

NOW_IBUG68 = (36, 39, 42, 45, 33, 48, 54)
"""The NoW landmarks as iBUG-68 indices, in NoW's order (see the module doc)."""

IMAGE_LISTS = {"val": "imagepathsvalidation.txt", "test": "imagepathstest.txt"}

UNITS = {"m": 1.0, "mm": 1000.0}
"""Prediction units: factor from metres."""


class NowDataError(MSMAError):
    """A NoW data-set or prediction file is missing or not in the NoW format (the message names it)."""


# --- the data set ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NowItem:
    """One line of an image list.

    Attributes:
        line: the line as written (``<subject>/<challenge>/<name>.jpg``).
        subject, challenge, stem: its parts (``stem`` = file name without extension).
        image: the photo's path.
        box: the path of its face box ``.npy`` (it may not exist).
    """

    line: str
    subject: str
    challenge: str
    stem: str
    image: Path
    box: Path

    def prediction(self, pred_root: str | Path) -> tuple[Path, Path]:
        """``(<pred>/<subject>/<challenge>/<stem>.obj, ... .npy)``."""
        base = Path(pred_root) / self.subject / self.challenge / self.stem
        return base.with_name(self.stem + ".obj"), base.with_name(self.stem + ".npy")


def _check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise NowDataError(f"NoW root {root} does not exist or is not a folder (download the data set from the NoW "
                           "website; it is not distributed with this project)")
    return root


def find_image_list(root: str | Path, split: str) -> Path:
    """The image list of ``split`` (``"val"`` or ``"test"``) under ``root`` or ``root/final_release_version``."""
    root = _check_root(root)
    if split not in IMAGE_LISTS:
        raise ValueError(f"split must be one of {sorted(IMAGE_LISTS)}, got {split!r}")
    candidates = [root / IMAGE_LISTS[split], root / "final_release_version" / IMAGE_LISTS[split]]
    for c in candidates:
        if c.is_file():
            return c
    raise NowDataError(f"NoW image list for split {split!r} not found: looked for {candidates[0]} and {candidates[1]}")


def read_image_list(root: str | Path, split: str) -> list[NowItem]:
    """Parse the split's image list into :class:`NowItem` s (blank lines skipped)."""
    root = _check_root(root)
    listing = find_image_list(root, split)
    pictures = root / "final_release_version" / "iphone_pictures"
    boxes = root / "final_release_version" / "detected_face"
    items = []
    for number, raw in enumerate(listing.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        parts = line.replace("\\", "/").split("/")
        if len(parts) < 3:
            raise NowDataError(f"{listing}:{number}: {line!r} is not <subject>/<challenge>/<name>.jpg")
        subject, challenge, name = parts[-3:]
        rel = Path(subject, challenge, name)
        items.append(NowItem(line=line, subject=subject, challenge=challenge, stem=Path(name).stem,
                             image=pictures / rel, box=(boxes / rel).with_suffix(".npy")))
    if not items:
        raise NowDataError(f"{listing} lists no images")
    return items


def load_face_box(path: str | Path) -> np.ndarray | None:
    """A NoW face box ``(4,)`` ``x0, y0, x1, y1`` pixels, or None when the file does not exist.

    The files are pickled dicts ``{'left', 'top', 'right', 'bottom'}`` written by Python 2
    (hence ``latin1``). They are read by :func:`_load_box_npy`, whose unpickler builds only
    NumPy arrays, scalars and plain containers: a crafted file cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = _load_box_npy(path)
        box = data.item() if data.dtype == object else data
        if isinstance(box, dict):
            values = [float(box[k]) for k in ("left", "top", "right", "bottom")]
        else:
            values = [float(v) for v in np.asarray(box).reshape(-1)]
    except (OSError, ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as exc:
        raise NowDataError(f"{path}: not a NoW face box (a dict with left/top/right/bottom): {exc}") from exc
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (4,) or not np.all(np.isfinite(out)) or out[2] <= out[0] or out[3] <= out[1]:
        raise NowDataError(f"{path}: face box {out.tolist()} is not left < right, top < bottom")
    return out


# Everything a pickled NumPy array of plain values needs (module names of NumPy 1.x and 2.x).
_SAFE_PICKLE_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # encode: bytes in protocol-2 pickles


class _ArrayUnpickler(pickle.Unpickler):
    """Builds NumPy arrays, scalars, dicts, lists, numbers and strings; refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only NumPy arrays and plain values)")


def _load_box_npy(path: Path) -> np.ndarray:
    """``np.load(path, allow_pickle=True, encoding="latin1")`` with :class:`_ArrayUnpickler` for object arrays."""
    with path.open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        shape, fortran, dtype = np.lib.format._read_array_header(fh, version)
        if not dtype.hasobject:
            count = int(np.prod(shape))
            data = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype)
            if data.size != count:
                raise ValueError(f"truncated array data: {data.size} of {count} values")
            return data.reshape(shape, order="F" if fortran else "C")
        return _ArrayUnpickler(fh, encoding="latin1").load()


# --- file formats ---------------------------------------------------------------------------
def read_pp(path: str | Path) -> np.ndarray:
    """The first 7 points of a MeshLab picked-points file, in file order → ``(7, 3)``.

    The official loader takes the 7 point lines after the 8-line header in file order and
    ignores the names and the ``active`` flag; this parses the XML, so attribute order and
    whitespace do not matter.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise NowDataError(f"{path}: not a MeshLab picked-points (.pp) XML file: {exc}") from exc
    points = []
    for el in root.iter("point"):
        try:
            points.append([float(el.attrib[k]) for k in ("x", "y", "z")])
        except (KeyError, ValueError) as exc:
            raise NowDataError(f"{path}: <point> {el.attrib} lacks numeric x, y, z") from exc
    if len(points) < 7:
        raise NowDataError(f"{path}: has {len(points)} picked points, NoW needs 7")
    return np.asarray(points[:7], dtype=np.float64)


def read_obj(path: str | Path, faces: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(V, 3)`` float64 and triangles ``(F, 3)`` int64 (0-based) of a Wavefront OBJ.

    Vertex colours after ``x y z`` are ignored; polygons are fan-triangulated; ``v/vt/vn``
    face entries and negative (relative) indices are accepted. ``faces=False`` skips them.
    """
    path = Path(path)
    if not path.is_file():
        raise NowDataError(f"{path}: mesh file not found")
    verts, tris = [], []
    try:
        with path.open("r", errors="replace") as fh:
            for line in fh:
                if line.startswith("v "):
                    verts.append(line.split()[1:4])
                elif faces and line.startswith("f "):
                    idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                    n = len(verts)
                    idx = [i - 1 if i > 0 else n + i for i in idx]
                    tris.extend((idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1))
        v = np.asarray(verts, dtype=np.float64)
    except ValueError as exc:
        raise NowDataError(f"{path}: malformed OBJ ({exc})") from exc
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise NowDataError(f"{path}: no 'v x y z' vertices")
    t = np.asarray(tris, dtype=np.int64).reshape(-1, 3)
    if faces and (len(t) == 0 or t.min() < 0 or t.max() >= len(v)):
        raise NowDataError(f"{path}: no faces, or a face index outside the {len(v)} vertices")
    return v, t


def write_obj(path: str | Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """Write ``(V, 3)`` vertices and ``(F, 3)`` 0-based triangles as an OBJ (atomically)."""
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64) + 1

    def write(fh):
        np.savetxt(fh, v, fmt="v %.9g %.9g %.9g")
        np.savetxt(fh, t, fmt="f %d %d %d")

    atomic_write(path, write)  # a resumed run never takes a half file as done


# --- geometry -------------------------------------------------------------------------------
def now_landmark_vertices(model) -> np.ndarray:
    """The model's vertex indices of the 7 NoW landmarks ``(7,)`` (via its iBUG-68 ``landmark_indices``)."""
    lm = model.landmark_indices.cpu().numpy()
    if lm.shape != (68,):
        raise NowDataError(f"face model {getattr(model, 'name', '?')!r} has {lm.shape} landmark indices, "
                           "NoW needs the 68 iBUG points")
    return lm[list(NOW_IBUG68)].astype(np.int64)


def crop_scan(points: np.ndarray, landmarks7: np.ndarray) -> np.ndarray:
    """NoW's face crop of a scan: the points within a sphere around the face centre.

    The centre lies 30 % of the way from the nose bottom (landmark 4) to the midpoint of
    the inner eye corners (1, 2); the radius is 1.4 × the mean of the outer-eye-corner
    distance (0, 3) and that nose length.

    Args:
        points: ``(N, 3)`` scan vertices.
        landmarks7: ``(7, 3)`` the scan's landmarks, NoW order, same units.

    Returns:
        ``(M, 3)`` the kept points.
    """
    lm = np.asarray(landmarks7, np.float64)
    nose = lm[4]
    bridge = 0.5 * (lm[1] + lm[2])
    centre = nose + 0.3 * (bridge - nose)
    radius = 1.4 * 0.5 * (np.linalg.norm(lm[0] - lm[3]) + np.linalg.norm(bridge - nose))
    pts = np.asarray(points, np.float64)
    return pts[np.linalg.norm(pts - centre, axis=1) <= radius]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_detection(detections: list[FaceDetection], box: np.ndarray | None,
                     image_name: str = "image") -> FaceDetection:
    """The face to reconstruct: the detection in the NoW box, or the largest without a box.

    With a box, the detections whose centre lies inside it compete and the one overlapping
    it most (IoU) wins, so a bystander's face is never taken. When the detector found no
    face there (occlusions, profiles) the box itself becomes the detection; its five points
    are nominal positions in the box (the 68-point landmarkers read only the box).

    Raises:
        NoFaceError / FaceTooSmallError: without a box, as :func:`msma_engine.detect.pick_face`.
    """
    if box is None:
        return pick_face(detections, "largest", image_name=image_name)[0]
    box = np.asarray(box, np.float64)

    def centre_inside(d: FaceDetection) -> bool:
        cx, cy = 0.5 * (d.box[0] + d.box[2]), 0.5 * (d.box[1] + d.box[3])
        return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]

    inside = [d for d in detections if centre_inside(d)]
    if inside:
        return max(inside, key=lambda d: _iou(d.box, box))
    logger.info("%s: no detection inside the NoW box %s; using the box", image_name, box.round(1).tolist())
    x0, y0, x1, y1 = box
    frac = np.array([[0.32, 0.42], [0.68, 0.42], [0.5, 0.6], [0.36, 0.78], [0.64, 0.78]])
    points5 = np.stack([x0 + frac[:, 0] * (x1 - x0), y0 + frac[:, 1] * (y1 - y0)], axis=1)
    return FaceDetection(box=box, score=0.0, points5=points5, source="now_box")


# --- predictions ----------------------------------------------------------------------------
@dataclass
class PredictSummary:
    """Outcome of :func:`predict_now`: image counts and ``failures`` as ``(image line, reason)``."""

    written: int
    skipped: int
    failures: list[tuple[str, str]]

    def __str__(self) -> str:
        return f"wrote {self.written}, skipped {self.skipped} already done, failed {len(self.failures)}"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\t", " ").replace("\n", " ")


def predict_now(now_root: str | Path, split: str, out: str | Path, reconstructor, *, fit: str | None = "default",
                unit: str = "m", progress: bool = True) -> PredictSummary:
    """Reconstruct every image of a NoW split and write the submission layout (resumable).

    An image whose ``.obj`` and ``.npy`` both exist is skipped. Per-image failures do not
    stop the run; they are written to ``<out>/failures.tsv`` (``image<TAB>reason``,
    rewritten each run, header only when nothing failed).

    Args:
        now_root: the data set's root folder.
        split: ``"val"`` or ``"test"``.
        out: prediction root.
        reconstructor: an :class:`msma_engine.pipeline.Reconstructor`.
        fit: test-time fitting quality (``"fast"``, ``"default"``) or None.
        unit: ``"m"`` (default) or ``"mm"`` for the written meshes and landmarks.
        progress: show a tqdm progress bar.

    Returns:
        :class:`PredictSummary`.
    """
    from tqdm import tqdm

    from msma_engine.image_io import load_image

    if unit not in UNITS:
        raise ValueError(f"unit must be one of {sorted(UNITS)}, got {unit!r}")
    items = read_image_list(now_root, split)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lm_vertices = now_landmark_vertices(reconstructor.model)
    triangles = reconstructor.model.triangles.cpu().numpy()
    scale = UNITS[unit]
    written, skipped, failures = 0, 0, []
    for item in tqdm(items, desc="NoW predict", unit="img", disable=not progress, dynamic_ncols=True):
        obj_path, npy_path = item.prediction(out)
        if obj_path.is_file() and npy_path.is_file():
            skipped += 1
            continue
        try:
            loaded = load_image(item.image)
            box = load_face_box(item.box)
            detections = detect_faces(loaded.pixels, reconstructor.detector)
            det = choose_detection(detections, box, image_name=str(item.image))
            res = reconstructor.reconstruct_detection(loaded, det, fit=fit, texture_size=64)
            # vertices_neutral: identity only, expression zeroed, in the model frame (no pose).
            verts = res.vertices_neutral.astype(np.float64) * scale
            obj_path.parent.mkdir(parents=True, exist_ok=True)
            write_obj(obj_path, verts, triangles)
            atomic_write(npy_path, lambda fh: np.save(fh, verts[lm_vertices]))
            written += 1
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad image must not end a 2000-image run
            if isinstance(exc, MSMAError):
                logger.warning("%s: %s", item.line, exc)
            else:
                logger.exception("%s: unexpected failure", item.line)
            failures.append((item.line, _reason(exc)))
    with (out / "failures.tsv").open("w", newline="") as fh:
        fh.write("image\treason\n")
        fh.writelines(f"{line}\t{reason}\n" for line, reason in failures)
    return PredictSummary(written, skipped, failures)


# --- evaluation -----------------------------------------------------------------------------
@dataclass
class NowImageError:
    """Scan-to-mesh error of one image, mm.

    Attributes:
        item: the image.
        median, mean, std: over ``distances``.
        distances: ``(N,)`` float32, one per cropped scan vertex.
    """

    item: NowItem
    median: float
    mean: float
    std: float
    distances: np.ndarray


def _subject_file(folder: Path, subject: str, pattern: str, what: str, split: str) -> Path:
    found = sorted((folder / subject).glob(pattern))
    if not found:
        hint = ""
        if split == "test":
            hint = " (the test scans are withheld; test predictions are scored by the NoW organisers)"
        raise NowDataError(f"no {what} for subject {subject}: {folder / subject / pattern} matches nothing{hint}")
    if len(found) > 1:
        logger.warning("%s: %d files match %s; using %s", subject, len(found), pattern, found[0].name)
    return found[0]


def _read_landmarks(path: Path) -> np.ndarray:
    try:
        lm = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
    except (OSError, ValueError) as exc:
        raise NowDataError(f"{path}: unreadable landmarks ({exc})") from exc
    if np.shape(lm) != (7, 3):
        raise NowDataError(f"{path}: landmarks must be (7, 3), got {np.shape(lm)}")
    return np.asarray(lm, np.float64)


def evaluate_now(now_root: str | Path, split: str, pred_root: str | Path, *, refine_iters: int = 10,
                 progress: bool = True) -> list[NowImageError]:
    """Score NoW predictions against the scans (:func:`training.metrics.now_scan_to_mesh`).

    Every prediction is checked to exist before any is scored; landmarks may be ``.npy``
    or whitespace-separated ``.txt`` (both accepted by the official code).

    Args:
        now_root: the data set's root (image list, ``scans/``, ``scans_lmks_onlypp/``).
        split: ``"val"`` (the test scans are not public).
        pred_root: prediction root in the NoW layout.
        refine_iters: scan-to-mesh refinement iterations after the landmark alignment.
        progress: show a tqdm progress bar.

    Returns:
        One :class:`NowImageError` per listed image, in list order.

    Raises:
        NowDataError: a missing root, image list, scan, landmark file or prediction (named).
    """
    from tqdm import tqdm

    from training.metrics import now_scan_to_mesh

    root = _check_root(now_root)
    items = read_image_list(root, split)
    pred_root = Path(pred_root)
    if not pred_root.is_dir():
        raise NowDataError(f"prediction folder {pred_root} does not exist")
    # Check every prediction up front: a NoW number over a subset is not comparable.
    preds = {}
    missing = []
    for item in items:
        obj, npy = item.prediction(pred_root)
        lm = npy if npy.is_file() else npy.with_suffix(".txt")
        if not obj.is_file():
            missing.append(obj)
        elif not lm.is_file():
            missing.append(npy)
        preds[item.line] = (obj, lm)
    if missing:
        raise NowDataError(f"{len(missing)} of {len(items)} predictions missing, first: {missing[0]} "
                           "(run `python -m training now-predict` first)")
    scans: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    results = []
    for item in tqdm(items, desc="NoW eval", unit="img", disable=not progress, dynamic_ncols=True):
        if item.subject not in scans:  # one scan per subject, shared by all its images
            scan_path = _subject_file(root / "scans", item.subject, "*.obj", "scan", split)
            pp_path = _subject_file(root / "scans_lmks_onlypp", item.subject, "*.pp", "scan landmarks", split)
            lm = read_pp(pp_path)
            points, _ = read_obj(scan_path, faces=False)
            cropped = crop_scan(points, lm)
            if len(cropped) < 3:
                raise NowDataError(f"{scan_path}: only {len(cropped)} vertices near the face landmarks of {pp_path}; "
                                   "do the scan and its .pp file belong together?")
            scans[item.subject] = (cropped, lm)
        cropped, lm = scans[item.subject]
        obj, lm_path = preds[item.line]
        verts, tris = read_obj(obj)
        res = now_scan_to_mesh(verts, tris, _read_landmarks(lm_path), cropped, lm, refine_iters=refine_iters,
                               units_to_mm=1.0)  # the scans are in millimetres
        results.append(NowImageError(item, res.median, res.mean, res.std, res.distances.astype(np.float32)))
    return results


def now_table(results: list[NowImageError]) -> str:
    """The NoW table as Markdown: median / mean / std (mm) per challenge and over all images.

    The statistics pool the distances of all images of a row, as the official code does.
    """
    rows = [(c, [r for r in results if r.item.challenge == c]) for c in CHALLENGES]
    others = sorted({r.item.challenge for r in results} - set(CHALLENGES))
    rows += [(c, [r for r in results if r.item.challenge == c]) for c in others]
    rows.append(("all", results))
    lines = ["| challenge | images | median (mm) | mean (mm) | std (mm) |", "|---|---:|---:|---:|---:|"]
    for name, rs in rows:
        if not rs:
            continue
        d = np.concatenate([r.distances for r in rs]).astype(np.float64)
        lines.append(f"| {name} | {len(rs)} | {np.median(d):.3f} | {d.mean():.3f} | {d.std():.3f} |")
    return "\n".join(lines)


def write_errors_csv(results: list[NowImageError], path: str | Path) -> Path:
    """Per-image errors: ``image, subject, challenge, points, median_mm, mean_mm, std_mm``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "subject", "challenge", "points", "median_mm", "mean_mm", "std_mm"])
        for r in results:
            w.writerow([r.item.line, r.item.subject, r.item.challenge, len(r.distances),
                        f"{r.median:.4f}", f"{r.mean:.4f}", f"{r.std:.4f}"])
    return path

