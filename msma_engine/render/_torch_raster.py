"""Pure-PyTorch rasterizer: a no-grad z-buffer pass, then a differentiable barycentric pass.

Visibility: every triangle is expanded into the pixel centres of its (clipped) bounding
box, vectorised over all triangles at once; each candidate's barycentrics and depth come
from per-triangle affine coefficients, and the nearest one per pixel wins a
``scatter_reduce(amin)`` over int64 keys ``float32_bits(depth) << 32 | triangle``
(positive floats order like their bit patterns; ties go to the lower triangle id).

Gradients: the winning triangle's barycentrics at each covered pixel centre are recomputed
from the clip positions in a small autograd Function with an analytic backward, so they flow
to the positions. Like nvdiffrast without ``antialias``, coverage itself (silhouettes,
occlusion boundaries) has no gradient.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["visibility", "covered_barycentrics"]

# Inside test tolerance on screen-space barycentrics, so pixel centres lying exactly on an
# edge shared by two triangles are claimed by both (watertight) instead of by neither.
_EDGE_EPS = {torch.float64: 1e-12, torch.float32: 1e-6}
_CHUNK = 1 << 22  # candidate pixels per z-buffer chunk
_W_MIN = 1e-8  # triangles with a vertex at or behind the camera plane are dropped (no clipping)


def _ndc_to_pixel(pos: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, ...]:
    w = pos[..., 3]
    px = (pos[..., 0] / w + 1.0) * (0.5 * width)
    py = (1.0 - pos[..., 1] / w) * (0.5 * height)
    return px, py, pos[..., 2] / w, w


@torch.no_grad()
def visibility(
    pos: torch.Tensor, tris: torch.Tensor, height: int, width: int, cull_backfaces: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest triangle per pixel.

    Args:
        pos: ``(B, V, 4)`` clip positions (no grad needed).
        tris: ``(F, 3)`` int64.
        height, width: resolution in pixels.
        cull_backfaces: drop triangles that are clockwise on screen (seen from behind).

    Returns:
        ``pixel_index`` ``(N,)`` flat indices into ``B·H·W`` of covered pixels (sorted) and
        ``pixel_triangle`` ``(N,)`` the triangle visible there.
    """
    bsz, nv = pos.shape[:2]
    nf = tris.shape[0]
    dev = pos.device
    px, py, zn, w = _ndc_to_pixel(pos, height, width)  # (B, V) each
    per_vertex = torch.stack([px, py, zn, w], dim=-1).view(-1, 4)
    flat_tris = (tris.unsqueeze(0) + (torch.arange(bsz, device=dev) * nv).view(-1, 1, 1)).view(-1)
    corners = per_vertex.index_select(0, flat_tris).view(-1, 3, 4)  # (B·F, 3, [x, y, z_ndc, w])
    x, y = corners[..., 0], corners[..., 1]

    # Twice the signed area in pixel space; y points down, so CCW in NDC is negative here.
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    keep = (corners[..., 3].amin(dim=1) > _W_MIN) & torch.isfinite(area) & (area != 0)
    if cull_backfaces:
        keep &= area < 0
    # Pixel-centre bounding boxes: columns j with j + 0.5 in [min x, max x].
    x0 = torch.ceil(x.amin(1) - 0.5).clamp(min=0)
    x1 = torch.floor(x.amax(1) - 0.5).clamp(max=width - 1)
    y0 = torch.ceil(y.amin(1) - 0.5).clamp(min=0)
    y1 = torch.floor(y.amax(1) - 0.5).clamp(max=height - 1)
    keep &= (x1 >= x0) & (y1 >= y0)
    tid = keep.nonzero().squeeze(1)
    if tid.numel() == 0:
        empty = torch.empty(0, dtype=torch.long, device=dev)
        return empty, empty

    c = corners.index_select(0, tid)
    x, y, z, iw = c[..., 0], c[..., 1], c[..., 2], 1.0 / c[..., 3]
    box = torch.stack([x0, y0, x1, y1], dim=1).index_select(0, tid).long()
    bw = box[:, 2] - box[:, 0] + 1
    bh = box[:, 3] - box[:, 1] + 1

    # Barycentrics are affine in screen space and vanish at vertex 2 for k = 0, 1:
    # b_k(p) = a_k·(px − x2) + c_k·(py − y2), b_2 = 1 − b0 − b1; 1/w and z/w are affine too.
    # Offsets from vertex 2 (not absolute pixel positions) keep float32 free of cancellation.
    inv = 1.0 / area.index_select(0, tid)
    a0 = (y[:, 1] - y[:, 2]) * inv
    c0 = (x[:, 2] - x[:, 1]) * inv
    a1 = (y[:, 2] - y[:, 0]) * inv
    c1 = (x[:, 0] - x[:, 2]) * inv
    q = torch.stack([iw, z], dim=2)  # (T, 3, 2): per-vertex 1/w and NDC z
    dq0, dq1 = q[:, 0] - q[:, 2], q[:, 1] - q[:, 2]
    coef = torch.cat([
        torch.stack([a0, c0, a1, c1, box[:, 0] + 0.5 - x[:, 2], box[:, 1] + 0.5 - y[:, 2]], dim=1),
        a0[:, None] * dq0 + a1[:, None] * dq1,
        c0[:, None] * dq0 + c1[:, None] * dq1,
        q[:, 2],
    ], dim=1)  # (T, 12): a0 c0 a1 c1 ox oy | d(1/w, z)/dpx | d(1/w, z)/dpy | (1/w, z) at vertex 2

    # Expand triangles into the pixel centres of their bounding boxes, in chunks of about
    # _CHUNK candidates so a few huge triangles (or a big batch) cannot exhaust memory.
    counts = bw * bh
    ends = torch.cumsum(counts, 0)
    marks = torch.arange(_CHUNK, max(int(ends[-1]), _CHUNK), _CHUNK, device=dev)
    bounds = torch.searchsorted(ends, marks, right=True).tolist()
    splits = [0, *sorted(set(bounds) - {0, tid.numel()}), tid.numel()]
    sentinel = torch.iinfo(torch.int64).max
    zbuf = torch.full((bsz * height * width,), sentinel, dtype=torch.int64, device=dev)
    eps = _EDGE_EPS.get(pos.dtype, 1e-6)
    for lo, hi in zip(splits[:-1], splits[1:]):
        if hi > lo:
            pix, key = _candidates(coef[lo:hi], box[lo:hi], bw[lo:hi], counts[lo:hi], tid[lo:hi],
                                   nf, height, width, eps)
            zbuf.scatter_reduce_(0, pix, key, reduce="amin")
    pixel_index = (zbuf != sentinel).nonzero().squeeze(1)
    pixel_triangle = zbuf[pixel_index] & 0xFFFFFFFF
    return pixel_index, pixel_triangle


