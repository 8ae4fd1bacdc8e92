#!/usr/bin/env bash
# Make (or bring up to date) the virtual environment of the NeoNet MONAI Deploy application.
#
#   bash apps/deploy/install.sh [VENV_DIR]      # default: <repo>/.venv-deploy
#
# Idempotent: re-running installs nothing new when everything is already there. Order matters:
#  1. torch alone and pinned (an unpinned torch resolved with the rest pulls a multi-GB CUDA build);
#  2. neonet_ext (editable) with the repository's constraints.txt, the project's one source of pins;
#  3. the SDK and its extras with the exact pins of apps/deploy/requirements.txt, still under the same
#     constraints, so torch, numpy, monai... are never replaced.
# Two pins of constraints.txt conflict here: protobuf==7.36.2 (tritonclient 2.73.0, which the SDK requires,
# needs protobuf<7) and packaging==26.3 (holoscan-cli 4.2.0, the last one with the MAP packager, needs
# packaging<26). The constraints passed on are constraints.txt without those two lines, and
# requirements.txt pins protobuf==6.33.6 and packaging==25.0.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${1:-$REPO/.venv-deploy}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="$(sed -n 's/^torch==//p' "$REPO/constraints.txt")"

[ -n "$TORCH_VERSION" ] || { echo "install.sh: no torch pin in $REPO/constraints.txt" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# constraints.txt less protobuf and packaging (see above), kept inside the venv so the repository is not touched.
CONSTRAINTS="$VENV/constraints-deploy.txt"
grep -v -E '^(protobuf|packaging)==' "$REPO/constraints.txt" > "$CONSTRAINTS.tmp" && mv "$CONSTRAINTS.tmp" "$CONSTRAINTS"

"${PIP[@]}" install "torch==$TORCH_VERSION"
"${PIP[@]}" install -c "$CONSTRAINTS" -e "$REPO"
"${PIP[@]}" install -c "$CONSTRAINTS" -r "$HERE/requirements.txt" "pytest==$(sed -n 's/^pytest==//p' "$REPO/constraints.txt")"

# Holoscan (imported by monai.deploy.core) warns below a 32 MB stack; it also wants it at run time.
ulimit -s 32768 2>/dev/null || true
# A resolver that had to replace torch, numpy or monai would make this environment differ from the
# project's: fail loudly instead.
"$VENV/bin/python" - "$REPO/constraints.txt" <<'PY'
import sys
from importlib.metadata import version

pins = dict(line.strip().split("==", 1) for line in open(sys.argv[1]) if "==" in line and not line.startswith("#"))
bad = [f"{name} {version(name)} (constraints.txt: {pins[name]})" for name in ("torch", "numpy", "monai", "pydicom")
       if version(name).split("+")[0] != pins[name]]
if bad:
    sys.exit("install.sh: pinned packages were replaced: " + ", ".join(bad))
import monai.deploy.core, highdicom, SimpleITK, neonet_ext  # noqa: E401,F401  the app's imports resolve
print(f"deploy environment ready: torch {version('torch')}, monai {version('monai')}, "
      f"monai-deploy-app-sdk {version('monai-deploy-app-sdk')}, holoscan-cu13 {version('holoscan-cu13')}, "
      f"highdicom {version('highdicom')}")
PY
