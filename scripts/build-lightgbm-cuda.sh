#!/usr/bin/env bash
# Build LightGBM with its CUDA tree learner from the PyPI source distribution, into the project's
# virtualenv, at the version pinned in requirements.txt. Needs the CUDA toolkit (nvcc), cmake and a
# C++ compiler on the machine; takes several minutes. Afterwards `device=auto` picks CUDA for large
# training sets and `device=cuda` works.
#
#   scripts/build-lightgbm-cuda.sh            # uses .venv
#   VENV=/path/to/venv scripts/build-lightgbm-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VERSION=$(grep -i '^lightgbm==' requirements.txt | cut -d= -f3)
if ! command -v nvcc >/dev/null; then
    echo "nvcc not found: install the CUDA toolkit (and put its bin/ on PATH) first." >&2
    exit 1
fi
if ! command -v cmake >/dev/null; then
    "$VENV/bin/pip" install cmake
fi
echo "Building lightgbm==$VERSION with USE_CUDA=ON (nvcc: $(nvcc --version | tail -1))"
"$VENV/bin/pip" install --force-reinstall --no-deps --no-binary lightgbm --no-cache-dir \
    --config-settings=cmake.define.USE_CUDA=ON "lightgbm==$VERSION"
"$VENV/bin/python" - <<'PY'
import lightgbm as lgb
import numpy as np

X = np.random.default_rng(0).normal(size=(2000, 5))
y = (X[:, 0] > 0).astype(int)
lgb.train({"objective": "binary", "device_type": "cuda", "verbosity": -1}, lgb.Dataset(X, y), num_boost_round=2)
print(f"lightgbm {lgb.__version__}: the CUDA tree learner trains on this machine.")
PY
