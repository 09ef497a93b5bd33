"""Benchmark of the coefficient regressors (msma_engine.network), printed as Markdown tables.

First table: parameters and multiply-adds (convolutions + linear layers, one 224×224
image) per architecture and per part. Second table: forward latency (inference mode,
eval) at batch 1 and 16 on the CPU, and on CUDA when a CUDA device is present, for
BFM09 coefficient sizes (80/64/80 → 257). On a shared machine run it also with
``--threads 1``: the batch-1 CPU-time column is then independent of the other load.

Usage:
    python benchmarks/bench_network.py [--repeats 10] [--repeats-batch 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from msma_engine.network import ARCHS, build_network, count_macs, count_parameters, macs_by_child
from machine import cpu_model

SIZES = (80, 64, 80)
TARGET_MS = {"msma": 400.0, "msma_light": 80.0}  # issue 4, batch 1 on the 2-core CPU



def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def latency_ms(net: torch.nn.Module, batch: int, device: torch.device, repeats: int) -> tuple[float, float]:
    """Median wall-clock and process CPU time of one forward, in ms, after one warm-up call.

    With one torch thread the CPU time is what the forward costs on an idle core even
    when other processes share the machine (wall time then includes waiting for a core).
    """
    x = torch.rand(batch, 3, 224, 224, device=device)
    net(x)
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        net(x)
        _sync(device)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs at batch 1")
    parser.add_argument("--repeats-batch", type=int, default=3, help="timed runs at batch 16")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    # Latency on a shared CPU depends on the other processes running: report the load.
    load = ", load average %.2f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}{load}; "
          f"GPU: {gpu}; torch {torch.__version__}; Python {platform.python_version()}\n")

    torch.manual_seed(0)
    nets = {arch: build_network(arch, *SIZES).eval() for arch in ARCHS}

    print("| arch | part | parameters (M) | MACs at 224² (G) |")
    print("|---|---|---|---|")
    for arch, net in nets.items():
        print(f"| {arch} | total | {count_parameters(net) / 1e6:.2f} | {count_macs(net) / 1e9:.2f} |")
        macs = macs_by_child(net)
        for name, part in net.named_children():
            n = count_parameters(part)
            if n:
                print(f"| | {name} | {n / 1e6:.2f} | {macs.get(name, 0) / 1e9:.2f} |")
    print()

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print("| arch | device | batch 1 wall (ms) | batch 1 CPU time (ms) | batch 16 wall (ms) | "
          "batch 16 per image (ms) | target batch 1 |")
    print("|---|---|---|---|---|---|---|")
    for device in devices:
        for arch, net in nets.items():
            net.to(device)
            ms1, cpu1 = latency_ms(net, 1, device, args.repeats)
            ms16, _ = latency_ms(net, 16, device, args.repeats_batch if device.type == "cpu" else args.repeats)
            target = f"≤ {TARGET_MS[arch]:.0f} ms" if device.type == "cpu" and arch in TARGET_MS else ""
            print(f"| {arch} | {device.type} | {ms1:.1f} | {cpu1:.1f} | {ms16:.1f} | {ms16 / 16:.1f} | {target} |")
            net.to("cpu")


if __name__ == "__main__":
    main()
