#!/usr/bin/env bash
# One idempotent setup for cpvt_mm: creates .venv/ in the repo root and installs the pinned
# OpenMMLab stack, the test tools and cpvt_mm itself (editable).
#
#   bash scripts/setup_env.sh            # or: make setup
#
# Environment knobs:
#   PYTHON=python3.11        interpreter used to create the venv
#   PIP_FIND_LINKS=DIR       extra wheel folders (e.g. a prebuilt mmcv wheel); honoured by every pip call
#   CPVT_FORCE_SETUP=1       reinstall even if the stamp says the venv is current
#   MMCV_OPS=auto            mmcv 2.1.0 with compiled ops when a wheel of it is found (PIP_FIND_LINKS), else
#                            mmcv-lite 2.1.0 (pure Python, seconds; cpvt_mm supplies the ops the configs need)
#   MMCV_OPS=lite            always mmcv-lite
#   MMCV_OPS=compile         build mmcv's C++/CUDA ops from source (8-16 min on 2 cores; needed only for ops
#                            beyond nms, roi_align and sigmoid focal loss, e.g. deformable convolutions)
#
# Torch policy: if the interpreter already has torch (GPU hosts ship their CUDA build), the venv sees it
# through --system-site-packages and it is never replaced; otherwise torch==2.13.0 is installed (on the
# project's CPU machines that resolves to the local CPU wheel). A constraints file pins whatever torch
# is present, so no later step can swap it for another build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
STAMP="$VENV/.cpvt_setup_stamp"
MMCV_OPS="${MMCV_OPS:-auto}"
case "$MMCV_OPS" in
  auto|lite|compile) ;;
  *) echo "[setup] MMCV_OPS=$MMCV_OPS: expected auto, lite or compile" >&2; exit 2 ;;
esac

step=""
log() { printf '[setup] %s\n' "$*"; }
begin() { step="$*"; log "$step ..."; }
trap 'rc=$?; if [ $rc -ne 0 ]; then printf "[setup] FAILED during step: %s (exit %s)\n" "$step" "$rc" >&2; fi' EXIT

begin "checking the interpreter"
command -v "$PYTHON" >/dev/null || { echo "[setup] '$PYTHON' not found; install Python 3.11+ or set PYTHON=" >&2; exit 1; }
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"[setup] Python >= 3.10 is required, found {sys.version.split()[0]}")
PY
# Run from inside another virtualenv (one that is activated), build on its base interpreter instead: a venv
# made from a venv sees neither the outer venv's packages nor, with --system-site-packages, its torch.
PYTHON="$("$PYTHON" -c 'import sys; print(sys.executable if sys.prefix == sys.base_prefix else getattr(sys, "_base_executable", sys.executable))')"

# Everything that decides what gets installed goes into the stamp; a matching stamp plus a working
# import check means there is nothing to do (second runs take seconds).
fingerprint="$( (cat requirements/*.txt setup.py scripts/setup_env.sh; echo "MMCV_OPS=$MMCV_OPS") | sha256sum | cut -d' ' -f1)"
if [ -z "${CPVT_FORCE_SETUP:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ] \
   && "$VENV/bin/python" -c "import cpvt_mm, mmcv.ops, mmdet, mmseg, mmpretrain" >/dev/null 2>&1; then
  log "environment is current (.venv, stamp matches); nothing to do"
  exit 0
fi

begin "creating the virtual environment in .venv"
if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  SYSTEM_TORCH=1
  log "the interpreter already has torch $("$PYTHON" -c 'import torch; print(torch.__version__)'); the venv will reuse it"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
else
  SYSTEM_TORCH=0
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

begin "installing build tools (pip, setuptools>=77.0.3,<82, wheel, ninja)"
# setuptools 82 removed pkg_resources, which mmcv's setup.py and mmengine's config lookup import.
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=77.0.3,<82" wheel ninja packaging "numpy>=1.24"

begin "installing torch"
if [ "$SYSTEM_TORCH" = 0 ]; then
  if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "${PIP[@]}" install "torch==${TORCH_VERSION}"
  fi
fi
installed_torch="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
CONSTRAINTS="$VENV/constraints.txt"
printf 'torch==%s\nsetuptools>=77.0.3,<82\nopencv-python-headless<5\n' "$installed_torch" > "$CONSTRAINTS"
log "torch $("$PY" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"

begin "installing torchvision matching torch"
if ! "$PY" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('torchvision') is None)"; then
  # The index's torchvision for torch 2.13 is a CUDA build; --no-deps keeps it from replacing the
  # CPU torch. cpvt_mm.compat makes it importable on CPU-only torch.
  tv_version="$("$PY" - <<'PY'
