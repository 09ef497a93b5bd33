# Sourced by scripts/check_real_blender.sh and scripts/check_py313.sh: a Debian 13 (trixie)
# chroot, made once with debootstrap and reused. Debian 13 has Python 3.13 and numpy 2, like
# Blender 5.1/5.2, plus a real Blender binary (4.3) and a CPU-only PyTorch (python3-torch).
# Needs root. Defines: ROOT, WORK, say, result, FAILED, in_root, chroot_ensure, chroot_apt.
ROOT=${ROOT:-${MSMA_CHROOT:-/tmp/trixie}}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-/tmp/msma_check}   # inside the chroot
FAILED=0

say() { printf '%s\n' "$*"; }
result() {  # result NAME STATUS(0=pass) [detail]
  if [ "$2" -eq 0 ]; then say "PASS $1${3:+ ($3)}"; else say "FAIL $1${3:+ ($3)}"; FAILED=1; fi
}
# in_root CMD: run CMD with bash inside the chroot, with a clean environment.
# pip trusts the host's CA bundle (copied in by chroot_ensure; a proxy's CA may be in it).
in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=$WORK/home \
  BLENDER_USER_RESOURCES=$WORK/user LANG=C.UTF-8 PIP_CERT=/etc/ssl/host-ca-certificates.crt \
  PIP_DEFAULT_TIMEOUT=180 ${DISPLAY_IN_ROOT:+DISPLAY=$DISPLAY_IN_ROOT} bash -c "$1"; }

# chroot_ensure: debootstrap when missing, bind /proc /sys /dev (unmounted on exit), DNS.
chroot_ensure() {
  [ "$(id -u)" -eq 0 ] || { say "error: run as root (debootstrap, chroot)"; exit 2; }
  if [ ! -f "$ROOT/etc/debian_version" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
    local t0=$SECONDS
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null || { say "FAIL debootstrap"; exit 1; }
    say "debootstrap: $((SECONDS - t0)) s"
  fi
  for d in proc sys dev; do mountpoint -q "$ROOT/$d" || mount --bind "/$d" "$ROOT/$d"; done
  trap 'for d in dev sys proc; do umount "$ROOT/$d" 2>/dev/null; done' EXIT
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  mkdir -p "$ROOT/etc/ssl" && cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/host-ca-certificates.crt"
}

# chroot_apt PKGS...: install Debian packages that are not there yet (one PASS/FAIL line).
chroot_apt() {
  local t0=$SECONDS
  in_root "export DEBIAN_FRONTEND=noninteractive; dpkg -s $* >/dev/null 2>&1 ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends $*; } >/dev/null"
  result "apt-get install $*" $? "$((SECONDS - t0)) s"
}
