#!/usr/bin/env bash
# Ours against libtorch on the CPU, one process, same threads. libtorch gets the allocator
# settings that FACTS.md found it needs on this VM (without them glibc malloc page-faults on every
# large tensor and libtorch runs 2-40x slower); our backend allocates its arenas once and is unaffected.
set -euo pipefail
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
dotnet run -c Release --project bench/GhostNet.Bench -- --filter "${1:-*LibtorchComparison*}" --exporters github
