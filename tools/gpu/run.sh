#!/usr/bin/env bash
# Runs on the GPU machine (no .NET SDK, no network) from the unpacked bundle: GPU tests, the
# sanitizers on a short training run, our speed table and PyTorch's, into results.md (to read)
# and results.json (for `ghostcuda report`, whose tables end results.md).
# Usage: run.sh OUT_DIR
# Stages carry time limits (12 minutes in all, past one device call's 10: the last stage, the
# Ghost comparison, is the one a slow run loses); about 5 minutes are expected. Only six files
# come back (the device tool returns eight at most): parts go to /tmp.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run.sh OUT_DIR}
mkdir -p "$out"
export GHOSTNET_KERNEL_CACHE=$here/kernel-cache DOTNET_CLI_TELEMETRY_OPTOUT=1
results=$out/results.md
parts=$(mktemp -d /tmp/ghostnet-parts.XXXX)

# libnvrtc opens libnvrtc-builtins by name, so the folder holding both must be on the loader's
# path: the toolkit's first, then any other copy (the pip NVIDIA wheels under /opt).
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
           $(find /usr/local /usr/lib /opt -name 'libnvrtc-builtins.so*' -printf '%h\n' 2>/dev/null | sort -u); do
  if ls "$dir"/libnvrtc.so.1* >/dev/null 2>&1 && ls "$dir"/libnvrtc-builtins.so* >/dev/null 2>&1; then
    export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    break
  fi
done
step() { echo "== $* ($(date +%T))" | tee -a "$out/progress.log"; }
{
  echo "# GPU check $(date -u +%F)"
  echo
  echo "- commit: $(cat "$here/COMMIT")"
  echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
  echo "- CUDA: $(ls -d /usr/local/cuda-* 2>/dev/null | tr '\n' ' ')"
  echo "- libcuda: $(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')"
  echo "- LD_LIBRARY_PATH: ${LD_LIBRARY_PATH:-(unset)}: $(ls "${LD_LIBRARY_PATH%%:*}" 2>/dev/null | grep -E '^libnvrtc' | tr '\n' ' ')"
  echo
  echo '## ghostcuda devices'
  echo '```'
  "$here/app/ghostcuda" devices 2>&1
  echo '```'
} > "$results"

step "GPU tests"
timeout 170 "$here/app/GhostNet.Tests" --filter "TestCategory=Gpu" --output Detailed > "$out/gpu-tests.log" 2>&1
echo "gpu tests exit $?" >> "$out/progress.log"
{ echo; echo '## GPU tests (CUDA against the CPU backend)'; echo '```'; grep -E "^(passed|failed|skipped)|total:|failed:|succeeded:|skipped:|relative error|largest|step [0-9]+:|eval on" "$out/gpu-tests.log" | head -150; echo '```'; } >> "$results"

step "our speed"
{ echo; echo '## ghostcuda bench (GhostNet 1.0x, 224)'; } >> "$results"
# --profile: one step of batch 256 per op family, measured (each op synchronised) beside the model of
# docs/kernels.md ("Modelled cost per training step"): two more steps of batch 256 (the table above runs 13).
timeout 100 "$here/app/ghostcuda" bench --device cuda --train-batches 64,256 --infer-batches 1,256 --steps 10 --warmup 3 --profile --profile-batch 256 \
  --json "$parts/bench-fp32.json" >> "$results" 2>&1
# The same step with the GEMMs on the tensor cores (tf32, as PyTorch's cuDNN convs): the ratio to the fp32 rows above.
timeout 45 "$here/app/ghostcuda" bench --device cuda --precision tf32 --train-batches 64,256 --infer-batches 1,256 --steps 10 --warmup 3 \
  --json "$parts/bench-tf32.json" >> "$results" 2>&1
