# Sourced by demo.sh and test.sh: create (once) and activate the virtual environment.
# VENV_DIR chooses where (default: .venv in the repository); TORCH_INDEX_URL, if set, is
# where torch comes from (e.g. https://download.pytorch.org/whl/cpu on a machine whose
# default index would bring a CUDA build); MYOPIA_EXTRAS, the package extras installed with
# myopia (default: test; CI adds triton, so the Triton kernels are tested under its interpreter).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV_DIR/bin/python" ]; then
    echo "creating virtual environment in $VENV_DIR"
    "$PYTHON" -m venv "$VENV_DIR"
fi
# shellcheck disable=SC1091
. "$VENV_DIR/bin/activate"
STAMP="$VENV_DIR/.myopia-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    pip install --quiet --upgrade pip
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        pip install --quiet "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
    else
        pip install --quiet "torch==2.13.0"
    fi
    pip install --quiet -e "$ROOT[${MYOPIA_EXTRAS:-test}]"
    touch "$STAMP"
fi
cd "$ROOT"
