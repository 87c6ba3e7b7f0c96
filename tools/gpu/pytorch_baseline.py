#!/usr/bin/env python3
"""The baseline to beat: timm's ghostnet_100 on the same GPU, timed the way `ghostcuda bench` times
ours (median of timed steps after warm-up, synchronised). Training step = forward, cross-entropy,
backward, SGD (momentum 0.9, wd 1e-4). Prints a markdown table (and, with --json, writes its rows
for the GPU check's results.json); configurations that fail are reported, not hidden. Every row
states torch.backends.cudnn.benchmark: on for all, and off again for two rows to show what the
autotuner is worth."""
import argparse, json, os, statistics, sys, time

import torch
import timm


def time_steps(step, steps, warmup):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench(mode, batch, size, dtype, channels_last, compiled, cudnn_benchmark, steps, warmup):
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.manual_seed(0)
    model = timm.create_model("ghostnet_100", num_classes=1000).cuda()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device="cuda").to(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    run = torch.compile(model) if compiled else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16")
    if mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            with autocast:
                loss = loss_fn(run(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad(), autocast:
                run(x)
    return time_steps(step, steps, warmup)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also torch.compile (slow to start)")
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args()
    print(f"PyTorch {torch.__version__}, timm {timm.__version__}, {torch.cuda.get_device_name(0)}")
    print("| mode | batch | dtype | layout | compiled | cudnn.benchmark | ms per step | images/s |")
    print("|---|---:|---|---|---|---|---:|---:|")
    configs = []
    for dtype in ["fp32", "bf16"]:
        for cl in [False, True]:
            configs += [("train", 64, dtype, cl, False, True), ("train", 256, dtype, cl, False, True),
                        ("infer", 1, dtype, cl, False, True), ("infer", 256, dtype, cl, False, True)]
    configs += [("train", 256, "bf16", True, False, False), ("infer", 1, "fp32", False, False, False)]
    if a.compile:
        configs += [("train", 256, "bf16", True, True, True), ("infer", 256, "bf16", True, True, True), ("infer", 1, "fp32", False, True, True)]
    rows = []
    for mode, batch, dtype, cl, compiled, cudnn_benchmark in configs:
        layout = "NHWC" if cl else "NCHW"
        row = {"mode": mode, "batch": batch, "dtype": dtype, "layout": layout, "compiled": compiled,
               "cudnn_benchmark": cudnn_benchmark, "ms": None, "error": None}
        head = f"| {mode} | {batch} | {dtype} | {layout} | {'yes' if compiled else 'no'} | {'on' if cudnn_benchmark else 'off'} |"
        try:
            ms = bench(mode, batch, 224, dtype, cl, compiled, cudnn_benchmark, a.steps, a.warmup)
            row["ms"] = ms
            print(f"{head} {ms:.2f} | {batch * 1000 / ms:.0f} |", flush=True)
        except Exception as e:  # report, keep going
            row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            print(f"{head} failed: {type(e).__name__}: {str(e)[:80]} | |", flush=True)
        rows.append(row)
        torch.cuda.empty_cache()
        if a.json:  # after every row, so that a run cut short by its time limit keeps what it measured
            run = {"torch": torch.__version__, "timm": timm.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}
            with open(a.json + ".tmp", "w") as f:
                json.dump(run, f, indent=1)
            os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    sys.exit(main())
