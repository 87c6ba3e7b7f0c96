#!/usr/bin/env bash
# Runs every test, then the Gpu tests again on the CUDA emulator (tools/cuda-emulator): on a
# machine without a GPU the first run skips them, and the emulator runs the kernels and the
# launch code on the CPU against the CPU backend. Arguments go to the first `dotnet test`.
# Then the kernel tests once more with the emulator running threads last to first, and once
# with its shared-memory race detector on and blocks and threads in a seeded random order
# (GHOSTNET_EMU_SEED, or one drawn from the commit: a rerun of a commit replays its order).
# SKIP_EMULATOR=1 leaves the emulator runs out. GHOSTNET_EXPECT_CUDA (GpuHarness.RequireGpu):
# 0 in the first run, where no device is a skip even under CI=true; 1 in the emulator runs,
# where no device (a broken emulator, say) fails every Gpu test instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
GHOSTNET_EXPECT_CUDA=0 dotnet test --solution GhostNet.Cuda.sln -c Release "$@" || status=$?
# Instant: every mutation of tools/cuda-emulator/mutate.sh must still apply to the kernels, so a
# kernel rewrite updates the list in the same change (the mutation run itself is not in CI).
tools/cuda-emulator/mutate.sh --check || status=$?
if [ -z "${SKIP_EMULATOR:-}" ]; then
  echo "== Gpu tests on the CUDA emulator =="
  emulator=$(tools/cuda-emulator/build.sh)
  export LD_LIBRARY_PATH="$emulator${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" GHOSTNET_KERNEL_CACHE="$emulator/kernel-cache" GHOSTNET_EXPECT_CUDA=1
  dotnet test --project tests/GhostNet.Tests/GhostNet.Tests.csproj -c Release --no-build --filter Category=Gpu || status=$?
  kernel_tests="FullyQualifiedName~CudaOpTests|FullyQualifiedName~CudaTensorCoreTests|FullyQualifiedName~EmulatorTests|FullyQualifiedName~EmulatorRaceTests|FullyQualifiedName~WarpShuffleTests|FullyQualifiedName~WarpMatrixTests"
  echo "== kernel tests on the CUDA emulator, threads run last to first =="
  GHOSTNET_EMU_ORDER=reverse dotnet test --project tests/GhostNet.Tests/GhostNet.Tests.csproj -c Release --no-build \
    --filter "$kernel_tests" || status=$?
  commit=$(git rev-parse --short=8 HEAD 2>/dev/null || echo 1)
  seed=${GHOSTNET_EMU_SEED:-$((16#$commit % 1000000))}
  echo "== kernel tests on the CUDA emulator with racecheck, blocks and threads in random order (GHOSTNET_EMU_ORDER=random:$seed) =="
  GHOSTNET_EMU_RACECHECK=1 GHOSTNET_EMU_ORDER=random:$seed dotnet test --project tests/GhostNet.Tests/GhostNet.Tests.csproj -c Release --no-build \
    --filter "$kernel_tests" || status=$?
fi
exit "$status"
