"""Eyeballs for a reconstructed head: two rigid UV spheres seated in the eye sockets.

The default head keeps MakeHuman's eye-socket geometry (a closed cup behind each eyelid
opening, its own UV island) but not the eyeball helper, so a bare reconstruction stares
with empty sockets. :func:`eyeballs_for` places one sphere per socket of a given neutral
shape:

* the **rim** of a socket is the loop of vertices shared by the head UV island and the
  socket's UV island (the eyelid margin); sockets are found once per model as the UV
  islands whose vertices lie around the eye landmarks (36-41 subject's right, 42-47 left);
* the sphere's centre is the rim centroid in x/y, pushed back along −z until the sphere
  sits :data:`GAP` behind every head-island vertex in front of it (eyelid margin and lid
  skin), so the cornea fills the eyelid opening without poking through the lids;
* radius :data:`EYE_RADIUS` (12 mm, an adult human eyeball), shrunk if the socket rim is
  narrower than the eyeball so small heads keep their eyes inside.

All geometry is in metres in the model frame (+x subject's left, +y up, +z out of the
face). Eyeballs are rigid: expressions do not move them; they follow the head pose.
The sphere's poles are on the z axis: the front pole (+z) is the centre of the cornea and
of the texture; UVs are a Lambert azimuthal map of the sphere around the front pole, so
the iris and pupil are concentric discs in the middle of the texture.

Models without eye-socket islands (e.g. BFM09, whose eye region is a closed surface)
get no eyeballs (:func:`eyeballs_for` returns None).

Example:
    >>> eyes = eyeballs_for(model, result.vertices_neutral)  # doctest: +SKIP
    >>> eyes.left.vertices.shape, eyes.texture.shape  # doctest: +SKIP
    ((362, 3), (512, 512, 3))
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field

import numpy as np

from msma_engine.errors import ShapeError
from msma_engine.topology import as_numpy, freeze_arrays, reduce_fields

__all__ = ["EYE_RADIUS", "GAP", "EYE_LOOK_DEGREES", "Eyeball", "Eyeballs", "EyeSockets", "find_eye_sockets",
           "eyeballs_for", "eye_look_targets", "look_rotation", "uv_sphere", "eye_texture", "iris_color_from_photo",
           "DEFAULT_IRIS_COLOR"]

logger = logging.getLogger(__name__)

EYE_RADIUS = 0.012  # metres: adult human eyeball (~24 mm across).
GAP = 0.0005  # metres: clearance between the eyeball and the eyelid skin in front of it.
IRIS_HALF_ANGLE = np.arcsin(6.0 / 12.0)  # iris ~12 mm across on a 24 mm eyeball.
PUPIL_HALF_ANGLE = np.arcsin(2.0 / 12.0)
DEFAULT_IRIS_COLOR = (104, 84, 62)  # sRGB: a neutral hazel-brown.
# Eyeball turn at weight 1 of eyeLook{In,Out,Up,Down}{Left,Right}, degrees: within the
# comfortable human range (about 25-30 degrees sideways, less upwards).
EYE_LOOK_DEGREES = {"In": 25.0, "Out": 25.0, "Up": 20.0, "Down": 25.0}
# Expressions whose lids the eyeball must stay behind (suffix Left/Right added per side).
_LID_KEYS = ("eyeBlink", "eyeSquint", "eyeLookDown", "eyeLookUp", "eyeLookIn", "eyeLookOut")
_SIDE_SUFFIX = {"L": "Left", "R": "Right"}  # ARKit Left = the subject's left = +x = Blender .L

# Eye landmarks (iBUG 68): subject's right eye first, then left.
_EYE_LANDMARKS = {"R": slice(36, 42), "L": slice(42, 48)}


@dataclass(frozen=True)
class EyeSockets:
    """The eye sockets of one face model (topology only, valid for every identity).

    Attributes:
        rim: ``{"L": (R,), "R": (R,)}`` vertex indices of the eyelid margin of each socket.
        socket: ``{"L": (S,), "R": (S,)}`` vertex indices of each socket cup (rim included).
        front: ``{"L": (K,), "R": (K,)}`` head-island vertices around each opening that the
            eyeball must stay behind (eyelids and surrounding skin).
    """

    rim: dict[str, np.ndarray]
    socket: dict[str, np.ndarray]
    front: dict[str, np.ndarray]


@dataclass(frozen=True)
class Eyeball:
    """One eyeball.

    Attributes:
        side: ``"L"`` (subject's left, +x) or ``"R"``.
        centre: ``(3,)`` metres, model frame.
        radius: metres.
        vertices: ``(N, 3)`` metres, model frame.
        rim: ``(R,)`` model vertex indices of the eyelid margin it was seated on.
        front: ``(K,)`` model vertex indices of the skin it stays behind.
        lid_offsets: ``(M, U, 3)`` expression offsets (metres, weight 1) of the vertices
            ``union1d(rim, front)`` that the eyeball also stays behind (closed lids).
    """

    side: str
    centre: np.ndarray
    radius: float
    vertices: np.ndarray
    rim: np.ndarray
    front: np.ndarray
    lid_offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3)))

    def __post_init__(self) -> None:
        freeze_arrays(self)

    __reduce__ = reduce_fields


@dataclass(frozen=True)
class Eyeballs:
    """The pair of eyeballs of one face; both share the sphere topology, UVs and texture.

    Attributes:
        left: the subject's left eye (+x), Blender's ``.L``.
        right: the subject's right eye (−x), Blender's ``.R``.
        triangles: ``(F, 3)`` vertex indices, counter-clockwise outward.
        uv_coords: ``(T, 2)`` UVs, origin bottom-left; ``uv_triangles`` ``(F, 3)`` index them.
        uv_triangles: ``(F, 3)``.
        texture: ``(H, W, 3)`` uint8 sRGB albedo, row 0 at the top, cornea in the middle.
        iris_color: ``(3,)`` uint8 sRGB iris colour used in the texture.
        wanted_radius: the radius asked for, metres (before fitting it to the rims).
    """

    left: Eyeball
    right: Eyeball
    triangles: np.ndarray
    uv_coords: np.ndarray
    uv_triangles: np.ndarray
    texture: np.ndarray
    iris_color: np.ndarray
    wanted_radius: float = EYE_RADIUS

    def __post_init__(self) -> None:
        freeze_arrays(self)

    __reduce__ = reduce_fields

    def __iter__(self):
        """Left then right."""
        return iter((self.left, self.right))

    def reseated(self, vertices_neutral: np.ndarray) -> "Eyeballs":
        """The same eyeballs seated on another identity of the same model (no model needed).

        Args:
            vertices_neutral: ``(V, 3)`` metres, model frame.

        Returns:
            A new :class:`Eyeballs` sharing topology, UVs and texture.
        """
        verts = np.asarray(vertices_neutral, dtype=np.float64)
        n_max = int(max(e.rim.max() for e in self)) if len(self.left.rim) else -1
        if verts.ndim != 2 or verts.shape[1] != 3 or verts.shape[0] <= n_max:
            raise ShapeError(f"vertices_neutral must be (V, 3) with V > {n_max}, got {verts.shape}")
        moved = []
        for e in self:
            unit = (e.vertices - e.centre) / e.radius
            centre, r = _seat(verts, e.rim, e.front, self.wanted_radius, e.lid_offsets)
            moved.append(Eyeball(e.side, centre, r, centre + r * unit, e.rim, e.front, e.lid_offsets))
        return Eyeballs(left=moved[0], right=moved[1], triangles=self.triangles, uv_coords=self.uv_coords,
                        uv_triangles=self.uv_triangles, texture=self.texture, iris_color=self.iris_color,
                        wanted_radius=self.wanted_radius)


_SOCKET_CACHE: "weakref.WeakKeyDictionary[object, EyeSockets | None]" = weakref.WeakKeyDictionary()


def find_eye_sockets(model) -> EyeSockets | None:
    """Locate the eye sockets of a face model (cached per model object).

    Args:
        model: a :class:`~msma_engine.face_model.FaceModel` (or anything with ``mean_shape``,
            ``triangles``, ``uv_triangles`` and ``landmark_indices``).

    Returns:
        The sockets, or None when the model has no separate eye-socket UV islands.
    """
    try:
        return _SOCKET_CACHE[model]
    except (KeyError, TypeError):
        pass
    sockets = _find_sockets(as_numpy(model.mean_shape).astype(np.float64),
                            as_numpy(model.triangles).astype(np.int64), as_numpy(model.uv_triangles).astype(np.int64),
                            as_numpy(model.landmark_indices).astype(np.int64))
    try:
        _SOCKET_CACHE[model] = sockets
    except TypeError:  # not weak-referenceable: just recompute next time (milliseconds).
        pass
    return sockets


def _find_sockets(verts: np.ndarray, tris: np.ndarray, uv_tris: np.ndarray, lm_idx: np.ndarray) -> EyeSockets | None:
    from msma_engine.uv_islands import triangle_uv_islands

    face_island = triangle_uv_islands(uv_tris)
    sizes = np.bincount(face_island)
    head = 0  # the largest island: the outer skin
    head_verts = np.unique(tris[face_island == head])
    rim, socket, front = {}, {}, {}
    for side, sl in _EYE_LANDMARKS.items():
        eye_c = verts[lm_idx[sl]].mean(axis=0)
        best = None
        for island in range(len(sizes)):
            if island == head:
                continue
            vs = np.unique(tris[face_island == island])
            # The socket island surrounds the eye landmarks in x/y (within half an eye width).
            d = np.linalg.norm(verts[vs, :2].mean(axis=0) - eye_c[:2])
            if d < 0.01 and (best is None or d < best[0]):
                best = (d, vs)
        if best is None:
            return None
        vs = best[1]
        r = np.intersect1d(vs, head_verts)
        if len(r) < 3:
            return None
        rim[side], socket[side] = r, vs
        # Head skin that can sit in front of the eyeball: within 20 mm of the rim centre in
        # x/y and in front of the socket's deepest point (excludes the back of the head).
        rc = verts[r].mean(axis=0)
        hv = head_verts[(np.linalg.norm(verts[head_verts, :2] - rc[:2], axis=1) < 0.02)
                        & (verts[head_verts, 2] > verts[vs, 2].min())]
        front[side] = hv
    return EyeSockets(rim=rim, socket=socket, front=front)


def uv_sphere(segments: int = 24, rings: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A unit UV sphere with its poles on the z axis and the front pole (+z) at the UV centre.

    Args:
        segments: divisions around the z axis.
        rings: divisions from the front pole to the back pole.

    Returns:
        ``vertices`` ``(2 + (rings-1)·segments, 3)`` unit vectors, ``triangles`` ``(F, 3)``
        CCW outward, ``uv_coords`` ``(T, 2)`` (Lambert azimuthal map around +z, origin
        bottom-left, the back pole on the circle of radius 0.5), ``uv_triangles`` ``(F, 3)``.
    """
    if segments < 3 or rings < 2:
        raise ShapeError(f"uv_sphere needs segments >= 3 and rings >= 2, got {segments} and {rings}")
    theta = np.pi * np.arange(1, rings) / rings  # polar angle from +z of the inner rings
    phi = 2 * np.pi * np.arange(segments) / segments
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring_pts = np.stack([st * np.cos(phi), st * np.sin(phi), ct * np.ones_like(phi)], axis=-1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, 1.0]], ring_pts, [[0.0, 0.0, -1.0]]])
    front, back = 0, len(verts) - 1
    ring = lambda i, j: 1 + i * segments + (j % segments)  # noqa: E731

    # UVs: front pole, the ring vertices, then one back-pole UV per segment (mid-angle).
    rho = 0.5 * np.sin(theta / 2)[:, None] * np.ones_like(phi)
    ring_uv = np.stack([0.5 + rho * np.cos(phi), 0.5 + rho * np.sin(phi)], axis=-1).reshape(-1, 2)
    phi_mid = phi + np.pi / segments
    back_uv = np.stack([0.5 + 0.5 * np.cos(phi_mid), 0.5 + 0.5 * np.sin(phi_mid)], axis=-1)
    uvs = np.concatenate([[[0.5, 0.5]], ring_uv, back_uv])
    back_uv0 = 1 + len(ring_uv)

    tris, uv_tris = [], []
    for j in range(segments):
        # Front cap: φ grows counter-clockwise seen from +z, so (pole, j, j+1) faces outward.
        tris.append((front, ring(0, j), ring(0, j + 1)))
        for i in range(rings - 2):
            a, b, c, d = ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)
            tris += [(a, b, c), (a, c, d)]
        tris.append((ring(rings - 2, j), back, ring(rings - 2, j + 1)))
    tris = np.asarray(tris, dtype=np.int64)
    # Ring vertices and the front pole use their vertex index as UV index; back-pole corners
    # take the UV of their segment.
    uv_tris = tris.copy()
    back_faces = np.nonzero((tris == back).any(axis=1))[0]
    seg = np.arange(segments)
    uv_tris[back_faces, 1] = back_uv0 + seg
    return verts, tris, uvs.astype(np.float64), uv_tris


