#!/usr/bin/env bash
# Builds the self-contained GPU bundle (no .NET SDK needed where it runs): the NUnit test
# executable and ghostcuda published into one folder (they share one copy of the runtime), the
# run script and the PyTorch baseline, packed as artifacts/gpu-bundle.tar.xz (< 64 MiB), and
# prints the one command that runs it on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/gpu
rm -rf "$out" && mkdir -p "$out/app"
common=(-c Release -r linux-x64 --self-contained true -p:DebugType=none -p:InvariantGlobalization=true -p:SatelliteResourceLanguages=en)
dotnet publish tests/GhostNet.Tests "${common[@]}" -o "$out/app" >/dev/null
dotnet publish src/GhostNet.Cli "${common[@]}" -o "$out/app" >/dev/null
cp tools/gpu/run.sh tools/gpu/pytorch_baseline.py "$out/"
git rev-parse --short HEAD > "$out/COMMIT"
git diff --quiet || echo "$(cat "$out/COMMIT") (with uncommitted changes)" > "$out/COMMIT"
tar -C "$out" -cJf artifacts/gpu-bundle.tar.xz .
size=$(stat -c %s artifacts/gpu-bundle.tar.xz)
echo "bundle: artifacts/gpu-bundle.tar.xz ($((size / 1048576)) MiB)"
[ "$size" -lt $((64 * 1048576)) ] || { echo "bundle is over the 64 MiB upload limit" >&2; exit 1; }
cat <<CMD
On the GPU machine (device tool: carry ["artifacts/gpu-bundle.tar.xz"]), run:
  mkdir -p /tmp/g && tar -xJf artifacts/gpu-bundle.tar.xz -C /tmp/g && /tmp/g/run.sh "\$OUT"
then commit \$OUT/results.md as bench/results/<date>-<device>-gpu-check.md.
CMD
