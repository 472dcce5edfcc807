#!/usr/bin/env bash
# Build the Dockerfile with Debian's podman where Docker Hub cannot be reached: a local Debian base
# made with debootstrap from the machine's own apt mirror (python3 + venv + CA certificates), pip
# trusting the host's certificate authorities, and YuNet taken from a file instead of downloaded.
# Usage: docker/build-image.sh IMAGE YUNET_FILE      (run from anywhere; needs podman and debootstrap)
set -euo pipefail
image=${1:?image name}; yunet=${2:?path of face_detection_yunet_2023mar.onnx}
here=$(cd "$(dirname "$0")/.." && pwd)
base=localhost/emoscope-debian-base
if ! podman image exists "$base"; then
  # the mirror and suite this machine's apt uses (deb822 sources or the one-line format)
  mirror=$( (cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) \
           | grep -oE '^(URIs:|deb) +https?://[^ ]+' | awk 'NR == 1 {print $2}')
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$root" "$mirror" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import - "$base" >/dev/null
  rm -rf "$root"
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r "$here/pyproject.toml" "$here/README.md" "$here/src" "$here/Dockerfile" "$context/"
mkdir -p "$context/docker" && cp "$yunet" "$context/docker/face_detection_yunet.onnx"
find "$context/src" -name __pycache__ -type d -prune -exec rm -rf {} +
ca=/etc/ssl/certs/ca-certificates.crt
# --no-cache: the install step reads the source from a mount, which podman's layer cache does not see
podman build --no-cache --isolation chroot --network host --format docker -t "$image" \
  --build-arg BASE="$base" --build-arg YUNET=face_detection_yunet.onnx \
  -v "$ca:$ca:ro" --build-arg PIP_CERT="$ca" \
  -f "$context/Dockerfile" "$context"
