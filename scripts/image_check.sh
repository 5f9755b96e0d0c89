#!/usr/bin/env bash
# Build meetsync's image from the Dockerfile and run it: `meetsync --version` and
# `meetsync demo` inside. What CI (.ci/run) runs, on a machine that cannot pull the official
# python image and whose package index is not trusted inside a build:
#
#   1. a Debian bookworm base from Debian's packages (mmdebstrap --variant=minbase, with
#      python3 and python3-venv), imported as a local image; reused for a week
#      (MEETSYNC_IMAGE_FRESH_BASE=1 makes it again);
#   2. a wheelhouse built on this host (`pip wheel .`) with a Python of the base's minor version
#      (python3.11 for bookworm: on PATH or under pyenv), plus what the base's exact version
#      needs on top (scripts/wheelhouse_gaps.py);
#   3. `buildah bud --build-arg BASE=<that base> --build-arg WHEELHOUSE=wheelhouse`: the
#      Dockerfile takes the wheelhouse instead of running `pip wheel`;
#   4. checks: USER is not root, the entry point is meetsync, the image's size (printed);
#      then `buildah run --isolation=chroot` (podman run fails here on rlimits).
#
# Needs root, and apt-get to install mmdebstrap, buildah and podman when missing. A step that
# cannot run says so and the script fails: it never passes without having built and run the
# image. Prints the seconds each step took.
set -uo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=localhost/meetsync-ci-base:bookworm
IMAGE=localhost/meetsync:ci
SUITE=bookworm
fail() { echo "image_check: FAILED: $*" >&2; exit 1; }
say() { echo "image_check: $*" >&2; }
timed() {  # timed LABEL COMMAND...: run it, print how long it took
  local label=$1 started=$SECONDS
  shift
  "$@"
  local status=$?
  say "$label: $((SECONDS - started)) s"
  return $status
}

[ "$(id -u)" = 0 ] || fail "needs root (mmdebstrap and buildah write system image storage)"
missing=()
for tool in mmdebstrap buildah podman; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -ne 0 ]; then
  command -v apt-get >/dev/null 2>&1 || fail "${missing[*]} missing, and no apt-get to install them"
  say "installing ${missing[*]} (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1 \
    || fail "apt-get could not install ${missing[*]} (no network to Debian's mirror?)"
fi

work="$(mktemp -d /tmp/meetsync-image.XXXXXX)"
container=""
cleanup() {
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The base: Debian's python3 in a minimal root file system.
fresh_base() {
  local created
  created="$(podman image inspect --format '{{.Created.Unix}}' "$BASE_IMAGE" 2>/dev/null)" \
    || return 1
  [ -z "${MEETSYNC_IMAGE_FRESH_BASE:-}" ] && [ $(( $(date +%s) - created )) -lt 604800 ]
}
make_base() {
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv "$SUITE" \
      "$work/rootfs.tar" \
    || { say "mmdebstrap could not make the base (no network to Debian's mirror?)"; return 1; }
  podman import --quiet "$work/rootfs.tar" "$BASE_IMAGE" >/dev/null \
    || { say "podman import of the base failed"; return 1; }
  rm -f "$work/rootfs.tar"
}
if fresh_base; then
  say "base: $BASE_IMAGE (made less than a week ago; MEETSYNC_IMAGE_FRESH_BASE=1 remakes it)"
else
  timed "base image (mmdebstrap $SUITE, podman import)" make_base || fail "no base image"
fi
container="$(buildah from --quiet "$BASE_IMAGE")" || fail "buildah from $BASE_IMAGE failed"
base_python="$(buildah run --isolation=chroot "$container" -- \
  python3 -c 'import platform; print(platform.python_version())' 2>/dev/null)"
buildah rm "$container" >/dev/null 2>&1
container=""
[ -n "$base_python" ] || fail "the base image has no working python3"
minor="${base_python%.*}"

# 2. The wheelhouse, on this host, with the base's Python minor version.
python="${MEETSYNC_IMAGE_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in "$(command -v "python$minor" 2>/dev/null)" \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$minor".*/bin/python"$minor" \
      /root/.pyenv/versions/"$minor".*/bin/python"$minor"; do
    if [ -x "$candidate" ] && [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$minor" ]; then
      python="$candidate"
      break
    fi
  done
fi
[ -n "$python" ] || fail "no python$minor on this host (the base's Python is $base_python): set MEETSYNC_IMAGE_PYTHON"
context="$work/context"
mkdir -p "$context"
cp -a Dockerfile .dockerignore pyproject.toml README.md LICENSE meetsync webhooks worker store \
  "$context"/ || fail "could not copy the sources"
find "$context" -name __pycache__ -prune -exec rm -rf {} +
wheelhouse() {
  "$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$context/wheelhouse" \
      "$context" || return 1
  local round gaps
  for round in 1 2 3; do
    gaps="$("$python" scripts/wheelhouse_gaps.py "$context/wheelhouse" "$base_python")" \
      || return 1
    [ -z "$gaps" ] && return 0
    say "the base's Python $base_python also needs: $(echo $gaps)"
    # shellcheck disable=SC2086 # one requirement a word
    "$python" -m pip wheel --quiet --disable-pip-version-check \
        --wheel-dir "$context/wheelhouse" $gaps || return 1
  done
}
timed "wheelhouse ($python, for the base's $base_python)" wheelhouse \
  || fail "pip wheel failed on this host (is the package index reachable?)"

# 3. The image, from the Dockerfile (the previous run's goes first: no untagged leftovers).
podman rmi --force "$IMAGE" >/dev/null 2>&1
timed "image build (buildah bud)" buildah bud --quiet --isolation=chroot \
    --build-arg BASE="$BASE_IMAGE" --build-arg WHEELHOUSE=wheelhouse \
    --tag "$IMAGE" --file "$context/Dockerfile" "$context" >/dev/null \
  || fail "buildah bud failed"

# 4. Checks, then run it.
user="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")"
entrypoint="$(buildah inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$IMAGE")"
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
base_size="$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")"
say "image $IMAGE: user $user, entry point $entrypoint, $((size / 1000000)) MB" \
    "($(( (size - base_size) / 1000000 )) MB on top of the $((base_size / 1000000)) MB base)"
case "$user" in ""|root|0|0:*|root:*) fail "the image runs as root (USER is '$user')";; esac
[ "$entrypoint" = "[meetsync]" ] || fail "the entry point is $entrypoint, not meetsync"
container="$(buildah from --quiet "$IMAGE")" || fail "buildah from $IMAGE failed"
inside() { buildah run --isolation=chroot "$container" -- "$@"; }
uid="$(inside id -u)" || fail "cannot run a command in the image"
[ "$uid" != 0 ] || fail "commands in the image run as root"
version="$(inside meetsync --version)" || fail "meetsync --version failed in the image"
say "in the image (uid $uid): $version"
timed "meetsync demo in the image" inside meetsync demo --provider all --appointments 200 \
    --zoom-meetings 60 --avon-appointments 60 --consularia-appointments 60 \
  || fail "meetsync demo failed in the image"
say "ok: the image builds, runs as uid $uid, and its demo converges"
