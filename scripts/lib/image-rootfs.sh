#!/usr/bin/env bash
# Lays out the root filesystem of the sidewatch image in DIR: the stripped
# binary, exactly the shared libraries it loads (as `ldd` names them, at the
# same paths, and the dynamic loader), CA certificates, /etc/passwd and
# /etc/group with the nonroot user 65532, an empty /tmp (mode 1777) and an
# empty data dir owned by 65532. Nothing else: no shell, no package manager.
#
#   scripts/lib/image-rootfs.sh BINARY DIR [DEBUG_FILE]
#
# DEBUG_FILE, when given, receives the debug info stripped from the binary
# (objcopy --only-keep-debug) and the image binary names it by a debuglink,
# for symbolizing profiles and core dumps outside the image.
#
# Used by scripts/image (buildah, offline) and by the Containerfile's build
# stage, so both images hold the same files.
set -euo pipefail

binary=${1:?usage: image-rootfs.sh BINARY DIR [DEBUG_FILE]}
root=${2:?usage: image-rootfs.sh BINARY DIR [DEBUG_FILE]}
debug_file=${3:-}
data_dir=/var/lib/sidewatch
certs=/etc/ssl/certs/ca-certificates.crt

[ -x "$binary" ] || { echo "error: $binary is not an executable" >&2; exit 1; }
[ -s "$certs" ] || { echo "error: $certs is missing (install ca-certificates)" >&2; exit 1; }
if [ -e "$root" ] && [ -n "$(ls -A "$root")" ]; then
  echo "error: $root is not empty" >&2
  exit 1
fi
mkdir -p "$root"

# The binary, without debug info or symbols.
if [ -n "$debug_file" ]; then
  objcopy --only-keep-debug "$binary" "$debug_file"
  strip --strip-all -o "$root/sidewatch" "$binary"
  objcopy --add-gnu-debuglink="$debug_file" "$root/sidewatch"
else
  strip --strip-all -o "$root/sidewatch" "$binary"
fi
chmod 0755 "$root/sidewatch"

# Each library at the path the loader finds it (symlinks resolved to the
# file itself), plus the loader at the binary's PT_INTERP path. ldd prints
# `name => /path (addr)` for libraries and `/path (addr)` for the loader.
copy_lib() { # path
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
for lib in $libs; do copy_lib "$lib"; done

mkdir -p "$root/etc/ssl/certs"
cp -L "$certs" "$root$certs"

# glibc reads these for user, group and host lookups; a runtime (Kubernetes,
# podman) bind-mounts its own /etc/hosts and /etc/resolv.conf over them.
cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"

mkdir -p "$root/tmp" "$root$data_dir" "$root/home/nonroot"
chmod 1777 "$root/tmp"
# Owned by 65532 only where it can be set (root, or the Containerfile's
# build stage); scripts/image sets it again when copying into the image.
chown 65532:65532 "$root$data_dir" "$root/home/nonroot" 2>/dev/null || true
