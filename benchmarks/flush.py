"""How the L2 flush before each timed call changes measured bandwidth: write flush vs read flush.

    python benchmarks/flush.py

Times device-to-device copies of several sizes under both flush styles of workbench.timing.Timer
and prints GB/s (bytes read + written). A write flush leaves the L2 full of dirty lines, whose
write-back lands inside the next timed call; the smaller the call, the larger the tax.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch

    from workbench.timing import Timer, device_name

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    timers = {mode: Timer(device, flush=mode) for mode in ("write", "read")}
    sizes_mb = [64, 256, 1024] if device.type == "cuda" else [16, 64]
    print(f"copy bandwidth (GB/s, read + written) on {device_name(device)}")
    print(f"{'copy size':>10s} {'write flush':>12s} {'read flush':>11s} {'ratio':>6s}")
    for mb in sizes_mb:
        src = torch.randn(mb * (1 << 20) // 4, device=device)
        dst = torch.empty_like(src)
        gbps = {}
        for mode, timer in timers.items():
            r = timer.run(lambda: dst.copy_(src), lambda i: [], samples=50, warmup=3, max_seconds=10)
            gbps[mode] = 2 * src.numel() * 4 / (r["ms"] * 1e-3) / 1e9
        print(f"{mb:>7d} MB {gbps['write']:12.0f} {gbps['read']:11.0f} {gbps['read'] / gbps['write']:6.3f}")


if __name__ == "__main__":
    main()
