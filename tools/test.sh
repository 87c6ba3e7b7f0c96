#!/usr/bin/env bash
# Runs every test (GPU tests skip with a reason when no GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet test --solution GhostNet.Cuda.sln -c Release "$@"
