#!/usr/bin/env bash
# One-time set-up on a fresh Debian 12 machine with the .NET 10 SDK: restore and build everything.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK (dotnet) is required" >&2; exit 1; }
dotnet restore GhostNet.Cuda.sln
dotnet build GhostNet.Cuda.sln -c Release --no-restore
