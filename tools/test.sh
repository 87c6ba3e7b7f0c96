#!/usr/bin/env bash
# Runs every test, then the Gpu tests again on the CUDA emulator (tools/cuda-emulator): on a
# machine without a GPU the first run skips them, and the emulator runs the kernels and the
# launch code on the CPU against the CPU backend. Arguments go to the first `dotnet test`.
# Then the kernel tests once more with the emulator running threads last to first.
# SKIP_EMULATOR=1 leaves the emulator runs out. GHOSTNET_EXPECT_CUDA (GpuHarness.RequireGpu):
# 0 in the first run, where no device is a skip even under CI=true; 1 in the emulator runs,
# where no device (a broken emulator, say) fails every Gpu test instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
GHOSTNET_EXPECT_CUDA=0 dotnet test --solution GhostNet.Cuda.sln -c Release "$@" || status=$?
if [ -z "${SKIP_EMULATOR:-}" ]; then
  echo "== Gpu tests on the CUDA emulator =="
  emulator=$(tools/cuda-emulator/build.sh)
  export LD_LIBRARY_PATH="$emulator${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" GHOSTNET_KERNEL_CACHE="$emulator/kernel-cache" GHOSTNET_EXPECT_CUDA=1
  dotnet test --project tests/GhostNet.Tests/GhostNet.Tests.csproj -c Release --no-build --filter Category=Gpu || status=$?
  echo "== kernel tests on the CUDA emulator, threads run last to first =="
  GHOSTNET_EMU_ORDER=reverse dotnet test --project tests/GhostNet.Tests/GhostNet.Tests.csproj -c Release --no-build \
    --filter "FullyQualifiedName~CudaOpTests|FullyQualifiedName~EmulatorTests|FullyQualifiedName~WarpShuffleTests|FullyQualifiedName~WarpMatrixTests" || status=$?
fi
exit "$status"
