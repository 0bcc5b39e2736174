#!/bin/sh
# Builds one image with buildah (no Docker daemon, no socket) and pushes it to the project's
# registry as $CI_REGISTRY_IMAGE/<name>:$CI_COMMIT_SHA and :<revision>, the revision being the
# last commit that changed the image's inputs (computed by the images:plan job, which passes it
# as a dotenv variable; deploy/deploy.sh computes the same and deploys that tag).
#   .ci/gitlab/build-image.sh <name> <dockerfile> <tag variable>
# <name> is also the image's target in <dockerfile> (the root Dockerfile: one target per image).
set -eu
name="$1"
dockerfile="$2"
tag_variable="$3"
revision="$(printenv "$tag_variable" || true)"
if [ -z "$revision" ]; then
    echo "error: $tag_variable is not set: the images:plan job's dotenv report is missing" >&2
    exit 1
fi
if [ ! -f "$dockerfile" ]; then
    echo "error: $dockerfile does not exist" >&2
    exit 1
fi
image="${CI_REGISTRY_IMAGE:?}/$name"
printf '%s' "${CI_REGISTRY_PASSWORD:?}" \
    | buildah login --username "${CI_REGISTRY_USER:?}" --password-stdin "${CI_REGISTRY:?}"
# --layers with a registry cache: an image whose inputs did not change rebuilds from cache
buildah build \
    --layers \
    --cache-from "$image/cache" \
    --cache-to "$image/cache" \
    --file "$dockerfile" \
    --target "$name" \
    --label "org.opencontainers.image.revision=${CI_COMMIT_SHA:?}" \
    --label "org.opencontainers.image.source=${CI_PROJECT_URL:-}" \
    --tag "$image:$CI_COMMIT_SHA" \
    --tag "$image:$revision" \
    .
buildah push "$image:$CI_COMMIT_SHA"
buildah push "$image:$revision"
echo "built $image:$CI_COMMIT_SHA (also :$revision)"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image:$CI_COMMIT_SHA"