# And with bf16 activations (issue 13: the row the targets compare with PyTorch's bf16 autocast).
timeout 45 "$here/app/ghostcuda" bench --device cuda --precision bf16 --train-batches 64,256 --infer-batches 1,256 --steps 10 --warmup 3 \
  --json "$parts/bench-bf16.json" >> "$results" 2>&1

step "sanitizers"
san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
{ echo; echo '## compute-sanitizer (memcheck, racecheck) on one training step and one inference'; echo '```'; } >> "$results"
if [ -n "$san" ]; then
  for tool in memcheck racecheck; do
    # One training step and one inference of GhostNet-0.5x at 64x64 launches every kernel the trainer uses.
    timeout 75 "$san" --tool $tool --error-exitcode 9 "$here/app/ghostcuda" bench --device cuda --arch ghostnet_050 \
      --size 64 --train-batches 8 --infer-batches 2 --steps 1 --warmup 0 > "$out/$tool.log" 2>&1
    echo "$tool: exit $? ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/$tool.log" | tail -1))" >> "$results"
  done
else
  echo "compute-sanitizer not found" >> "$results"
fi
echo '```' >> "$results"

step "pytorch baseline"
{ echo; echo '## PyTorch baseline (timm ghostnet_100, same GPU)'; } >> "$results"
timeout 120 python3 "$here/pytorch_baseline.py" --steps 10 --warmup 3 ${PYTORCH_COMPILE:+--compile} --json "$parts/pytorch.json" >> "$results" 2>&1

step "results.json"
# One file for `ghostcuda report` (and scripts): our runs, PyTorch's, the tests' counts.
python3 - "$parts" "$out/gpu-tests.log" "$(cat "$here/COMMIT")" > "$out/results.json" <<'PY'
import datetime, glob, json, os, re, subprocess, sys
parts, tests_log, commit = sys.argv[1:4]
def load(path):
    try:
        with open(path) as f: return json.load(f)
    except (OSError, ValueError): return None
counts = {}
try:
    for key, value in re.findall(r"^\s*(total|failed|succeeded|skipped):\s*(\d+)", open(tests_log).read(), re.M): counts[key] = int(value)
except OSError: pass
try: device = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip().splitlines()[0]
except (OSError, IndexError): device = None
runs = [r for r in (load(p) for p in sorted(glob.glob(os.path.join(parts, "bench-*.json")))) if r]
json.dump({"date": datetime.date.today().isoformat(), "commit": commit, "device": device, "gpu_tests": counts,
           "ghostcuda": runs, "pytorch": load(os.path.join(parts, "pytorch.json"))}, sys.stdout, indent=1)
PY
{ echo; "$here/app/ghostcuda" report "$out/results.json" 2>&1; } >> "$results"

# Last, so that a run cut short by the call's limit loses only this: the paper's Ghost-against-
# standard networks (issue 14) side by side on the GPU, against docs/kernels.md's modelled ratios.
step "ghost against standard"
{ echo; echo '## ghostcuda compare (CIFAR networks at 32x32, batch 256, fp32)'; } >> "$results"
timeout 60 "$here/app/ghostcuda" compare vgg16_cifar ghost_vgg16_cifar ghost_vgg16_cifar:s=3 ghost_vgg16_cifar:s=4 ghost_vgg16_cifar:s=5 \
  --device cuda -b 256 --steps 5 --warmup 2 >> "$results" 2>&1
timeout 40 "$here/app/ghostcuda" compare resnet56 ghost_resnet56 --device cuda -b 256 --steps 5 --warmup 2 >> "$results" 2>&1
{ echo; echo '## ghostcuda compare (GhostNet 1.0x against MobileNetV3-Large 0.75x and 1.0x at 224, batch 128, fp32)'; } >> "$results"
timeout 60 "$here/app/ghostcuda" compare ghostnet_100 mobilenetv3_large_075 mobilenetv3_large_100 --device cuda -b 128 --steps 5 --warmup 2 >> "$results" 2>&1
step "done"
