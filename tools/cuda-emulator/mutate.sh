#!/usr/bin/env bash
# Tests the tests: applies each kernel mutation below, one at a time, to a copy of kernels/, runs
# the emulator tests that should notice it (GHOSTNET_KERNEL_DIR points GhostNet.Cuda at the copy,
# so nothing is rebuilt; the kernel cache keys on the source, so the mutant is compiled afresh)
# and checks that they FAIL. Prints a table: mutation, tests run, caught, how.
#
#   tools/cuda-emulator/mutate.sh [--plain] [--check] [NAME...]
#
# NAME...  only the mutations whose names contain one of these words
# --plain  also run each mutant without the race detector (the plain forward-order run CI's
#          Gpu pass does), to show what racecheck adds
# --check  only check that every mutation's original text is still in its kernel file
# --diff   as --check, and show each mutation as a diff
#
# Runs under GHOSTNET_EMU_RACECHECK=1 (forward order). Needs the test project built
# (dotnet build tests/GhostNet.Tests -c Release). Not part of tools/test.sh: about three minutes
# on two cores (--plain: four and a half). Exit status 1 when a mutation is not caught, 2 when a mutation no longer applies
# or the unmutated kernels fail.
#
# A mutation is (name, file, exact original text, replacement, test filter). The original must
# occur exactly once in the file: when a kernel is rewritten, the script stops and names the
# mutation to update.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
kernels="$root/kernels"

names=() files=() originals=() replacements=() filters=()
mutation() { names+=("$1"); files+=("$2"); originals+=("$3"); replacements+=("$4"); filters+=("$5"); }
op() { local f="" t; for t in "$@"; do f+="${f:+|}FullyQualifiedName~CudaOpTests.$t"; done; echo "$f"; }

mutation "block_sum without its leading barrier" common.cuh \
  $'    __syncthreads(); // warp_sums may still be read by a previous call\n' '' \
  "$(op Batch_norm_matches_cpu Cross_entropy_and_top_k_match_cpu)"
mutation "gemm without the barrier after a tile" gemm.cu \
  $'                for (int c = 0; c < TN; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);\n        }\n        __syncthreads();' $'                for (int c = 0; c < TN; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);\n        }' \
  "$(op Pointwise_conv_matches_cpu Linear_matches_cpu)"
mutation "gemm skips every other K tile" gemm.cu \
  'for (int k0 = k_begin; k0 < k_end; k0 += BK)' 'for (int k0 = k_begin; k0 < k_end; k0 += 2 * BK)' \
  "$(op Pointwise_conv_matches_cpu Linear_matches_cpu)"
mutation "split_sum loses the last split-K part" gemm.cu \
  'for (int k = 0; k < splits; k++) s += partial[k * count + e];' 'for (int k = 0; k < splits - 1; k++) s += partial[k * count + e];' \
  "$(op Split_k_summed_in_the_gemm_equals_split_sum)"
mutation "the gemm's split-K sum loses the last piece" gemm.cu \
  'for (int k = 0; k < (int)gridDim.z; k++) s += (float)all[k * sCb + at];' 'for (int k = 0; k < (int)gridDim.z - 1; k++) s += (float)all[k * sCb + at];' \
  "$(op Pointwise_conv_matches_cpu Dense_conv_matches_cpu)"
mutation "the gemm's batch-norm operand steps z by dy's image stride" gemm.cu \
  '        c.z_offset += zS - kSeg * sK;' '        c.z_offset += sS - kSeg * sK;' \
  "$(op Pointwise_conv_backward_through_batch_norm_equals_the_unfused_launches)"
mutation "the gemm's statistics merge loses the last part" gemm.cu \
  'for (int p = lane; p < S; p += T) chan_merge(' 'for (int p = lane; p < S - 1; p += T) chan_merge(' \
  "$(op Pointwise_conv_with_batch_norm_statistics_matches_the_unfused_launches)"
