#!/usr/bin/env bash
# The MONAI Label 0.8.5 environment for NeoNet's app, in its own virtual environment:
#
#     apps/monailabel/install.sh .venv-label
#
# Idempotent: creates the venv if needed and installs only when constraints.txt, pyproject.toml or
# the files here changed since the last successful run. Steps:
#   1. torch alone, pinned (an unpinned torch resolved with the rest pulls a multi-GB CUDA build);
#   2. the project (-e ".[test]": neonet_ext, MONAI 1.6.1, pytest);
#   3. MONAI Label's run-time dependencies, exact versions (requirements.txt);
#   4. monailabel and pydicom-seg with --no-deps (requirements-no-deps.txt);
#   5. a check that the app's imports work and that torchvision stayed out.
# Every pip call after the venv is made uses the project's pins: constraints.txt with its pydicom
# line replaced by the pydicom pin of requirements.txt (MONAI Label needs pydicom<3, see there),
# written to <venv>/constraints-label.txt.
#
# Environment: PYTHON (default python3) makes the venv; TORCH_INDEX, as in the Makefile, is the
# PyTorch wheel index of a CUDA version on GPU machines.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <venv-dir>   (e.g. $0 .venv-label)" >&2
    exit 2
fi
VENV=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python3}
TORCH_INDEX=${TORCH_INDEX:-}
STAMP=$VENV/.monailabel-installed
INPUTS=("$REPO/constraints.txt" "$REPO/pyproject.toml" "$HERE/requirements.txt" "$HERE/requirements-no-deps.txt" "$HERE/install.sh")

digest=$(cat "${INPUTS[@]}" | sha256sum | cut -d' ' -f1)${TORCH_INDEX:+ $TORCH_INDEX}
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$digest" ] && [ -x "$VENV/bin/python" ]; then
    echo "$VENV is up to date (delete $STAMP to reinstall)"
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

pydicom_pin=$(grep -E '^pydicom==' "$HERE/requirements.txt")
torch_pin=$(grep -E '^torch==' "$REPO/constraints.txt")
CONSTRAINTS=$VENV/constraints-label.txt
{
    echo "# Written by apps/monailabel/install.sh: constraints.txt with pydicom pinned by apps/monailabel/requirements.txt"
    grep -v -E '^pydicom==' "$REPO/constraints.txt"
    echo "$pydicom_pin"
} > "$CONSTRAINTS"

echo "[1/5] $torch_pin"
"${PIP[@]}" install -q -c "$CONSTRAINTS" "$torch_pin" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
echo "[2/5] the project: -e $REPO[test]"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -e "$REPO[test]"
echo "[3/5] MONAI Label's run-time dependencies: $HERE/requirements.txt"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r "$HERE/requirements.txt"
echo "[4/5] --no-deps: $HERE/requirements-no-deps.txt"
"${PIP[@]}" install -q --no-deps -c "$CONSTRAINTS" -r "$HERE/requirements-no-deps.txt"

echo "[5/5] checking the imports"
"$VENV/bin/python" - "$torch_pin" <<'EOF'
import importlib.util
import sys

import torch

wanted = sys.argv[1].split("==")[1]
if torch.__version__.split("+")[0] != wanted:
    sys.exit(f"torch {torch.__version__} is installed, not {wanted}: another install replaced it.")
if importlib.util.find_spec("torchvision") is not None:
    sys.exit("torchvision is installed: PyPI's build fails to import with the CPU torch; uninstall it.")
# what `monailabel start_server` and NeoNet's app import (the app itself needs its folder on sys.path)
import monailabel.app  # noqa: E402,F401
import monailabel.tasks.infer.basic_infer  # noqa: E402,F401
import monailabel.tasks.train.bundle  # noqa: E402,F401
import monai  # noqa: E402
import monailabel  # noqa: E402
import neonet_ext  # noqa: E402

print(f"ok: torch {torch.__version__}, monai {monai.__version__}, monailabel {monailabel.__version__}, "
      f"neonet_ext {neonet_ext.__version__}")
EOF
echo "$digest" > "$STAMP"
echo "done: start the server with $VENV/bin/python -m monailabel.main start_server --app $HERE/neonet --studies <folder> (see $HERE/README.md)"
