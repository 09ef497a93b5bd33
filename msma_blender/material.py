"""The face material: baked albedo image × the photo's spherical-harmonic lighting.

The node group "MSMA SH Lighting" evaluates the engine's 3-band SH irradiance
(docs/CONVENTIONS.md, Deep3DFaceRecon's constants) from the shading normal:

    irradiance_c = Σ_k basis_k(n) · coeff_{c,k},   colour = albedo × irradiance

The normal is Blender's world-space normal converted to the engine frame
(``engine x = X, y = Z, z = −Y``, from :mod:`.conversion`); the object sits at its posed
transform, so this is the engine's posed normal. The group's inputs are the albedo, a
"Lighting" factor (0 = plain albedo, 1 = lit as in the photo) and nine vectors "SH 0".."SH 8"
holding the (R, G, B) coefficients of each basis function, with Deep3DFaceRecon's 0.8 DC
offset already added.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np

from msma_engine.sh_constants import A0 as _A0, A1 as _A1, A2 as _A2, C0 as _C0, C1 as _C1, C2 as _C2, N_SH, SH_INIT_DC

from . import conversion

__all__ = [
    "SH_GROUP_NAME",
    "SH_GROUP_VERSION",
    "sh_group_inputs",
    "ensure_sh_node_group",
    "new_albedo_image",
    "new_image_material",
    "new_face_material",
    "use_plain_albedo",
]

SH_GROUP_NAME = "MSMA SH Lighting"
# Stored on the group; a group with another version (or a user's group of the same name)
# is left alone and a new one is created.
SH_GROUP_VERSION = 1


def sh_group_inputs(sh_coeffs: np.ndarray) -> np.ndarray:
    """Engine ``(27,)`` SH coefficients R(9) G(9) B(9) → ``(9, 3)`` group inputs (DC offset added)."""
    sh = np.asarray(sh_coeffs, dtype=np.float64).reshape(-1)
    if sh.shape[0] != 3 * N_SH:
        raise ValueError(f"SH coefficients must be (27,), got {sh.shape}")
    per_basis = sh.reshape(3, N_SH).T.copy()
    per_basis[0] += SH_INIT_DC
    return per_basis


def ensure_sh_node_group() -> bpy.types.ShaderNodeTree:
    """The shared SH node group: reuse ours if present, otherwise build a new one."""
    for group in bpy.data.node_groups:
        if group.get("msma_sh_version") == SH_GROUP_VERSION and group.bl_idname == "ShaderNodeTree":
            return group
    return _build_sh_node_group()


def _build_sh_node_group() -> bpy.types.ShaderNodeTree:
    group = bpy.data.node_groups.new(SH_GROUP_NAME, "ShaderNodeTree")
    group["msma_sh_version"] = SH_GROUP_VERSION
    iface = group.interface
    iface.new_socket("Albedo", in_out="INPUT", socket_type="NodeSocketColor")
    light = iface.new_socket("Lighting", in_out="INPUT", socket_type="NodeSocketFloat")
    light.subtype = "FACTOR"
    light.min_value, light.max_value, light.default_value = 0.0, 1.0, 1.0
    for k in range(N_SH):
        iface.new_socket(f"SH {k}", in_out="INPUT", socket_type="NodeSocketVector")
    iface.new_socket("Color", in_out="OUTPUT", socket_type="NodeSocketColor")
    iface.new_socket("Irradiance", in_out="OUTPUT", socket_type="NodeSocketColor")

    nodes, links = group.nodes, group.links
    g_in = nodes.new("NodeGroupInput")
    g_in.location = (-1400, 0)
    g_out = nodes.new("NodeGroupOutput")
    g_out.location = (900, 0)
    geom = nodes.new("ShaderNodeNewGeometry")
    geom.location = (-1400, 400)
    sep = nodes.new("ShaderNodeSeparateXYZ")
    sep.location = (-1200, 400)
    links.new(geom.outputs["Normal"], sep.inputs[0])

    col = [0]  # x position of the next math node, so the graph is readable when opened

    def math_node(op: str, a, b=None):
        node = nodes.new("ShaderNodeMath")
        node.operation = op
        node.location = (-1000 + 40 * (col[0] % 10), 600 - 60 * col[0])
        col[0] += 1
        for sock, val in zip(node.inputs, (a, b)):
            if val is None:
                continue
            if isinstance(val, (int, float)):
                sock.default_value = float(val)
            else:
                links.new(val, sock)
        return node.outputs[0]

    # Engine-frame normal components from Blender's world normal.
    axes = conversion.engine_from_blender_normal_axes()
    comp = []
    for axis, sign in axes:
        out = sep.outputs[axis]
        comp.append(out if sign > 0 else math_node("MULTIPLY", out, -1.0))
    x, y, z = comp

    k1, k2 = _A1 * _C1, _A2 * _C2
    basis = [
        None,  # constant a0·c0, applied as a vector scale below
        math_node("MULTIPLY", y, -k1),
        math_node("MULTIPLY", z, k1),
        math_node("MULTIPLY", x, -k1),
        math_node("MULTIPLY", math_node("MULTIPLY", x, y), k2),
        math_node("MULTIPLY", math_node("MULTIPLY", y, z), -k2),
        math_node("MULTIPLY_ADD", math_node("MULTIPLY", z, z), 1.5 * k2 / math.sqrt(3.0)),
        math_node("MULTIPLY", math_node("MULTIPLY", x, z), -k2),
        math_node("MULTIPLY", math_node("SUBTRACT", math_node("MULTIPLY", x, x), math_node("MULTIPLY", y, y)),
                  0.5 * k2),
    ]
    # MULTIPLY_ADD's third input: 0.5·k2/√3·(3z² − 1) = (1.5·k2/√3)·z² − 0.5·k2/√3.
    basis[6].node.inputs[2].default_value = -0.5 * k2 / math.sqrt(3.0)

    total = None
    for k in range(N_SH):
        scale = nodes.new("ShaderNodeVectorMath")
        scale.operation = "SCALE"
        scale.location = (-200, 500 - 120 * k)
        links.new(g_in.outputs[f"SH {k}"], scale.inputs[0])
        if basis[k] is None:
            scale.inputs["Scale"].default_value = _A0 * _C0
        else:
            links.new(basis[k], scale.inputs["Scale"])
        if total is None:
            total = scale.outputs[0]
            continue
        add = nodes.new("ShaderNodeVectorMath")
        add.operation = "ADD"
        add.location = (100, 500 - 120 * k)
        links.new(total, add.inputs[0])
        links.new(scale.outputs[0], add.inputs[1])
        total = add.outputs[0]

    shaded = nodes.new("ShaderNodeMix")
    shaded.data_type = "RGBA"
    shaded.blend_type = "MULTIPLY"
    shaded.location = (400, 0)
    _socket(shaded.inputs, "Factor_Float").default_value = 1.0
    links.new(g_in.outputs["Albedo"], _socket(shaded.inputs, "A_Color"))
    links.new(total, _socket(shaded.inputs, "B_Color"))

    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MIX"
    mix.location = (650, 0)
    links.new(g_in.outputs["Lighting"], _socket(mix.inputs, "Factor_Float"))
    links.new(g_in.outputs["Albedo"], _socket(mix.inputs, "A_Color"))
    links.new(_socket(shaded.outputs, "Result_Color"), _socket(mix.inputs, "B_Color"))
    links.new(_socket(mix.outputs, "Result_Color"), g_out.inputs["Color"])
    links.new(total, g_out.inputs["Irradiance"])
    return group


def _socket(sockets, identifier: str):
    """A socket by identifier: the Mix node has several sockets named "A" (one per data type)."""
    return next(s for s in sockets if s.identifier == identifier)


def new_albedo_image(name: str, texture: np.ndarray, mode: str = "PACK",
                     directory: str | Path | None = None) -> bpy.types.Image:
    """A new image holding the baked albedo.

    Args:
        name: wanted image name (Blender adds a suffix if taken).
        texture: ``(H, W, 3)`` uint8 sRGB, row 0 at the top.
        mode: ``"PACK"`` packs the PNG into the .blend; ``"SAVE"`` writes ``<name>.png`` into
            ``directory`` (a new file name if one exists — never overwrites) and links it.
        directory: folder for ``"SAVE"``.

    Returns:
        The image (``source == 'FILE'`` and either packed or linked to the saved PNG).
    """
    h, w = np.asarray(texture).shape[:2]
    image = bpy.data.images.new(name, width=w, height=h, alpha=False)
    image.colorspace_settings.name = "sRGB"
    image.pixels.foreach_set(conversion.texture_to_blender_pixels(texture))
    image.file_format = "PNG"
    if mode == "PACK":
        image.pack()
    elif mode == "SAVE":
        if directory is None:
            raise ValueError("saving the albedo image needs a directory (save the .blend file first)")
        path = _unique_path(Path(directory), bpy.path.clean_name(image.name), ".png")
        image.filepath_raw = str(path)
        image.save()
    else:
        raise ValueError(f"texture mode must be 'PACK' or 'SAVE', got {mode!r}")
    return image


def _unique_path(directory: Path, stem: str, suffix: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path, i = directory / f"{stem}{suffix}", 1
    while path.exists():
        path, i = directory / f"{stem}.{i:03d}{suffix}", i + 1
    return path


def new_image_material(name: str, image: bpy.types.Image, image_node_name: str,
                       roughness: float) -> tuple[bpy.types.Material, bpy.types.Node, bpy.types.Node]:
    """A new node material: Principled BSDF → output, plus an image-texture node (not linked).

    Returns:
        ``(material, principled_bsdf_node, image_node)``; the image node is the active node
        (Workbench's texture colour mode shows the active image node).
    """
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # node materials are the only kind from Blender 5.0
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None) or nodes.new("ShaderNodeBsdfPrincipled")
    out = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None) or nodes.new("ShaderNodeOutputMaterial")
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.location, out.location = (300, 300), (600, 300)
    tex = nodes.new("ShaderNodeTexImage")
    tex.name = tex.label = image_node_name
    tex.image = image
    tex.location = (-500, 300)
    nodes.active = tex
    return mat, bsdf, tex


def new_face_material(name: str, image: bpy.types.Image, sh_coeffs: np.ndarray,
                      lighting: float = 1.0, texture: np.ndarray | None = None) -> bpy.types.Material:
    """A new material: image texture → SH lighting group → Principled BSDF.

    Args:
        name: wanted material name.
        image: the albedo image.
        sh_coeffs: ``(27,)`` engine SH coefficients R(9) G(9) B(9).
        lighting: initial "Lighting" factor (1 = photo lighting, 0 = plain albedo).
        texture: the image's ``(H, W, 3)`` uint8 source, when at hand: its mean gives the
            viewport colour without reading the image's pixels back (0.1-0.3 s at 1024²).
    """
    mat, bsdf, tex = new_image_material(name, image, "MSMA Albedo", roughness=0.6)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    group_node = nodes.new("ShaderNodeGroup")
    group_node.name = group_node.label = "MSMA SH Lighting"
    group_node.node_tree = ensure_sh_node_group()
    group_node.location = (0, 300)
    group_node.inputs["Lighting"].default_value = float(lighting)
    for k, rgb in enumerate(sh_group_inputs(sh_coeffs)):
        group_node.inputs[f"SH {k}"].default_value = tuple(float(c) for c in rgb)
    links.new(tex.outputs["Color"], group_node.inputs["Albedo"])
    links.new(group_node.outputs["Color"], bsdf.inputs["Base Color"])

    # Solid-mode viewport colour: the mean albedo (every 7th texel is plenty).
    if texture is not None:
        mean = np.asarray(texture).reshape(-1, 3)[::7].mean(axis=0) / 255.0
    else:
        pixels = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(pixels)
        mean = pixels.reshape(-1, 4)[::7, :3].mean(axis=0)
    mat.diffuse_color = (*(float(c) for c in mean), 1.0)
    return mat


def use_plain_albedo(mat: bpy.types.Material) -> None:
    """Wire the albedo image straight into Base Color (for exporters, which cannot read the SH group)."""
    nodes = mat.node_tree.nodes
    tex, bsdf = nodes.get("MSMA Albedo"), next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if tex is not None and bsdf is not None:
        mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])


def new_plain_material(name: str, color, roughness: float = 0.5) -> bpy.types.Material:
    """A new Principled BSDF material of one linear RGB ``color`` (teeth, tongue)."""
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None) or nodes.new("ShaderNodeBsdfPrincipled")
    out = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None) or nodes.new("ShaderNodeOutputMaterial")
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    bsdf.inputs["Base Color"].default_value = (*(float(c) for c in color), 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    mat.diffuse_color = (*(float(c) for c in color), 1.0)
    return mat