mutation "gemm bound check off by one (row <= rows)" gemm.cu \
  'v[j] = row < rows && k < k_end ? (float)c.base' 'v[j] = row <= rows && k < k_end ? (float)c.base' \
  "$(op Pointwise_conv_matches_cpu Linear_matches_cpu Dense_conv_matches_cpu)"
mutation "depthwise forward column bound off by one (iw <= W)" depthwise_conv.cu \
  'if (iw < 0 || iw >= W) continue;' 'if (iw < 0 || iw > W) continue;' \
  "$(op Depthwise_conv_matches_cpu)"
mutation "the depthwise forward's taps skip their input's batch norm" depthwise_conv.cu \
  '            if constexpr (APPLY) v = in(v);' '' \
  "$(op Depthwise_conv_applying_its_input_batch_norm_equals_the_unfused_launches)"
mutation "the depthwise forward writes its input batch norm's input, not its output" depthwise_conv.cu \
  '= in(xp[at.h * W + at.w]);' '= xp[at.h * W + at.w];' \
  "$(op Depthwise_conv_applying_its_input_batch_norm_equals_the_unfused_launches)"
mutation "depthwise weight gradient without its barrier" depthwise_conv.cu \
  $'if (t < taps) partial[t][threadIdx.x] = acc[t];\n    __syncthreads();' 'if (t < taps) partial[t][threadIdx.x] = acc[t];' \
  "$(op Depthwise_conv_matches_cpu)"
mutation "batch norm's last block loses the last chunk" batch_norm.cuh \
  'for (int s = 0; s < S; s++) chan_merge(' 'for (int s = 0; s < S - 1; s++) chan_merge(' \
  "$(op Batch_norm_matches_cpu)"
mutation "a fused batch norm's dx takes the ReLU mask from x's sign, not y's" batch_norm.cuh \
  'return through(x, act_kind ? relu_grad(y(x), dy) : dy); }' 'return through(x, act_kind ? relu_grad(x, dy) : dy); }' \
  "$(op Depthwise_conv_backward_through_batch_norm_equals_the_unfused_launches Pointwise_conv_backward_through_batch_norm_equals_the_unfused_launches)"
mutation "batch norm's dx takes its activation's gradient at x, not at y(x)" batch_norm.cuh \
  'return through(x, bn_activation_grad(act_kind, y(x), dy)); }' 'return through(x, bn_activation_grad(act_kind, x, dy)); }' \
  "$(op Batch_norm_matches_cpu Batch_norm_relu_mask_from_x_equals_the_unfused_path)"
mutation "a fused batch norm's parameter-gradient sums take the ReLU mask from x's sign (v2.12's shared sums)" batch_norm.cuh \
  '{ add_through(x, act_kind ? relu_grad(y(x), dy) : dy); }' '{ add_through(x, act_kind ? relu_grad(x, dy) : dy); }' \
  "$(op Depthwise_conv_backward_reducing_its_input_batch_norm_equals_the_unfused_launches)"
mutation "batch norm's parameter-gradient sums take the activation's gradient at x" batch_norm.cuh \
  '{ add_through(x, bn_activation_grad(act_kind, y(x), dy)); }' '{ add_through(x, bn_activation_grad(act_kind, x, dy)); }' \
  "$(op Batch_norm_matches_cpu)"
mutation "batch norm applies ReLU where hard-swish is asked (issue 14)" common.cuh \
  'return kind == 0 ? v : kind == 1 ? relu(v) : hard_swish(v); }' 'return kind == 0 ? v : relu(v); }' \
  "$(op Batch_norm_matches_cpu)"
mutation "hard-swish's gradient on its bend loses the 1/2 (issue 14)" common.cuh \
  'dy * fmaf(x, 1.f / 3.f, 0.5f)' 'dy * (x * (1.f / 3.f))' \
  "$(op Batch_norm_matches_cpu Activations_carry_NaN_and_Inf_as_the_cpu Linear_backward_through_its_activation_equals_the_activation_backward_and_the_linear_backward)"