def _candidates(coef, box, bw, counts, tid, nf, height, width, eps):
    """Covered pixel centres of a chunk of triangles → flat pixel indices and z-buffer keys."""
    dev = coef.device
    cand_t = torch.repeat_interleave(torch.arange(tid.numel(), device=dev), counts)
    starts = torch.cumsum(counts, 0) - counts
    ints = torch.stack([starts, bw, box[:, 0], box[:, 1]], dim=1).index_select(0, cand_t)
    local = torch.arange(cand_t.numel(), device=dev) - ints[:, 0]
    row_off = torch.div(local, ints[:, 1], rounding_mode="floor")
    col_off = local - row_off * ints[:, 1]
    # Two stages: the 2D inside test on every candidate, the depth only on the survivors.
    cf = coef[:, :6].index_select(0, cand_t)
    dx = col_off.to(coef.dtype) + cf[:, 4]  # pixel centre − vertex 2
    dy = row_off.to(coef.dtype) + cf[:, 5]
    b0 = torch.addcmul(cf[:, 0] * dx, cf[:, 1], dy)
    b1 = torch.addcmul(cf[:, 2] * dx, cf[:, 3], dy)
    sel = ((b0 >= -eps) & (b1 >= -eps) & (b0 + b1 <= 1.0 + eps)).nonzero().squeeze(1)
    cand_t, dx, dy = cand_t.index_select(0, sel), dx.index_select(0, sel), dy.index_select(0, sel)
    pix_col = ints[:, 2].index_select(0, sel) + col_off.index_select(0, sel)
    pix_row = ints[:, 3].index_select(0, sel) + row_off.index_select(0, sel)
    cf = coef[:, 6:].index_select(0, cand_t)
    inv_w = torch.addcmul(torch.addcmul(cf[:, 4], cf[:, 0], dx), cf[:, 2], dy)
    z_ndc = torch.addcmul(torch.addcmul(cf[:, 5], cf[:, 1], dx), cf[:, 3], dy)
    sel = ((z_ndc >= -1.0) & (z_ndc <= 1.0) & (inv_w > 0)).nonzero().squeeze(1)
    gtri = tid.index_select(0, cand_t.index_select(0, sel))  # index in the flattened B·F list
    batch = torch.div(gtri, nf, rounding_mode="floor")
    pix = (batch * height + pix_row.index_select(0, sel)) * width + pix_col.index_select(0, sel)
    depth = (1.0 / inv_w.index_select(0, sel)).float()
    return pix, (depth.view(torch.int32).long() << 32) | (gtri - batch * nf)


