#!/usr/bin/env bash
# Install the system packages the tests need (etcd, openssl, Prometheus, and the
# toolchain that builds the local Kubernetes control plane).
#
# Idempotent: apt is not touched at all when every tool is already present.
# Services that Debian's packages would start (etcd, prometheus) are kept from
# starting and stopped if they did: the tests start their own instances.
set -euo pipefail

# command -> Debian package providing it
declare -A NEEDED=(
  [etcd]=etcd-server
  [openssl]=openssl
  [prometheus]=prometheus
  [go]=golang-go
  [rsync]=rsync
  [jq]=jq
  [dpkg-source]=dpkg-dev
)

missing=()
for cmd in "${!NEEDED[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing+=("${NEEDED[$cmd]}")
  fi
done

# Go sources (not a command) that patch the control-plane build: see build-control-plane.sh.
if [ ! -f /usr/share/gocode/src/github.com/modern-go/reflect2/unsafe_map.go ]; then
  missing+=(golang-github-modern-go-reflect2-dev)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "system deps: all present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "system deps: installing ${missing[*]}"

# Forbid service starts during the install (invoke-rc.d honours policy-rc.d).
# Keep an existing policy untouched; remove only the one we created.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() {
  if [ -n "$created_policy" ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
  fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Belt and braces: if an init system started a packaged service anyway, stop
# it (a no-op where there is no init system, as in containers).
if command -v service >/dev/null 2>&1; then
  for svc in etcd prometheus; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "system deps: $cmd still missing" >&2; exit 1; }
done
echo "system deps: installed"