mutation "the reducing depthwise data gradient sums its own part, not the finished gradient" depthwise_conv.cu \
  $'*p = d;\n        sums.add(r.z[at.n * r.zs + at_c], d);' $'*p = d;\n        sums.add(r.z[at.n * r.zs + at_c], s);' \
  "$(op Depthwise_conv_backward_reducing_its_input_batch_norm_equals_the_unfused_launches)"
mutation "the reducing depthwise data gradient reads its input's z with dx's image stride" depthwise_conv.cu \
  $'*p = d;\n        sums.add(r.z[at.n * r.zs + at_c], d);' $'*p = d;\n        sums.add(r.z[at.n * dxs + at_c], d);' \
  "$(op Depthwise_conv_backward_reducing_its_input_batch_norm_equals_the_unfused_launches)"
mutation "the gemm's activation epilogue writes y, not activation(y) (v2.14)" gemm.cu \
  'act_out[at] = activation(kind, C[at]);' 'act_out[at] = C[at];' \
  "$(op Linear_with_its_activation_equals_the_linear_and_the_activation)"
mutation "the gemm's activation epilogue without its barrier (v2.14)" gemm.cu \
  '    __syncthreads(); // every thread'"'"'s C stores are visible to the block' '' \
  "$(op Linear_with_its_activation_equals_the_linear_and_the_activation)"
mutation "squeeze-excite's one-pass input gradient drops the pool's share (v2.15)" elementwise.cu \
  '*p = fmaf(dp[nc], scale, v);' '*p = v;' \
  "$(op Squeeze_excite_input_gradient_in_one_pass_equals_the_two_launches)"
mutation "the one-pass depthwise backward sums its own part of dx, not the finished gradient (v2.13)" depthwise_conv.cu \
  'if (reduce) sums.add(r.z[at.n * r.zs + at_c], d);' 'if (reduce) sums.add(r.z[at.n * r.zs + at_c], s);' \
  "$(op Depthwise_conv_backward_reducing_its_input_batch_norm_equals_the_unfused_launches)"
mutation "the one-pass depthwise backward's weight taps read the input transposed (v2.13)" depthwise_conv.cu \
  'depthwise_weight_taps<K, 1>(acc, g, xp, H, W, at.h, at.w, k, 1, pad);' 'depthwise_weight_taps<K, 1>(acc, g, xp, H, W, at.w, at.h, k, 1, pad);' \
  "$(op Depthwise_conv_backward_through_batch_norm_equals_the_unfused_launches)"
mutation "the summing depthwise forward reads the addend with the sum's image stride (v2.16)" depthwise_conv.cu \
  'if (a.r) a.sum[at.n * a.ss + offset] = u + a.r[at.n * a.rs + offset];' 'if (a.r) a.sum[at.n * a.ss + offset] = u + a.r[at.n * a.ss + offset];' \
  "$(op Depthwise_conv_writing_a_residual_sum_equals_the_unfused_launches)"
mutation "the summing batch norm apply drops its addend (v2.16)" batch_norm.cu \
  '        if (r) v += r[at.n * rs + offset];' '' \
  "$(op Depthwise_conv_writing_a_residual_sum_equals_the_unfused_launches Pointwise_conv_batch_norm_writing_a_residual_sum_equals_the_unfused_launches)"
mutation "the column sum writes the activation's gradient but sums the activated one (v2.17)" gemm.cu \
  $'            dz[at] = g;\n        }\n        s += g;' $'            dz[at] = g;\n            g = x[at];\n        }\n        s += g;' \
  "$(op Linear_backward_through_its_activation_equals_the_activation_backward_and_the_linear_backward)"
mutation "the gated gemm's cursor does not step the gate into the next image (v2.18)" gemm.cu \
  '        c.g_offset += gS - kSeg * gK;' '' \
  "$(op Pointwise_conv_reading_a_gated_input_equals_the_channel_scale_and_the_conv)"
