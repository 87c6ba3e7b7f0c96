#!/usr/bin/env bash
# Reads the Microsoft.Testing.Platform summaries from a `dotnet test` log and prints one line
# "N passed, N failed, N skipped" (summed over test projects), the form CI recognises.
set -euo pipefail
log=$1
awk '
  /^[[:space:]]*failed: *[0-9]+/    { f += $2 }
  /^[[:space:]]*succeeded: *[0-9]+/ { p += $2 }
  /^[[:space:]]*skipped: *[0-9]+/   { s += $2 }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }
' "$log"
