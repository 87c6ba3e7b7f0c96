#!/usr/bin/env bash
# Builds the CUDA emulator into artifacts/cuda-emulator (or $1): libcuda.so.1 and libnvrtc.so.13
# with the runtime header the fake NVRTC compiles kernels against. Use it by putting that folder
# first in LD_LIBRARY_PATH: GhostNet.Cuda then finds the emulator before any real library.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../artifacts/cuda-emulator}"
mkdir -p "$out"
flags=(-std=c++17 -O2 -fPIC -shared -fvisibility=hidden -Wall -Wextra -Werror -Wno-unused-parameter)
g++ "${flags[@]}" -o "$out/libcuda.so.1" "$here/driver.cpp" -ldl
# The NVRTC version is 0.<checksum of the headers modules are built with and of how they are
# built>, so that a changed header or nvrtc.cpp invalidates the kernel cache's modules.
checksum=$(( $(cat "$here"/emu_*.h "$here/nvrtc.cpp" | cksum | cut -d' ' -f1) % 1000000 ))
g++ "${flags[@]}" -DEMU_RUNTIME_CHECKSUM=$checksum -o "$out/libnvrtc.so.13" "$here/nvrtc.cpp" -ldl
cp "$here"/emu_*.h "$out/"
echo "$(cd "$out" && pwd)"