import torch
major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
print(f"0.{minor + 15}.0")  # torch 2.N pairs with torchvision 0.(N+15)
PY
)"
  "${PIP[@]}" install --no-deps "torchvision==${tv_version}" "pillow>=9"
fi

begin "installing mmcv 2.1.0 (MMCV_OPS=$MMCV_OPS)"
"${PIP[@]}" install -q -r requirements/runtime-deps.txt -c "$CONSTRAINTS"
"${PIP[@]}" install -q --no-deps "mmengine==0.10.7"
has_compiled_mmcv() { "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '2.1.0'" >/dev/null 2>&1; }
# mmcv and mmcv-lite install the same mmcv/ folder; one must go before the other comes.
swap_out() { "$PY" -m pip show "$1" >/dev/null 2>&1 && "${PIP[@]}" uninstall -y -q "$1" || true; }
# --no-deps throughout: a prebuilt mmcv wheel records whichever OpenCV its build machine had (often
# opencv-python); its real dependencies are already in runtime-deps.txt.
install_compiled_wheel() {  # only a prebuilt wheel (PIP_FIND_LINKS or the index), never a build
  "${PIP[@]}" install -q --dry-run --no-deps --only-binary=mmcv "mmcv==2.1.0" >/dev/null 2>&1 || return 1
  swap_out mmcv-lite
  "${PIP[@]}" install -q --no-deps --only-binary=mmcv "mmcv==2.1.0"
}
case "$MMCV_OPS" in
  compile)
    if ! has_compiled_mmcv; then
      log "compiling mmcv's ops from source (~8-16 min on 2 cores)"
      swap_out mmcv-lite
      # No build isolation: the build needs this venv's torch. pip caches the built wheel, so a second
      # setup on the same machine takes seconds.
      MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" install --no-build-isolation --no-deps "mmcv==2.1.0"
      has_compiled_mmcv || { echo "[setup] mmcv was built but mmcv._ext does not import" >&2; exit 1; }
    fi ;;
  auto)
    if has_compiled_mmcv; then
      log "mmcv 2.1.0 with compiled ops already installed"
    elif install_compiled_wheel && has_compiled_mmcv; then
      log "installed a prebuilt mmcv 2.1.0 wheel with compiled ops"
    else
      swap_out mmcv
      "${PIP[@]}" install -q --no-deps "mmcv-lite==2.1.0"
      log "no prebuilt mmcv wheel with ops found: installed mmcv-lite 2.1.0 (cpvt_mm supplies nms, roi_align," \
        "sigmoid focal loss; MMCV_OPS=compile builds the rest)"
    fi ;;
  lite)
    if has_compiled_mmcv || ! "$PY" -m pip show mmcv-lite >/dev/null 2>&1; then
      swap_out mmcv
      "${PIP[@]}" install -q --no-deps "mmcv-lite==2.1.0"
    fi ;;
esac

begin "installing the OpenMMLab stack, test tools and optional tools"
# The mm packages go in with --no-deps (see requirements/runtime.txt); their dependencies come from
# runtime-deps.txt, so exactly one OpenCV (headless 4.x) is installed.
"${PIP[@]}" install -q -r requirements/runtime-deps.txt -r requirements/tests.txt -r requirements/optional.txt \
  -c "$CONSTRAINTS"
"${PIP[@]}" install -q --no-deps -r requirements/runtime.txt
if "$PY" -m pip show opencv-python >/dev/null 2>&1; then
  # Two OpenCV distributions share cv2/; removing one breaks the other, so reinstall the headless one.
  log "removing opencv-python (5.x) pulled in by another package; keeping opencv-python-headless 4.x"
  "${PIP[@]}" uninstall -y -q opencv-python
  "${PIP[@]}" install -q --force-reinstall --no-deps "$("$PY" -m pip show opencv-python-headless | awk '/^Version/{print "opencv-python-headless=="$2}')"
fi

begin "installing cpvt_mm (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

begin "checking the installation"
"$PY" - <<'PY'
import cv2, mmcv, mmdet, mmengine, mmpretrain, mmseg, torch
import cpvt_mm  # applies the compatibility layer
import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models  # noqa: F401
from cpvt_mm.compat import mmcv_ops
assert cv2.__version__.startswith("4."), f"OpenCV 4.x expected, found {cv2.__version__}"
print(f"[setup] {mmcv_ops.describe()}")
print(f"[setup] torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}, "
      f"cpvt_mm {cpvt_mm.__version__}, opencv {cv2.__version__}")
PY
echo "$fingerprint" > "$STAMP"
log "done. Activate with: source .venv/bin/activate"
