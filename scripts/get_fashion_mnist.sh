#!/usr/bin/env bash
# Fashion-MNIST for the demo (`make demo` calls this before tools/demo.py). Idempotent: a second run
# only checks that the files are there.
#
#   bash scripts/get_fashion_mnist.sh
#
# Result: the four standard IDX files, *uncompressed*, in $FASHION_MNIST_ROOT (default: data/fashion_mnist in
# the repository):
#
#   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
#
# which is the layout mmpretrain's FashionMNIST dataset reads (it opens the uncompressed names only and,
# with download=False, never touches the network). Where a file is missing it is taken from, in order:
#   1. the same name + .gz in $FASHION_MNIST_ROOT (e.g. a folder you downloaded yourself), unpacked there;
#   2. Debian's `dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist/*.gz), installed with
#      apt-get when missing (needs root or sudo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${FASHION_MNIST_ROOT:-$ROOT/data/fashion_mnist}"  # a relative FASHION_MNIST_ROOT is the caller's
DEB_PKG="dataset-fashion-mnist"
DEB_DIR="/usr/share/datasets/fashion-mnist"
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

log() { printf '[fashion-mnist] %s\n' "$*"; }
die() { printf '[fashion-mnist] ERROR: %s\n' "$*" >&2; exit 1; }

missing=()
for f in "${FILES[@]}"; do
  [ -s "$DEST/$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -eq 0 ]; then
  log "all four IDX files are in $DEST; nothing to do"
  exit 0
fi
mkdir -p "$DEST"

# A file is only ever written under a temporary name and renamed when complete, so an interrupted run
# never leaves a truncated IDX file that the check above would accept.
unpack() {  # unpack SRC.gz DEST_FILE
  gzip -dc "$1" > "$2.part"
  mv "$2.part" "$2"
  log "unpacked $1 -> $2"
}

need_deb=0
for f in "${missing[@]}"; do
  if [ -s "$DEST/$f.gz" ]; then
    unpack "$DEST/$f.gz" "$DEST/$f"
  else
    need_deb=1
  fi
done

if [ "$need_deb" = 1 ]; then
  if ! dpkg-query -W -f='${Status}' "$DEB_PKG" 2>/dev/null | grep -q "install ok installed"; then
    command -v apt-get >/dev/null || die "no apt-get on this machine. Put the four files (or their .gz) from \
https://github.com/zalandoresearch/fashion-mnist into $DEST, or set FASHION_MNIST_ROOT to a folder holding them."
    SUDO=()
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null || die "installing $DEB_PKG needs root: run 'sudo apt-get install -y $DEB_PKG' \
and re-run this script"
      SUDO=(sudo)
    fi
    log "installing the Debian package $DEB_PKG (about 30 MB)"
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$DEB_PKG"; then
      log "install failed; refreshing the package lists and retrying"
      "${SUDO[@]}" apt-get update -q
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$DEB_PKG"
    fi
  fi
  for f in "${FILES[@]}"; do
    [ -s "$DEST/$f" ] && continue
    [ -s "$DEB_DIR/$f.gz" ] || die "$DEB_PKG is installed but $DEB_DIR/$f.gz is missing (dpkg -L $DEB_PKG)"
    unpack "$DEB_DIR/$f.gz" "$DEST/$f"
  done
fi
log "Fashion-MNIST ready in $DEST"
