#!/usr/bin/env bash
# Check the built extension in a REAL Blender binary: Debian 13 (trixie)'s Blender 4.3 in a
# chroot (the bpy wheel the test suite uses cannot dispatch `blender --command`).
# Slow (first run: ~5 min, ~3.5 GB) and needs root; not part of the test suite.
#
#   sudo scripts/check_real_blender.sh [CHROOT_DIR]      # default $MSMA_CHROOT or /tmp/trixie
#   WITH_DEPS=1 sudo scripts/check_real_blender.sh       # also Debian's torch/scipy/opencv/...
#
# An existing chroot is reused. Prints one "PASS"/"FAIL" line per check ("XFAIL": a known
# limitation, not counted) and exits 1 when any check failed. WITH_DEPS=1 builds a face from a result that the repository's
# .venv reconstructs from the astronaut photo (mediapipe 0.10.21, which the engine's
# landmarker needs, has no wheel for Debian's Python 3.13), using the extension's own writer.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=${1:-${MSMA_CHROOT:-/tmp/trixie}}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=/tmp/msma_check            # inside the chroot
FAILED=0

say() { printf '%s\n' "$*"; }
result() {  # result NAME STATUS(0=pass) [detail]
  if [ "$2" -eq 0 ]; then say "PASS $1${3:+ ($3)}"; else say "FAIL $1${3:+ ($3)}"; FAILED=1; fi
}
in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=$WORK/home \
  BLENDER_USER_RESOURCES=$WORK/user LANG=C.UTF-8 bash -c "$1"; }
blender_run() { in_root "cd $WORK && blender -b $1"; }
# blender_err ARGS: run, keep stderr in $err (less Blender's own noise) and the exit status in $rc.
blender_err() {
  local tmp; tmp=$(mktemp)
  blender_run "$1" 2>"$tmp" >/dev/null; rc=$?
  err=$(grep -v -e '^Blender' -e 'could not get a list of mounted' "$tmp"); rm -f "$tmp"
}

[ "$(id -u)" -eq 0 ] || { say "error: run as root (debootstrap, chroot)"; exit 2; }

