"""Run by scripts/check_real_blender.sh inside a real Blender: build a pickled FaceResult with the
installed extension's own writer (what `msma reconstruct` runs after the engine), then reopen
the files and inspect them. Prints one ``CHECK PASS|FAIL <name>`` line per check."""
import dataclasses
import pickle
import sys
from pathlib import Path
import bpy

from bl_ext.user_default.msma_face import commands

work = Path(sys.argv[sys.argv.index("--") + 1])
data = pickle.loads((work / "astronaut_result.pkl").read_bytes())
# The photo path as seen inside the chroot.
results = [dataclasses.replace(r, image_path=str(work / "astronaut.png")) for r in data["results"]]
startup_objects = {o.name for o in bpy.data.objects}
out = work / "out"
out.mkdir(exist_ok=True)

def check(name, ok, detail=""):
    print(f"CHECK {'PASS' if ok else 'FAIL'} {name} {detail}".rstrip(), flush=True)

def write(path, fmt, res, *extra):
    args = commands.build_parser().parse_args(["reconstruct", "x.png", "-o", str(path), "--force", *extra])
    try:
        commands._write(path, fmt, res, args)
        return None
    except Exception as exc:  # reported as a FAIL line with its reason
        import traceback

        traceback.print_exc()
        return exc

err = write(out / "astronaut.blend", "blend", results, "--camera")
check("write .blend (mesh, shape keys, SH material, camera)", err is None and (out / "astronaut.blend").is_file(),
      repr(err or ""))
err = write(out / "astronaut.glb", "glb", results)
check("export .glb", err is None and (out / "astronaut.glb").stat().st_size > 10000, repr(err or ""))
err = write(out / "astronaut.fbx", "fbx", results)
check("export .fbx", err is None and (out / "astronaut.fbx").stat().st_size > 10000, repr(err or ""))
err = write(out / "anim.blend", "blend", results * 3, "--animation", "--smoothing", "1")
check("write animated .blend (3 frames)", err is None and (out / "anim.blend").is_file(), repr(err or ""))
err = write(out / "preview.blend", "blend", results, "--preview", str(out / "preview.png"), "--preview-over-photo")
check("Cycles preview over photo", err is None and (out / "preview.png").is_file(), repr(err or ""))
left = [o.name for o in bpy.data.objects if o.name not in startup_objects]
check("nothing left behind in the session", not left, str(left))

# Reopen the .blend as a user would.
bpy.ops.wm.open_mainfile(filepath=str(out / "astronaut.blend"))
obj = bpy.data.objects.get("astronaut")
r = results[0]
check("object 'astronaut' in the .blend", obj is not None and obj.type == "MESH")
if obj is not None:
    me = obj.data
    topo = r.topology
    # The face mesh: the model's quads (triangles for BFM09) plus the teeth and tongue, if any.
    n_v = len(r.vertices_neutral) + (len(r.mouth.vertices_neutral) if r.mouth is not None else 0)
    n_f = len(topo.polygons if topo.polygons is not None else topo.triangles) + (
        len(r.mouth.polygons) if r.mouth is not None else 0)
    check("vertex/face counts", len(me.vertices) == n_v and len(me.polygons) == n_f,
          f"{len(me.vertices)} v, {len(me.polygons)} f (expected {n_v} v, {n_f} f)")
    keys = me.shape_keys.key_blocks if me.shape_keys else []
    check("shape keys Basis + one per expression", len(keys) == 1 + len(topo.expression_names), f"{len(keys)} keys")
    mat = obj.active_material
    groups = [n.node_tree.name for n in mat.node_tree.nodes if n.type == "GROUP"] if mat else []
    check("material with the MSMA SH Lighting group", "MSMA SH Lighting" in groups, str(groups))
    imgs = [i.name for i in bpy.data.images if i.packed_file is not None]
    check("albedo (and eye) images packed", "astronaut albedo" in imgs and len(imgs) <= 2, str(imgs))
    check("photo camera is the scene camera", bpy.context.scene.camera is not None, str(bpy.context.scene.camera))
    check("msma_coeffs stored", len(obj["msma_coeffs"]) == len(r.coeffs))
bpy.ops.wm.open_mainfile(filepath=str(out / "anim.blend"))
obj = next((o for o in bpy.data.objects if o.type == "MESH"), None)
ad = obj.data.shape_keys.animation_data if obj else None
check("animated keys and pose", obj is not None and ad is not None and ad.action is not None
      and obj.animation_data is not None and obj.animation_data.action is not None)
