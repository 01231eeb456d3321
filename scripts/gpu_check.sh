#!/usr/bin/env bash
# The prepared GPU check: ONE command from a bare GPU machine (Python 3.12, a CUDA torch, timm, no package
# index) to a results file in about 8 minutes: model checks, every task trained end to end, benchmarks.
#
#   bash scripts/gpu_check.sh                 # on the GPU host: install, check, train, benchmark
#   bash scripts/gpu_check.sh --dry-run       # on CPU (make test runs this): no install, tiny plan
#
# Knobs: PYTHON (interpreter), GPU_WHEELS (folder with the wheels below), OUT (results folder).
#
# What a bare host lacks comes from the wheel folder (../shared/wheels/gpu-cp312 in the project's layout, or
# shared/wheels/gpu-cp312 carried inside the checkout): mmengine, mmpretrain, mmdet, mmseg and their small
# pure-Python dependencies, installed with --no-index --no-deps into work_dirs/gpu_site (never over the host's
# torch). mmcv is built from its sdist WITHOUT its compiled ops (MMCV_WITH_OPS=0: pure Python, seconds instead
# of 5-12 minutes of CUDA): cpvt_mm's mmcv_ops fix supplies nms, roi_align and sigmoid focal loss from
# torchvision's CUDA kernels, which is all the shipped detection and segmentation configs need. cpvt_mm itself
# runs from the checkout (PYTHONPATH), not installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRY=0
EXTRA=()  # passed on to tools/analysis_tools/gpu_check.py (e.g. --budget 300)
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) echo "usage: bash scripts/gpu_check.sh [--dry-run] [gpu_check.py options, e.g. --budget 300]"; exit 0 ;;
    *) EXTRA+=("$arg") ;;
  esac
done
log() { printf '[gpu_check] %s\n' "$*"; }

if [ "$DRY" = 1 ]; then
  PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
  OUT="${OUT:-work_dirs/gpu_check_dry}"
  log "dry run on CPU with $PY: no installation, tiny plan"
  exec env OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" "$PY" tools/analysis_tools/gpu_check.py --dry-run --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}
fi

PY="${PYTHON:-python3}"
OUT="${OUT:-work_dirs/gpu_check}"
SITE="$ROOT/work_dirs/gpu_site"
WHEELS="${GPU_WHEELS:-}"
for candidate in "$ROOT/shared/wheels/gpu-cp312" "$ROOT/../shared/wheels/gpu-cp312" "$ROOT/wheels/gpu-cp312"; do
  [ -z "$WHEELS" ] && [ -d "$candidate" ] && WHEELS="$candidate"
done
[ -n "$WHEELS" ] && [ -d "$WHEELS" ] || { echo "[gpu_check] no wheel folder found; set GPU_WHEELS=DIR" >&2; exit 1; }
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'" \
  || { echo "[gpu_check] $PY has no CUDA torch; this is the GPU check (use --dry-run on CPU)" >&2; exit 1; }

export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import mmengine, mmcv, mmpretrain, mmdet, mmseg" >/dev/null 2>&1; then
  log "installing from $WHEELS into $SITE (no index, no deps, torch untouched)"
  mkdir -p "$SITE"
  "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
  MMCV_WITH_OPS=0 "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps \
    --no-build-isolation --target "$SITE" "$WHEELS"/mmcv-2.1.0.tar.gz
fi
# The wheel folder must hold what the host lacks; seen missing (2026-12-04): importlib_metadata (< 10, which
# needs lazy_importer) and model-index (the modelindex 0.0.2 wheel is an empty placeholder that requires it).
missing="$("$PY" -c "import importlib.util as u
print(' '.join(m for m in ('importlib_metadata', 'modelindex', 'pycocotools', 'shapely', 'terminaltables', 'addict',
  'yapf', 'mat4py', 'ftfy', 'regex', 'prettytable', 'termcolor') if u.find_spec(m) is None))")"
[ -z "$missing" ] || { echo "[gpu_check] missing on this host and in $WHEELS: $missing (add their py3 wheels)" >&2; exit 1; }
"$PY" -c "import torch, mmcv, mmengine, mmpretrain, timm, cpvt_mm, mmdet.models, mmseg.models, mmpretrain.models
from cpvt_mm.compat import mmcv_ops
print('[gpu_check] torch', torch.__version__, torch.cuda.get_device_name(), '| mmcv', mmcv.__version__, \
'| mmpretrain', mmpretrain.__version__, '| timm', timm.__version__)
print('[gpu_check]', mmcv_ops.describe())"
log "model checks, task runs and benchmarks -> $OUT"
"$PY" tools/analysis_tools/gpu_check.py --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"}