# 1. The chroot with Blender.
if [ ! -f "$ROOT/etc/debian_version" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
  t0=$SECONDS
  debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null || { say "FAIL debootstrap"; exit 1; }
  say "debootstrap: $((SECONDS - t0)) s"
fi
for d in proc sys dev; do mountpoint -q "$ROOT/$d" || mount --bind "/$d" "$ROOT/$d"; done
trap 'for d in dev sys proc; do umount "$ROOT/$d" 2>/dev/null; done' EXIT
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Debian's blender does not pull in numpy; official Blender builds ship it and the extension uses it.
PKGS="blender python3-numpy"
[ "${WITH_DEPS:-0}" = 1 ] && PKGS="$PKGS python3-torch python3-scipy python3-pil python3-opencv python3-skimage"
t0=$SECONDS
in_root "export DEBIAN_FRONTEND=noninteractive; dpkg -s $PKGS >/dev/null 2>&1 ||
  { apt-get update -q && apt-get install -y -q --no-install-recommends $PKGS; } >/dev/null"
result "apt-get install $PKGS" $? "$((SECONDS - t0)) s"
say "versions: $(in_root "dpkg-query -W -f '\${Package} \${Version}  ' blender python3 python3-numpy python3-torch 2>/dev/null")"

# 2. Install the built zip into a fresh user directory and enable it.
[ -f dist/msma_face-0.1.0.zip ] || .venv/bin/python build.py >/dev/null
rm -rf "$ROOT$WORK" && mkdir -p "$ROOT$WORK/home" "$ROOT$WORK/user"
cp dist/msma_face-0.1.0.zip "$ROOT$WORK/"
.venv/bin/python -c "import skimage.data, PIL.Image as I; I.fromarray(skimage.data.astronaut()).save('$ROOT$WORK/astronaut.png')"
out=$(blender_run "--factory-startup --python-expr 'import bpy; print(\"INSTALL\", bpy.ops.extensions.package_install_files(filepath=\"$WORK/msma_face-0.1.0.zip\", repo=\"user_default\", enable_on_install=True)); bpy.ops.wm.save_userpref()'" 2>&1)
grep -q "INSTALL {'FINISHED'}" <<<"$out"; result "install + enable the zip" $? "$(grep -m1 -iE 'error' <<<"$out")"

cat > "$ROOT$WORK/registered.py" <<'EOF'
import sys, bpy
mod = "bl_ext.user_default.msma_face"
m = sys.modules.get(mod)
ok = {
    "enabled in the preferences": mod in {a.module for a in bpy.context.preferences.addons},
    "all classes registered": m is not None and all(getattr(c, "is_registered", False) for c in m.classes),
    "operators": {"reconstruct_face", "add_images", "clear_images", "install_dependencies"} <= set(dir(bpy.ops.msma)),
    "sidebar panel": hasattr(bpy.types, "MSMA_PT_reconstruct"),
    "add-on preferences": mod in bpy.context.preferences.addons and bpy.context.preferences.addons[mod].preferences is not None,
    "scene settings": "msma" in bpy.types.Scene.bl_rna.properties.keys(),
    "engine wheel importable": __import__("importlib").util.find_spec("msma_engine.errors") is not None,
}
for name, good in ok.items():
    print(f"REG {'1' if good else '0'} {name}")
EOF
out=$(blender_run "--python $WORK/registered.py" 2>&1)
while read -r _ good name; do result "$name" $((1 - good)); done < <(grep '^REG ' <<<"$out")
grep -q '^REG ' <<<"$out" || result "registration script" 1 "$(tail -3 <<<"$out")"

# 3. The `msma` command line command.
out=$(blender_run "--command msma --help" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "usage: msma" <<<"$out"; result "blender -b --command msma --help" $? "rc=$rc"
out=$(blender_run "--command msma reconstruct --help" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q -- "--fit {default,fast,high,none}" <<<"$out"; result "blender -b --command msma reconstruct --help" $? "rc=$rc"
blender_err "--command msma reconstruct nope.png -o out/x.blend"
[ $rc -eq 1 ] && [ "$err" = "error: nope.png: no such file or folder" ]; result "missing photo: one error line, exit 1" $? "rc=$rc"

# Without the engine's dependencies (torch hidden when Debian's is installed): one line, exit 2.
blender_err "--python-expr 'import sys; sys.modules[\"torch\"] = None' --command msma reconstruct astronaut.png -o out/a.blend --fit fast"
[ $rc -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && ! grep -q Traceback <<<"$err" \
  && grep -q "^error: engine: missing Python dependencies: torch.*Install Dependencies.*pip install" <<<"$err"
result "no dependencies: one actionable error line, exit 2" $? "$err"

# 4. With Debian's torch & co.: the command on the astronaut, and the face built by Blender 4.3.
if in_root "python3 -c 'import torch'" 2>/dev/null; then
  blender_err "--command msma reconstruct astronaut.png -o out/a.blend --fit fast"
  ! grep -q Traceback <<<"$err" && [ "$(wc -l <<<"$err")" -eq 1 ]
  result "msma reconstruct astronaut.png: exits cleanly (rc=$rc)" $? "$err"
  if [ $rc -eq 0 ] && [ -f "$ROOT$WORK/out/a.blend" ]; then result "msma reconstruct wrote out/a.blend" 0
  else say "XFAIL msma reconstruct astronaut.png -> .blend (known, not counted: the engine's landmarker needs mediapipe 0.10.21, which has no wheel for Python 3.13)"; fi

  PYTHONPATH=$REPO .venv/bin/python - "$ROOT$WORK" 2>"$ROOT$WORK/venv-reconstruct.log" <<'EOF' || { result "venv reconstructs the astronaut" 1; }
import pickle, sys
from msma_blender.pipeline import EngineSettings, get_session
work = sys.argv[1]
session = get_session(EngineSettings())
results = session.reconstruct(f"{work}/astronaut.png", fit="fast", texture_size=256)
with open(f"{work}/astronaut_result.pkl", "wb") as fh:
    pickle.dump({"results": results, "exp_basis": session.exp_basis}, fh)
EOF
  cp scripts/check_real_blender_build.py "$ROOT$WORK/"
  out=$(blender_run "--python $WORK/check_real_blender_build.py -- $WORK" 2>&1)
  grep '^CHECK ' <<<"$out" | sed 's/^CHECK //'
  grep -q '^CHECK FAIL' <<<"$out" && FAILED=1
  grep -q '^CHECK ' <<<"$out" || result "build check script" 1 "$(tail -5 <<<"$out")"
fi

say "$( [ $FAILED -eq 0 ] && echo "ALL PASSED" || echo "SOME CHECKS FAILED")"
exit $FAILED
