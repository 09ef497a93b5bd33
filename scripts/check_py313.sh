#!/usr/bin/env bash
# Run the test suite on Python 3.13 + numpy 2 + bpy 5.2.x, what Blender 5.1 and 5.2 bundle.
#
#   sudo scripts/check_py313.sh                          # tests/msma_blender, not slow
#   sudo scripts/check_py313.sh -m "not slow"            # any pytest arguments: the whole fast suite
#
# Environment: a Debian 13 chroot (scripts/trixie_chroot.sh; Python 3.13.5), Debian's CPU-only
# PyTorch (python3-torch, 2.6) and a venv on top of it (--system-site-packages) with the rest of
# requirements.txt from PyPI (numpy 2.x, bpy 5.2.x, scipy, pillow, opencv-python-headless, ...).
# Why Debian's torch: PyPI's Linux cp313 torch is a CUDA build (several GB with its nvidia-*
# packages) and PyTorch's CPU wheel index is not reachable from the build machines.
# mediapipe is left out (no release with `mediapipe.solutions` installs on 3.13).
# First run: ~10 min and ~3.5 GB (debootstrap, apt, pip); later runs reuse chroot and venv.
# Not run by CI (see README "Python 3.13"); run it for every change that touches dependencies.
# Exit status: pytest's.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=/tmp/msma_py313
. scripts/trixie_chroot.sh
VENV=$WORK/venv

chroot_ensure
# blender: its shared libraries are what the bpy wheel links against (X11, GL, ...).
chroot_apt python3-venv python3-pip python3-torch blender

# The repository's files (tracked and not ignored), fresh each run; the venv is kept.
rm -rf "$ROOT$WORK/repo" && mkdir -p "$ROOT$WORK/repo" "$ROOT$WORK/home"
git ls-files -co --exclude-standard -z | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
  | tar --null -T - -cf - | tar -xf - -C "$ROOT$WORK/repo"
# The test photos (public domain) and BFM index files (MIT) the tests look for beside the checkout.
SHARED=${MSMA_SHARED_DATA:-$(cd .. && pwd)/shared/data}
[ -d "$SHARED" ] || SHARED=/work/shared/data
rm -rf "$ROOT$WORK/shared" && mkdir -p "$ROOT$WORK/shared/data"
for d in photos bfm09_helpers; do [ -d "$SHARED/$d" ] && cp -r "$SHARED/$d" "$ROOT$WORK/shared/data/"; done
# requirements.txt with Debian's torch instead of PyPI's; nodeps without mediapipe (see above).
grep -v -E '^torch([=<>~! ;]|$)' requirements.txt > "$ROOT$WORK/req.txt"
grep -v -E '^mediapipe([=<>~! ;]|$)' requirements-nodeps.txt > "$ROOT$WORK/req-nodeps.txt"
t0=$SECONDS
in_root "set -e; [ -x $VENV/bin/python ] || python3 -m venv --system-site-packages $VENV
  $VENV/bin/python -m pip install -q --disable-pip-version-check -r $WORK/req.txt
  $VENV/bin/python -m pip install -q --disable-pip-version-check --no-deps -r $WORK/req-nodeps.txt"
result "venv: pip install -r requirements.txt (less torch)" $? "$((SECONDS - t0)) s"
[ $FAILED -eq 0 ] || exit 1
say "versions: $(in_root "$VENV/bin/python -c 'import sys, numpy, torch, bpy, scipy, cv2, PIL
print(\"python\", sys.version.split()[0], \"| numpy\", numpy.__version__, \"| torch\", torch.__version__,
      \"| bpy\", bpy.app.version_string, \"| scipy\", scipy.__version__, \"| opencv\", cv2.__version__,
      \"| pillow\", PIL.__version__)'")"

[ $# -gt 0 ] || set -- tests/msma_blender -m "not slow"
args=$(printf '%q ' "$@")
in_root "cd $WORK/repo && OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$WORK/repo $VENV/bin/python -m pytest -q -p no:cacheprovider $args"