mutation "the gated gemm scales by the pixel's gate, not the channel's (v2.18)" gemm.cu \
  'const i64 gstep = GATE ? cb.dk * g_k + cb.drow * g_row : 0;' 'const i64 gstep = GATE ? cb.drow * g_k + cb.dk * g_row : 0;' \
  "$(op Pointwise_conv_reading_a_gated_input_equals_the_channel_scale_and_the_conv)"
mutation "fused depthwise statistics walk the plane as W x H" depthwise_conv.cu \
  $'    for (NchwCursor at(e, blockDim.x, 1, Ho, Wo); e < hi; e += blockDim.x, at.advance(1, Ho, Wo))\n    {\n        const act* xp =' $'    for (NchwCursor at(e, blockDim.x, 1, Wo, Ho); e < hi; e += blockDim.x, at.advance(1, Wo, Ho))\n    {\n        const act* xp =' \
  "$(op Depthwise_conv_with_batch_norm_statistics_equals_the_unfused_launches)"
mutation "batch norm's input gradient drops the dbeta term" batch_norm.cuh \
  'return a * fmaf(mean - x, kx, fmaf(-dbeta, inv_m, g));' 'return a * fmaf(mean - x, kx, g);' \
  "$(op Batch_norm_matches_cpu Depthwise_conv_backward_through_batch_norm_equals_the_unfused_launches)"
mutation "fused depthwise weight gradient reads z with dy's image stride" depthwise_conv.cu \
  'if constexpr (BN) g = grad(bn.x[at.n * bn.xs + at_co], g);' 'if constexpr (BN) g = grad(bn.x[at.n * dys + at_co], g);' \
  "$(op Depthwise_conv_backward_through_batch_norm_equals_the_unfused_launches)|FullyQualifiedName~CudaTrainingTests.The_fusions_change_no_bit_of_two_training_steps"
mutation "max pool passes a tie to the last equal input, not the first (issue 14)" elementwise.cu \
  'if (arg < 0 || v > m || isnan(v))' 'if (arg < 0 || v >= m || isnan(v))' \
  "$(op Max_pool_matches_cpu)"
mutation "max pool backward skips the last window along a row (issue 14)" elementwise.cu \
  'ow1 = ow1 < Wo ? ow1 : Wo - 1;' 'ow1 = ow1 < Wo ? ow1 - 1 : Wo - 1;' \
  "$(op Max_pool_matches_cpu)"
mutation "the clamp gate does not clamp at 1 (issue 14)" common.cuh \
  'return x < 0.f ? 0.f : x > 1.f ? 1.f : x;' 'return x < 0.f ? 0.f : x;' \
  "$(op Linear_with_its_activation_equals_the_linear_and_the_activation)"
mutation "gemm cursor does not step into the next K segment" gemm.cu \
  '        c.offset += sS - kSeg * sK;' '        c.offset += 0;' \
  "$(op Pointwise_conv_matches_cpu Dense_conv_matches_cpu)"
mutation "depthwise data gradient drops the negative-row check" depthwise_conv.cu \
  'if (oh < 0 || oh >= Ho) continue;' 'if (oh >= Ho) continue;' \
  "$(op Depthwise_conv_matches_cpu)"
mutation "add_views reads b with a's image stride" elementwise.cu \
  'b[view_offset(e, per_image, bs)]' 'b[view_offset(e, per_image, as)]' \
  "$(op Elementwise_ops_match_cpu)"
mutation "plane_reduce strides 16 lanes, not 32" elementwise.cu \
  'for (int p = lane; p < P; p += 32)' 'for (int p = lane; p < P; p += 16)' \
  "$(op Squeeze_excite_ops_match_cpu)"