def eye_texture(iris_color=DEFAULT_IRIS_COLOR, size: int = 512) -> np.ndarray:
    """A procedural eyeball albedo for :func:`uv_sphere`'s UV map.

    White sclera, an iris disc (12 mm on a 24 mm eyeball) in ``iris_color`` with radial
    fibres and a dark limbal ring, and a near-black pupil (4 mm).

    Args:
        iris_color: sRGB ``(3,)`` 0-255.
        size: texture side in texels.

    Returns:
        ``(size, size, 3)`` uint8 sRGB, row 0 at the top.
    """
    c = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(c, 1.0 - c)  # row 0 at the top is v = 1
    du, dv = u - 0.5, v - 0.5
    rho = np.clip(np.hypot(du, dv), 0.0, 0.5)
    theta = 2.0 * np.arcsin(rho / 0.5)  # inverse of the Lambert map: ρ = 0.5·sin(θ/2)
    phi = np.arctan2(dv, du)
    iris = np.asarray(iris_color, dtype=np.float64) / 255.0
    sclera = np.array([0.93, 0.91, 0.88])
    # Sclera gets slightly pinker towards the back (blood vessels near the muscles).
    back = np.clip((theta - IRIS_HALF_ANGLE) / np.pi, 0.0, 1.0)[..., None]
    img = sclera * (1 - 0.25 * back) + np.array([0.85, 0.55, 0.5]) * 0.25 * back
    t = np.clip((theta - PUPIL_HALF_ANGLE) / (IRIS_HALF_ANGLE - PUPIL_HALF_ANGLE), 0.0, 1.0)
    fibres = 1.0 + 0.12 * np.sin(phi * 37.0) * np.sin(phi * 11.0 + 3.0 * t)
    iris_img = iris[None, None] * fibres[..., None] * (0.8 + 0.35 * t[..., None])
    limbus = np.clip((t - 0.85) / 0.15, 0.0, 1.0)[..., None]
    iris_img = iris_img * (1 - 0.6 * limbus)
    in_iris = (theta < IRIS_HALF_ANGLE)[..., None]
    img = np.where(in_iris, iris_img, img)
    img = np.where((theta < PUPIL_HALF_ANGLE)[..., None], np.array([0.03, 0.03, 0.035]), img)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def iris_color_from_photo(photo: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """Estimate the iris colour from the photo's eyes (the baked albedo has no eyes).

    With dense Face Mesh points (``(478, 2)``) each iris is the disc through its four ring
    points around its centre (468-472, 473-477); the pixels between 40 % and 90 % of its
    radius (outside the pupil, inside the limbus) that lie inside the eyelid contour are
    taken. With 68 points the pixels inside each eye polygon (36-41, 42-47) whose
    luminance lies between the polygon's 10th and 30th percentile are taken (darker than
    the sclera, brighter than pupil and lashes). Glints (the brightest tenth) are dropped;
    the result is the median over both eyes.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(68, 2)`` or ``(478, 2)`` photo pixels.

    Returns:
        ``(3,)`` uint8 sRGB, or None when the eyes give fewer than 8 pixels.
    """
    import cv2  # Imported here so that msma_engine.result (which names Eyeballs) stays NumPy-only.

    from msma_engine.photo_mask import eye_contours

    img = np.asarray(photo)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ShapeError(f"photo must be (H, W, 3), got {img.shape}")
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2 or pts.shape[0] not in (68, 478):
        raise ShapeError(f"landmarks must be (68, 2) or (478, 2), got {pts.shape}")
    pts = pts[:, :2]
    h, w = img.shape[:2]
    samples = []
    for k, contour in enumerate(eye_contours(pts)):
        lo = np.floor(np.maximum(contour.min(0) - 2, 0)).astype(int)
        hi = np.ceil(np.minimum(contour.max(0) + 2, [w, h])).astype(int)
        if np.any(hi <= lo):
            continue
        win = img[lo[1]:hi[1], lo[0]:hi[0]].reshape(-1, 3).astype(np.float64)
        inside = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
        cv2.fillPoly(inside, [np.round((contour - lo) * 4).astype(np.int32)], 1, shift=2)
        inside = inside.reshape(-1) > 0
        lum = win.mean(-1)
        if pts.shape[0] == 478:
            centre = pts[468 + 5 * k]
            radius = np.linalg.norm(pts[469 + 5 * k:473 + 5 * k] - centre, axis=1).mean()
            yy, xx = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]]
            x, y = xx.reshape(-1) + 0.5, yy.reshape(-1) + 0.5
            r = np.hypot(x - centre[0], y - centre[1]) / max(radius, 1e-6)
            pick = inside & (r > 0.4) & (r < 0.9)
        else:
            if inside.sum() < 8:
                continue
            q10, q30 = np.percentile(lum[inside], [10, 30])
            pick = inside & (lum >= q10) & (lum <= q30)
        if pick.sum() >= 4:
            keep = pick & (lum <= np.percentile(lum[pick], 90))
            samples.append(win[keep])
    samples = np.concatenate(samples) if samples else np.zeros((0, 3))
    if len(samples) < 8:
        return None
    return np.clip(np.median(samples, axis=0).round(), 0, 255).astype(np.uint8)


