#!/usr/bin/env bash
# Installs NVRTC 11.8 from Debian's non-free component (no GPU needed): CI compiles every
# kernel with it to sm_80 and sm_90 cubin. Idempotent; needs root (CI and dev machines run as root).
set -euo pipefail
if ldconfig -p | grep -q 'libnvrtc\.so'; then exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "install-nvrtc: run as root to install libnvrtc11.2 (apt)" >&2; exit 1; fi
list=/etc/apt/sources.list.d/ghostnet-nonfree.sources
if [ ! -f "$list" ]; then
  cat > "$list" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnvrtc11.2 libnvrtc-builtins11.8 >/dev/null
ldconfig -p | grep 'libnvrtc\.so'
