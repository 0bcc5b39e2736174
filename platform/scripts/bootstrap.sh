# Sourced by run.sh and the Makefile: makes sure uv and the workspace's locked environment exist.
# Idempotent: a second call only checks that the lock and the environment agree (about 1 s).

ensure_uv() {
    if command -v uv >/dev/null 2>&1; then return 0; fi
    if [ -x "$HOME/.local/bin/uv" ]; then export PATH="$HOME/.local/bin:$PATH"; return 0; fi
    echo "uv not found: installing it from PyPI (python3 -m pip install --user uv)" >&2
    python3 -m pip install --quiet --user uv >&2 || python3 -m pip install --quiet uv >&2
    export PATH="$HOME/.local/bin:$PATH"
    command -v uv >/dev/null 2>&1 || { echo "error: could not install uv" >&2; return 1; }
}

ensure_python_env() {
    ensure_uv
    # --frozen: install exactly uv.lock; every workspace member and the dev tools.
    if ! uv sync --frozen --quiet >&2; then
        echo "error: 'uv sync --frozen' failed; see the messages above" >&2
        return 1
    fi
}
