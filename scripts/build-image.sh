#!/usr/bin/env bash
# Build the Dockerfile into localhost/tritonops:dev with rootful podman (`make image`).
#
# * Idempotent: the image carries a label with the hash of everything the build reads; when
#   that hash is unchanged (and the base image is the same) nothing is rebuilt.
# * The base image (the Dockerfile's PYTHON_IMAGE) is used if it is already local, else pulled
#   with a short timeout; when no registry answers (these machines reach none), a stand-in is
#   built from Debian packages with debootstrap and imported under the base's name. The build
#   output says which one was used.
# * pip inside the build uses the same package sources as the host's pip (its effective
#   configuration: index URLs, find-links, CA bundle, constraints), with host networking.
#
# Environment: IMAGE (default localhost/tritonops:dev), DEBIAN_MIRROR (for the stand-in),
# PULL_TIMEOUT (seconds, default 20), FORCE=1 rebuilds even when the hash matches.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=${IMAGE:-localhost/tritonops:dev}
PULL_TIMEOUT=${PULL_TIMEOUT:-20}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/image/containers.conf}

for tool in podman runc; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is not installed: run \`make system-deps\`" >&2; exit 1; }
done
pm() { podman --runtime runc "$@"; }
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

# One build at a time on this machine (tests and make may both ask for the image).
exec 9>"${TMPDIR:-/tmp}/tritonops-build-image.lock"
flock 9

BASE=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile | head -1)
[ -n "$BASE" ] || { echo "build-image: no 'ARG PYTHON_IMAGE=' default in the Dockerfile" >&2; exit 1; }

ensure_base() {
  if pm image exists "$BASE"; then
    echo "base image: $BASE (local: $(pm image inspect --format '{{index .Labels "tritonops.base"}}' "$BASE" | sed 's/^$/as pulled/'))"
    return
  fi
  local ref=$BASE
  case ${BASE%%/*} in *.*|*:*|localhost) ;; *) ref=docker.io/library/$BASE ;; esac
  echo "base image: $BASE is not local; pulling $ref (timeout ${PULL_TIMEOUT}s)..."
  if timeout "$PULL_TIMEOUT" podman --runtime runc pull -q "$ref" >/dev/null 2>&1; then
    pm tag "$ref" "$BASE"
    echo "base image: pulled $ref"
    return
  fi
  command -v debootstrap >/dev/null || { echo "build-image: cannot pull $ref and debootstrap is not installed (make system-deps)" >&2; exit 1; }
  echo "base image: NO REGISTRY REACHABLE -- building a STAND-IN for $BASE from Debian bookworm packages"
  echo "            (debootstrap minbase + python3.11, python3.11-venv, ca-certificates from $DEBIAN_MIRROR; ~1 min)"
  # python3-distutils: python3.11-venv depends on the virtual python3.11-distutils, which
  # debootstrap's resolver cannot satisfy by itself.
  local rootfs
  rootfs=$(mktemp -d /var/tmp/tritonops-base.XXXXXX)
  cleanup+=("$rootfs" "$rootfs.log")
  debootstrap --variant=minbase --include=python3.11,python3.11-venv,python3-distutils,ca-certificates \
    bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 || {
      tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; echo "build-image: debootstrap failed" >&2; exit 1; }
  rm -f "$rootfs.log"
  # What python:3.11-slim offers the Dockerfile: `python`/`python3` on PATH.
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
  # Nothing a container needs: package caches and lists, docs, man pages, translations.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*
  tar -C "$rootfs" -c . | pm import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL tritonops.base="stand-in: debootstrap bookworm minbase + python3.11"' \
    --change 'CMD ["python3"]' \
    --message "stand-in for $BASE built by scripts/build-image.sh" - "$BASE" >/dev/null
  echo "base image: stand-in imported as $BASE"
}

# What the build reads: the Dockerfile, .dockerignore, the context it lets through (same list as
# .dockerignore), this script; plus the base image's id (below).
inputs_hash() {
  {
    sha256sum Dockerfile .dockerignore scripts/build-image.sh pyproject.toml README.md \
      image/requirements.lock
    find src -type d \( -name __pycache__ -o -name '*.egg-info' \) -prune -o -type f ! -name '*.pyc' -print0 \
      | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

# The host pip's effective configuration (files and PIP_* variables), as one pip.conf for the
# build, and the local paths it names (indexes, wheel dirs, CA bundle, constraints) to mount
# read-only at the same place.
pip_config() {
  local out=$1
  local py=python3
  [ -x .venv/bin/python ] && py=.venv/bin/python
  "$py" - "$out" <<'EOF'
import os, shlex, subprocess, sys
from pathlib import Path

out = Path(sys.argv[1])
listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False).stdout
sections: dict[str, dict[str, str]] = {}
env: dict[str, str] = {}
for line in listed.splitlines():
    key, _, value = line.partition("=")
    value = shlex.split(value)[0] if value else ""
    section, _, name = key.rpartition(".")
    if section == ":env:":
        env[name] = value
    else:
        sections.setdefault(section, {})[name] = value
sections.setdefault("global", {}).update(env)  # PIP_* variables override the files
mounts = set()
for values in sections.values():
    for name, value in values.items():
        if name not in {"index-url", "extra-index-url", "find-links", "cert", "client-cert", "constraint"}:
            continue
        for token in value.split():
            path = token.removeprefix("file://")
            if not path.startswith("/") or not os.path.exists(path):
                continue
            p = Path(path)
            # A PEP 503 index <root>/simple links to files elsewhere under <root>.
            mounts.add(str(p.parent if p.name == "simple" else p))
with open(out, "w") as fh:
    for section, values in sections.items():
        fh.write(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
print("\n".join(sorted(mounts)))
EOF
}

ensure_base
base_id=$(pm image inspect --format '{{.Id}}' "$BASE")
hash="$(inputs_hash)-${base_id:0:12}"
current=$(pm image inspect --format '{{index .Labels "tritonops.inputs"}}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$hash" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "image: $IMAGE is up to date (inputs $hash); $(pm image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
  exit 0
fi
# The previous build's final stage (the image and its untagged parents, leaf first): removed
# after a rebuild so that each source change does not leave another copy of the venv layer.
old_chain=()
id=$(pm image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
while [ -n "$id" ] && [ "${#old_chain[@]}" -lt 50 ]; do
  old_chain+=("$id")
  id=$(pm image inspect --format '{{.Parent}}' "$id" 2>/dev/null || true)
done

work=$(mktemp -d)
cleanup+=("$work")
volumes=(-v "$work/pip.conf:/etc/pip.conf:ro")
while read -r path; do
  [ -n "$path" ] && volumes+=(-v "$path:$path:ro")
done < <(pip_config "$work/pip.conf")
echo "pip sources (the host pip's): $(grep -E '^(index-url|extra-index-url|find-links|cert) ' "$work/pip.conf" | tr '\n' ';')"

echo "image: building $IMAGE (inputs $hash)..."
started=$(date +%s)
pm build --network host --pull=never "${volumes[@]}" \
  --build-arg "PYTHON_IMAGE=$BASE" \
  --label "tritonops.inputs=$hash" \
  --label "org.opencontainers.image.title=tritonops" \
  -t "$IMAGE" -f Dockerfile . 2>&1 | sed -u 's/^/  | /'
took=$(( $(date +%s) - started ))
for id in "${old_chain[@]}"; do
  # Stops at the first image still in use: tagged (the base, the new image) or with children
  # (layers the new build shares).
  [ -z "$(pm image inspect --format '{{.RepoTags}}' "$id" 2>/dev/null | tr -d '[]')" ] || break
  pm rmi "$id" >/dev/null 2>&1 || break
done
echo "image: built $IMAGE in ${took}s; $(pm image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
