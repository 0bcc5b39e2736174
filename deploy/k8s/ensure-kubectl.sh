#!/bin/sh
# Installs the Kubernetes client (kubectl, kustomize built in) when it is missing: the GitLab jobs
# that render (lint:platform, test:platform) or apply (deploy:<env> with DEPLOY_TARGET=k8s) the
# manifests run in images without it. Pinned release, checked against its published SHA-256.
#   KUBECTL_VERSION (default v1.32.4), KUBECTL_INSTALL_DIR (default /usr/local/bin)
set -eu
if command -v kubectl >/dev/null 2>&1; then
    kubectl version --client 2>/dev/null | head -n 1
    exit 0
fi
version="${KUBECTL_VERSION:-v1.32.4}"
dir="${KUBECTL_INSTALL_DIR:-/usr/local/bin}"
case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "ensure-kubectl: no kubectl build for $(uname -m)" >&2; exit 1 ;;
esac
url="https://dl.k8s.io/release/${version}/bin/linux/${arch}/kubectl"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if command -v curl >/dev/null 2>&1; then
    curl --fail --silent --show-error --location --output "$tmp/kubectl" "$url"
    curl --fail --silent --show-error --location --output "$tmp/kubectl.sha256" "$url.sha256"
else
    # the slim Python images have no curl
    python3 - "$url" "$tmp" <<'PY'
import sys, urllib.request
url, folder = sys.argv[1], sys.argv[2]
for suffix in ("", ".sha256"):
    with open(f"{folder}/kubectl{suffix}", "wb") as handle:
        handle.write(urllib.request.urlopen(url + suffix, timeout=120).read())
PY
fi
echo "$(cat "$tmp/kubectl.sha256")  $tmp/kubectl" | sha256sum --check --quiet
install -m 0755 "$tmp/kubectl" "$dir/kubectl"
kubectl version --client | head -n 1
