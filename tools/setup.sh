#!/usr/bin/env bash
# One-time set-up on a fresh Debian 12 machine with the .NET 10 SDK: restore and build everything.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK (dotnet) is required" >&2; exit 1; }
# NVRTC (Debian's libnvrtc11.2, no GPU needed) lets every kernel be compiled and checked by ptxas.
if [ "$(id -u)" = 0 ]; then tools/install-nvrtc.sh; else echo "setup: not root, skipping NVRTC (sudo tools/install-nvrtc.sh)"; fi
# g++ builds the CUDA emulator (tools/cuda-emulator), which runs the Gpu tests on the CPU.
if ! command -v g++ >/dev/null; then
  if [ "$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  else echo "setup: g++ is missing (apt-get install g++): the Gpu tests cannot run on the CUDA emulator" >&2; fi
fi
dotnet restore GhostNet.Cuda.sln
dotnet build GhostNet.Cuda.sln -c Release --no-restore