mutation "relu_grad drops its NaN check" common.cuh \
  'return y > 0.f ? dy : is_nan(y) ? y : 0.f;' 'return y > 0.f ? dy : 0.f;' \
  "$(op Activations_carry_NaN_and_Inf_as_the_cpu Batch_norm_carries_NaN_and_Inf_as_the_cpu)"
mutation "sum_batch counts top-5 as top-1 (v2.20)" cross_entropy.cu \
  'top5 += ranks[i] < 5;' 'top5 += ranks[i] < 1;' \
  "$(op Batch_totals_match_cpu_and_read_back_without_a_synchronisation)"
mutation "normalize_images fuses its multiply and add (v2.20)" elementwise.cu \
  'y[plane] = __fadd_rn(__fmul_rn((float)p[1], s1), b1);' 'y[plane] = fmaf((float)p[1], s1, b1);' \
  "$(op Normalize_images_matches_its_cpu_twin_bit_for_bit)"
mutation "top_k_rank drops its NaN check" cross_entropy.cu \
  'ranks[row] = valid && nans == 0 ? count : 0x7fffffff;' 'ranks[row] = valid ? count : 0x7fffffff;' \
  "$(op Cross_entropy_and_top_k_match_cpu Cross_entropy_and_top_k_treat_NaN_and_Inf_as_the_cpu)"

plain=0 check=0 only=()
for a in "$@"; do
  case "$a" in
    --plain) plain=1 ;;
    --check) check=1 ;;
    --diff) check=2 ;;
    -*) echo "mutate.sh: unknown option $a" >&2; exit 2 ;;
    *) only+=("$a") ;;
  esac
done

