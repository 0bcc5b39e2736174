#!/bin/sh
# Makes `uv` (pinned: UV_VERSION) available in a CI job, whatever the image: already on PATH
# (a shell runner, gitlab-ci-local), through pip (python images), or uv's standalone installer.
set -eu
version="${UV_VERSION:?UV_VERSION is not set}"
if command -v uv >/dev/null 2>&1; then
    echo "uv: $(command -v uv) ($(uv --version))"
    exit 0
fi
if python3 -m pip --version >/dev/null 2>&1 \
        && python3 -m pip install --quiet --disable-pip-version-check "uv==${version}"; then
    :
else
    curl -LsSf "https://astral.sh/uv/${version}/install.sh" | env UV_INSTALL_DIR=/usr/local/bin sh
fi
uv --version
