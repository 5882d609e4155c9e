# Sourced by scripts/demo.sh and scripts/test.sh (and .ci/run): leaves an activated virtual environment
# with torch and tracklight[dev] installed, and the shell in the repository root.
#
# - Uses the virtual environment that is already active, else ./.venv (created with $PYTHON, default python3).
# - Installs torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build on Linux.
#   To take the CPU-only build from PyTorch's own index, export
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before running.
# - Skips pip when nothing changed since the last install (pyproject.toml and the torch pin are hashed);
#   TRACKLIGHT_REINSTALL=1 forces it.

TORCH_VERSION=2.13.0

cd "$(dirname "${BASH_SOURCE[0]}")/.." || return 1

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "tracklight needs Python 3.10 or newer; run again with PYTHON=/path/to/python3.11" >&2
      return 1
    fi
    echo "==> creating a virtual environment in .venv ($("$python" --version))"
    if ! "$python" -m venv .venv; then
      echo "Could not create .venv. On Debian/Ubuntu: sudo apt-get install python3-venv" >&2
      rm -rf .venv
      return 1
    fi
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

_pip_install() {
  # Local package mirrors in a pip configuration make pip warn once per package they lack
  # ("Location ... is ignored: it is neither a file nor a directory"); that is noise, not a problem.
  python -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

_stamp="$VIRTUAL_ENV/.tracklight-dev-installed"
_want="torch==$TORCH_VERSION $(python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
if [ "${TRACKLIGHT_REINSTALL:-0}" != 1 ] && [ -f "$_stamp" ] && [ "$(cat "$_stamp")" = "$_want" ]; then
  echo "==> dependencies already installed in $VIRTUAL_ENV (TRACKLIGHT_REINSTALL=1 to reinstall)"
else
  echo "==> installing torch==$TORCH_VERSION, then tracklight[dev] (editable) into $VIRTUAL_ENV"
  _pip_install "torch==$TORCH_VERSION" || return 1
  _pip_install -e '.[dev]' || return 1
  echo "$_want" > "$_stamp"
fi
unset _stamp _want
unset -f _pip_install