# Writes kernels/ to $2 with mutation $1 applied; fails loudly unless its original occurs once.
apply() {
  local i=$1 dir=$2 file="$kernels/${files[$1]}" text rest
  rm -rf "$dir" && mkdir -p "$dir" && cp "$kernels"/*.cu "$kernels"/*.cuh "$dir/"
  [ -f "$file" ] || { echo "mutate.sh: mutation '${names[$i]}': no kernels/${files[$i]}" >&2; return 2; }
  text=$(cat "$file"; echo x); text=${text%x} # keep trailing newlines
  rest=${text#*"${originals[$i]}"}
  if [ "$rest" = "$text" ]; then
    echo "mutate.sh: mutation '${names[$i]}': its original text is no longer in kernels/${files[$i]} (the kernel changed: update the mutation in $0):" >&2
    printf '%s\n' "${originals[$i]}" | sed 's/^/    | /' >&2
    return 2
  fi
  if [ "${rest#*"${originals[$i]}"}" != "$rest" ]; then
    echo "mutate.sh: mutation '${names[$i]}': its original text occurs more than once in kernels/${files[$i]}: make it unique" >&2
    return 2
  fi
  printf '%s' "${text/"${originals[$i]}"/"${replacements[$i]}"}" > "$dir/${files[$i]}"
}

selected=()
for i in "${!names[@]}"; do
  if [ ${#only[@]} -gt 0 ]; then
    keep=0
    for w in "${only[@]}"; do [[ "${names[$i]}" == *"$w"* ]] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  selected+=("$i")
done
[ ${#selected[@]} -gt 0 ] || { echo "mutate.sh: no mutation matches ${only[*]}" >&2; exit 2; }

work=$(mktemp -d /tmp/ghostnet-mutate-XXXXXX)
trap 'rm -rf "$work"' EXIT
stale=0
for i in "${selected[@]}"; do
  apply "$i" "$work/check" || { stale=1; continue; }
  if [ $check = 2 ]; then
    echo "== ${names[$i]}"
    diff -u --label "kernels/${files[$i]}" --label "mutant" "$kernels/${files[$i]}" "$work/check/${files[$i]}" || true
  fi
done
[ $stale = 0 ] || exit 2
if [ $check != 0 ]; then echo "mutate.sh: all ${#selected[@]} mutations apply"; exit 0; fi

emulator=$("$here/build.sh")
export LD_LIBRARY_PATH="$emulator${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" GHOSTNET_EXPECT_CUDA=1
# A cache of its own: mutants stay out of the emulator's, the unmutated modules compile once.
export GHOSTNET_KERNEL_CACHE="$emulator/mutate-kernel-cache"
unset GHOSTNET_EMU_ORDER
logs="$root/artifacts/mutate"
mkdir -p "$logs"

# Runs the tests of filter $2 over kernel folder $1 with racecheck $3 (1 or 0), output to $4.
# Prints "passed", "failed" or "none run".
run_tests() {
  local status=0
  GHOSTNET_KERNEL_DIR="$1" GHOSTNET_EMU_RACECHECK="$3" dotnet test --project "$root/tests/GhostNet.Tests/GhostNet.Tests.csproj" \
    -c Release --no-build --filter "$2" > "$4" 2>&1 || status=$?
  if ! grep -qE 'total: [1-9]' "$4"; then echo "none run"
  elif [ $status = 0 ]; then echo "passed"
  else echo "failed"; fi
}

# How a failing run failed, from its output.
how() {
  if grep -q 'NVRTC could not compile' "$1"; then echo "does not compile"
  elif grep -q 'racecheck: ' "$1"; then echo "race reported: $(grep -o 'racecheck: [a-z-]* hazard' "$1" | head -1 | cut -d' ' -f2)"
  elif grep -q 'CUDA_ERROR_ILLEGAL_ADDRESS' "$1"; then echo "illegal address (guard page)"
  elif grep -q 'CUDA_ERROR_LAUNCH_FAILED' "$1"; then echo "launch failed"
  else echo "wrong values"; fi
}

# The unmutated kernels must pass the same tests, or a "caught" would mean nothing.
all=""
for i in "${selected[@]}"; do all+="${all:+|}${filters[$i]}"; done
mkdir -p "$work/original" && cp "$kernels"/*.cu "$kernels"/*.cuh "$work/original/"
echo "mutate.sh: the unmutated kernels first ($logs/original.log)" >&2
result=$(run_tests "$work/original" "$all" 1 "$logs/original.log")
if [ "$result" != passed ]; then
  echo "mutate.sh: the unmutated kernels do not pass ($result): see $logs/original.log" >&2
  exit 2
fi

rows=() missed=0
for i in "${selected[@]}"; do
  slug=$(printf '%s' "${names[$i]}" | tr -c 'A-Za-z0-9' '-' | tr -s '-')
  apply "$i" "$work/mutant"
  echo "mutate.sh: ${names[$i]} ($logs/$slug.log)" >&2
  result=$(run_tests "$work/mutant" "${filters[$i]}" 1 "$logs/$slug.log")
  tests=$(echo "${filters[$i]}" | sed 's/FullyQualifiedName~CudaOpTests\.//g; s/|/, /g')
  case "$result" in
    failed) caught="yes"; detail=$(how "$logs/$slug.log") ;;
    passed) caught="NO"; detail="all passed"; missed=1 ;;
    *) caught="?"; detail="no test ran: check the filter"; missed=1 ;;
  esac
  row="| ${names[$i]} | $tests | $caught | $detail |"
  if [ $plain = 1 ]; then
    p=$(run_tests "$work/mutant" "${filters[$i]}" 0 "$logs/$slug.plain.log")
    case "$p" in failed) p="yes ($(how "$logs/$slug.plain.log"))" ;; passed) p="no" ;; esac
    row+=" $p |"
  fi
  rows+=("$row")
done

echo
if [ $plain = 1 ]; then
  echo "| mutation | tests run (CudaOpTests) | caught (racecheck) | how | caught without racecheck |"
  echo "|---|---|---|---|---|"
else
  echo "| mutation | tests run (CudaOpTests) | caught | how |"
  echo "|---|---|---|---|"
fi
printf '%s\n' "${rows[@]}"
exit $missed