def covered_barycentrics(
    pos: torch.Tensor,
    tris: torch.Tensor,
    pixel_index: torch.Tensor,
    pixel_triangle: torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics and depth at covered pixel centres (differentiable).

    Args:
        pos: ``(B, V, 4)`` clip positions (may require grad).
        tris: ``(F, 3)`` int64.
        pixel_index, pixel_triangle: ``(N,)`` from :func:`visibility`.
        height, width: resolution.

    Returns:
        ``(N, 3)`` barycentrics and ``(N,)`` camera depth ``w``.
    """
    bsz, nv = pos.shape[:2]
    hw = height * width
    batch = torch.div(pixel_index, hw, rounding_mode="floor")
    rem = pixel_index - batch * hw
    row = torch.div(rem, width, rounding_mode="floor")
    col = rem - row * width
    vid = (tris[pixel_triangle] + (batch * nv).unsqueeze(1)).reshape(-1)
    # Pixel centres in NDC: barycentrics are invariant to the affine NDC → pixel map.
    cx = (2.0 * col.to(pos.dtype) + 1.0) / width - 1.0
    cy = 1.0 - (2.0 * row.to(pos.dtype) + 1.0) / height
    return _BarycentricsFn.apply(pos.reshape(-1, 4), vid, cx, cy)


class _BarycentricsFn(torch.autograd.Function):
    """Barycentrics/depth of pixel centres in gathered triangles, with an analytic backward.

    Per pixel, with NDC offsets ``d_k = (X_k/W_k − cx, Y_k/W_k − cy)`` of the three corners:
    ``l_k`` = signed area opposite corner k, ``m_k = l_k / W_k``, ``T = Σ m``;
    barycentrics ``m_k / T`` and depth ``Σ l / T``.
    """

    @staticmethod
    def forward(ctx, pos_flat, vid, cx, cy):
        p = pos_flat.index_select(0, vid).view(-1, 3, 4)
        w = p[..., 3]
        xn, yn = p[..., 0] / w, p[..., 1] / w
        dx, dy = xn - cx.unsqueeze(1), yn - cy.unsqueeze(1)
        l = _opposite_areas(dx, dy)
        m = l / w
        total = m.sum(dim=1, keepdim=True)
        bary = m / total
        depth = l.sum(dim=1) / total.squeeze(1)
        ctx.save_for_backward(vid, w, xn, yn, dx, dy, l, m, total, bary, depth)
        ctx.num_rows = pos_flat.shape[0]
        return bary, depth

    @staticmethod
    @once_differentiable
    def backward(ctx, g_bary, g_depth):
        vid, w, xn, yn, dx, dy, l, m, total, bary, depth = ctx.saved_tensors
        if g_bary is None:
            g_bary = torch.zeros_like(bary)
        if g_depth is None:
            g_depth = torch.zeros_like(depth)
        inv_t = 1.0 / total  # (N, 1)
        # depth = Σl / T and bary = m / T.
        g_total = -(g_depth.unsqueeze(1) * depth.unsqueeze(1) + (g_bary * bary).sum(1, keepdim=True)) * inv_t
        g_m = g_bary * inv_t + g_total
        g_l = g_m / w + (g_depth.unsqueeze(1) * inv_t)
        g_w = -g_m * m / w
        # l_k = dx_a·dy_b − dx_b·dy_a with (a, b) = (k+1, k+2) mod 3.
        x0, x1, x2 = dx.unbind(1)
        y0, y1, y2 = dy.unbind(1)
        g0, g1, g2 = g_l.unbind(1)
        g_dx = torch.stack([g2 * y1 - g1 * y2, g0 * y2 - g2 * y0, g1 * y0 - g0 * y1], dim=1)
        g_dy = torch.stack([g1 * x2 - g2 * x1, g2 * x0 - g0 * x2, g0 * x1 - g1 * x0], dim=1)
        g_x = g_dx / w
        g_y = g_dy / w
        g_w = g_w - g_x * xn - g_y * yn
        grad = torch.stack([g_x, g_y, torch.zeros_like(g_x), g_w], dim=-1).view(-1, 4)
        g_pos = grad.new_zeros(ctx.num_rows, 4).index_add_(0, vid, grad)
        return g_pos, None, None, None


def _opposite_areas(dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` signed areas of the sub-triangles (centre, corner k+1, corner k+2)."""
    x0, x1, x2 = dx.unbind(1)
    y0, y1, y2 = dy.unbind(1)
    return torch.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], dim=1)
