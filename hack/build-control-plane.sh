#!/usr/bin/env bash
# Build (once) the Kubernetes 1.20 control-plane binaries that the local test
# cluster runs: kube-apiserver, kube-controller-manager, kube-scheduler, plus a
# kubectl of the same version (the tests use it; a newer one on PATH also works).
#
# Why from Debian's source package: these machines have no Docker/kind and no
# internet besides package registries; Debian's `kubernetes` source (bookworm,
# 1.20.2) ships every Go dependency vendored, so it builds offline.
#
# Idempotent: exits at once when the binaries are already cached in
#   ${KUBETUNE_CACHE:-$HOME/.cache/kubetune}/k8s-1.20.2/bin/
# A cold build takes about 10 minutes on 2 cores.
set -euo pipefail

CACHE=${KUBETUNE_CACHE:-$HOME/.cache/kubetune}
ROOT=$CACHE/k8s-1.20.2
BIN=$ROOT/bin
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

# Bumped whenever the build changes (a new patch), so stale cached binaries are rebuilt.
BUILD_ID="1.20.2+reflect2-1.0.2"

have_all() {
  local b
  for b in "${BINS[@]}"; do
    [ -x "$BIN/$b" ] || return 1
  done
  [ "$(cat "$BIN/.build-id" 2>/dev/null)" = "$BUILD_ID" ]
}

if have_all; then
  echo "control plane: cached in $BIN"
  exit 0
fi

mkdir -p "$ROOT"
# One build at a time (two concurrent `make test` runs would race otherwise).
exec 9>"$ROOT/.build.lock"
flock 9
if have_all; then
  echo "control plane: cached in $BIN"
  exit 0
fi

for cmd in go rsync jq dpkg-source apt-get; do
  command -v "$cmd" >/dev/null || {
    echo "control plane: '$cmd' missing; run hack/install-system-deps.sh first" >&2
    exit 1
  }
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

SRC_PARENT=$ROOT/src
src_dir() { find "$SRC_PARENT" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-1.20*' | head -n1; }

if [ -z "$(src_dir 2>/dev/null)" ]; then
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version: 1.20'; then
    echo "control plane: adding a deb-src entry for bookworm"
    $SUDO tee /etc/apt/sources.list.d/kubetune-deb-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  fi
  rm -rf "$SRC_PARENT"
  mkdir -p "$SRC_PARENT"
  (cd "$SRC_PARENT" && apt-get source -qq kubernetes)
fi
SRC=$(src_dir)
echo "control plane: building from $SRC (about 10 minutes on 2 cores)"

start=$(date +%s)
(
  cd "$SRC"
  # The GOPATH layout Debian's own debian/rules sets up.
  export GOPATH=$SRC/.go
  export CGO_ENABLED=0
  export GOCACHE=$ROOT/gocache
  # No git metadata in a source package: give the version explicitly.
  export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean
  mkdir -p .go/src/k8s.io
  [ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
  # Kubernetes 1.20 vendors modern-go/reflect2 1.0.1, whose unsafe map iteration
  # crashes (SIGSEGV) the API server under Go >= 1.18 as soon as a custom resource
  # is created. reflect2 1.0.2 fixes it and is API-compatible: take Debian's copy.
  fixed=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -f "$fixed/unsafe_map.go" ] || {
    echo "control plane: $fixed missing (golang-github-modern-go-reflect2-dev)" >&2; exit 1; }
  rm -rf vendor/github.com/modern-go/reflect2
  mkdir -p vendor/github.com/modern-go/reflect2
  cp "$fixed"/*.go "$fixed"/*.s vendor/github.com/modern-go/reflect2/ 2>/dev/null || \
    cp "$fixed"/*.go vendor/github.com/modern-go/reflect2/
  rm -f vendor/github.com/modern-go/reflect2/*_test.go
  # go.mod and vendor/modules.txt keep naming v1.0.1: vendor mode checks those lists
  # against each other, not the files, and the API is the same.
  make WHAT="${BINS[*]/#/cmd/}"
)
mkdir -p "$BIN"
for b in "${BINS[@]}"; do
  install -m 0755 "$SRC/_output/bin/$b" "$BIN/$b.tmp"
  mv -f "$BIN/$b.tmp" "$BIN/$b"
done
echo "$BUILD_ID" > "$BIN/.build-id"
echo "control plane: built in $(( $(date +%s) - start ))s"
echo "control plane: binaries in $BIN"
