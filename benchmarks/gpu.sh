#!/usr/bin/env bash
# GPU throughput of the hot loops and their share of the bf16 compute bound (benchmarks/gpu.py).
#
#   bash benchmarks/gpu.sh                  # on a GPU machine, from any directory; < 8 minutes
#   bash benchmarks/gpu.sh --quick          # tiny sizes (also what runs without CUDA)
#   bash benchmarks/gpu.sh --fetch-wheels   # on a machine with PyPI access: the missing pure
#                                           # Python deps as wheels in .whl/ (x86-64, Python 3.12)
#
# Needs only the working tree and a Python with torch (a .venv here, else python3 or $PYTHON).
# A GPU machine without internet usually lacks open_clip and pydantic: the wheels that
# --fetch-wheels saves in .whl/ (carry that folder along) are installed under /tmp when those
# imports fail. Raw numbers go to $OUT/gpu.json and $OUT/RESULTS.md when OUT is set;
# RS_PEAK_BF16_TFLOPS overrides the device's bf16 peak.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${RS_GPU_WHEELS:-.whl}
NEEDED="open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 pydantic==2.14.4 pydantic_core==2.50.5
annotated_types==0.8.0 typing_inspection==0.4.5"

if [[ "${1:-}" == "--fetch-wheels" ]]; then
  mkdir -p "$WHEELS"
  # shellcheck disable=SC2086  # NEEDED is a list of requirement specifiers
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" $NEEDED
  exit 0
fi

PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "gpu.sh: $PY has no torch; set PYTHON to a Python with torch installed" >&2
  exit 2
fi
if ! "$PY" -c "import open_clip, pydantic, yaml, pyarrow, transformers" 2>/dev/null; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "gpu.sh: $PY lacks open_clip/pydantic and $WHEELS/ holds no wheels: run" \
      "'bash benchmarks/gpu.sh --fetch-wheels' where PyPI is reachable and carry $WHEELS/" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target /tmp/rs_gpu_site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/rs_gpu_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
exec "$PY" -m benchmarks.gpu ${OUT:+--out "$OUT"} "$@"