def _seat(verts: np.ndarray, rim: np.ndarray, front: np.ndarray, radius: float,
          lid_offsets: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Centre and radius of the eyeball behind one eyelid opening (and its closed lids)."""
    rim_pts = verts[rim]
    centre = rim_pts.mean(axis=0)
    # An eyeball wider than the opening's width would show its edge around the lids.
    radius = float(min(radius, 0.55 * np.ptp(rim_pts[:, 0])))
    pts = verts[np.union1d(rim, front)]
    if lid_offsets is not None and len(lid_offsets):
        pts = np.concatenate([pts, (pts[None] + lid_offsets).reshape(-1, 3)])
    d2 = np.sum((pts[:, :2] - centre[:2]) ** 2, axis=1)
    over = d2 < radius ** 2
    # Highest centre z with the sphere GAP behind every skin vertex above or below it.
    cz = np.min(pts[over, 2] - GAP - np.sqrt(radius ** 2 - d2[over])) if over.any() else centre[2] - radius
    return np.array([centre[0], centre[1], cz]), radius


def eyeballs_for(model, vertices_neutral: np.ndarray, iris_color=None, *, segments: int = 24, rings: int = 16,
                 texture_size: int = 512, radius: float = EYE_RADIUS) -> Eyeballs | None:
    """Eyeballs seated in the sockets of one neutral shape.

    Args:
        model: the face model the shape comes from (sockets are found once per model).
        vertices_neutral: ``(V, 3)`` identity shape without expression, metres, model frame.
        iris_color: sRGB ``(3,)`` 0-255 for the iris, default :data:`DEFAULT_IRIS_COLOR`.
        segments, rings: sphere resolution.
        texture_size: side of the eye texture.
        radius: wanted eyeball radius, metres.

    Returns:
        :class:`Eyeballs`, or None when the model has no eye sockets.

    Raises:
        ShapeError: ``vertices_neutral`` is not ``(V, 3)`` for this model.
    """
    verts = np.asarray(vertices_neutral, dtype=np.float64)
    n = int(as_numpy(model.mean_shape).shape[0])
    if verts.shape != (n, 3):
        raise ShapeError(f"vertices_neutral must be ({n}, 3) for this model, got {verts.shape}")
    sockets = find_eye_sockets(model)
    if sockets is None:
        logger.info("face model %r has no eye-socket UV islands: no eyeballs", getattr(model, "name", "?"))
        return None
    unit, tris, uvs, uv_tris = uv_sphere(segments, rings)
    names = list(getattr(model, "expression_names", []))
    exp_basis = as_numpy(model.exp_basis) if names else None
    eyes = {}
    for side in ("L", "R"):
        rim, front = sockets.rim[side], sockets.front[side]
        lid_keys = [names.index(k + _SIDE_SUFFIX[side]) for k in _LID_KEYS if k + _SIDE_SUFFIX[side] in names]
        lid_offsets = (exp_basis[lid_keys][:, np.union1d(rim, front)].astype(np.float64) if lid_keys
                       else np.zeros((0, 0, 3)))
        centre, r = _seat(verts, rim, front, radius, lid_offsets)
        eyes[side] = Eyeball(side=side, centre=centre, radius=r, vertices=centre + r * unit,
                             rim=rim, front=front, lid_offsets=lid_offsets)
    iris = np.asarray(DEFAULT_IRIS_COLOR if iris_color is None else iris_color, dtype=np.float64)
    if iris.shape != (3,):
        raise ShapeError(f"iris_color must be (3,) sRGB, got {iris.shape}")
    iris = np.clip(iris, 0, 255).round().astype(np.uint8)
    return Eyeballs(left=eyes["L"], right=eyes["R"], triangles=tris, uv_coords=uvs, uv_triangles=uv_tris,
                    texture=eye_texture(iris, texture_size), iris_color=iris, wanted_radius=float(radius))


def look_rotation(side: str, direction: str, degrees: float) -> np.ndarray:
    """``(3, 3)`` rotation turning an eye's forward axis (+z) towards ``direction``.

    Args:
        side: ``"L"`` (subject's left, +x) or ``"R"``.
        direction: ``"In"`` (towards the nose), ``"Out"``, ``"Up"`` or ``"Down"``.
        degrees: turn angle.
    """
    out_x = 1.0 if side == "L" else -1.0
    target = {"Out": (out_x, 0.0), "In": (-out_x, 0.0), "Up": (0.0, 1.0), "Down": (0.0, -1.0)}
    if side not in _SIDE_SUFFIX or direction not in target:
        raise ShapeError(f"look_rotation needs side L/R and direction In/Out/Up/Down, got {side!r}, {direction!r}")
    dx, dy = target[direction]
    axis = np.cross([0.0, 0.0, 1.0], [dx, dy, 0.0])  # unit: z is orthogonal to (dx, dy, 0)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def eye_look_targets(eye: Eyeball, expression_names: list[str]) -> tuple[list[str], np.ndarray]:
    """The ``eyeLook*`` turns of one eyeball as vertex offsets at weight 1.

    Offsets are exact at weights 0 and 1 and linear in between (at weight 0.5 of a 25° turn
    the eyeball is 2.4 % smaller, 0.3 mm on a 12 mm radius), which is what glTF morph
    targets and Blender shape keys can express.

    Args:
        eye: one eyeball.
        expression_names: the face's expression names; only the ``eyeLook{dir}{side}``
            names present are returned, in this order.

    Returns:
        ``names`` and ``(K, N, 3)`` offsets, metres.
    """
    names, deltas = [], []
    suffix = _SIDE_SUFFIX[eye.side]
    rel = np.asarray(eye.vertices, dtype=np.float64) - eye.centre
    for name in expression_names:
        for direction, degrees in EYE_LOOK_DEGREES.items():
            if name == f"eyeLook{direction}{suffix}":
                names.append(name)
                deltas.append(rel @ look_rotation(eye.side, direction, degrees).T - rel)
    return names, np.asarray(deltas, dtype=np.float64).reshape(len(names), len(rel), 3)
