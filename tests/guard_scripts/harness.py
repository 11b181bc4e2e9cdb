"""A stand-in for the worker, run by tests/test_guard.py in its own process: installs and arms the
guard, drops the harness from sys.modules, loads tests/guard_scripts/attempts.py as the worker
loads a candidate (fresh code, made after arming) and prints one JSON line of what happened."""
import importlib.util
import json
import os
import subprocess  # before arming, as torch does in the worker: code imported later is not trusted
import sys
import tempfile
import time
from collections import namedtuple

try:
    import torch
    import torch.nn as nn
except ImportError:  # the guard itself needs no torch: lets other interpreters run this script
    torch = None

sys.path.insert(0, sys.argv[1])  # the worktree whose workbench package is under test
from workbench import guard  # noqa: E402

ALLOWED_DIR = tempfile.mkdtemp(prefix="guard-allowed-")
PROTO = os.fdopen(os.dup(1), "w")


def with_guard_suspended(fn):
    """Harness code that runs a callback while suspended: the callback is still guarded."""
    with guard.suspended():
        return fn()


def harness_write(path):
    with guard.suspended():
        with open(path, "w") as f:
            f.write("harness")
        os.remove(path)
    return "ok"


def builder(path):
    """Like workbench.build.load_inline: harness code the candidate calls, which suspends the guard
    itself for its compiler run and cache writes (no candidate code runs inside)."""
    with guard.suspended():
        subprocess.run(["true"], check=True)
        with open(path, "w") as f:
            f.write("built")
        os.remove(path)
    return True


def serve(forward):
    replies = []

    def reply(obj):
        replies.append(obj)

    out = forward()
    reply({"ok": True})
    return out, replies


def per_forward_us(model, x, n=5000):
    if torch is None:
        return 0.0
    with torch.no_grad():
        for _ in range(100):
            model(x)
        t = time.perf_counter()
        for _ in range(n):
            model(x)
    return (time.perf_counter() - t) / n * 1e6


def per_open_us(n=2000):
    path = os.path.join(ALLOWED_DIR, "probe")
    t = time.perf_counter()
    for _ in range(n):
        open(path, "w").close()
    return (time.perf_counter() - t) / n * 1e6


def main():
    lin, x = (nn.Linear(16, 16), torch.randn(4, 16)) if torch else (None, None)
    before_us, open_before_us = per_forward_us(lin, x), per_open_us()
    guard.install()
    t = time.perf_counter()
    guard.arm(writable=[ALLOWED_DIR], harness=("workbench", "__main__"))
    arm_s = time.perf_counter() - t
    for name in [m for m in sys.modules if m == "workbench" or m.startswith("workbench.")]:
        del sys.modules[name]
    after_us, open_after_us = per_forward_us(lin, x), per_open_us()
    spec = importlib.util.spec_from_file_location("candidate_attempts", os.path.join(os.path.dirname(__file__), "attempts.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = mod.run()
    out, replies = serve(mod.forge_reply)
    results["forge_reply"] = "allowed" if len(replies) > 1 else "refused"
    results["callback_in_suspension"] = mod.callback_attack(with_guard_suspended)
    results["candidate_suspends"] = mod.suspend_attack(guard)
    honest = {
        "linear": torch is None or bool(torch.isfinite(lin(x)).all()),
        "torch_ops": torch is None or float(torch.relu(torch.arange(-2.0, 3.0)).sum()) == 3.0,
        "namedtuple": namedtuple("P", "a b")(1, 2).b == 2,
        "candidate_namedtuple": mod.honest_namedtuple(),
        "write_allowed_dir": mod.honest_write(ALLOWED_DIR),
        "environ_write": mod.honest_environ(),
        "candidate_calls_harness_builder": mod.honest_build(builder, os.path.join(os.path.dirname(ALLOWED_DIR), "guard-build-probe")),
        "harness_write": harness_write(os.path.join(os.path.dirname(ALLOWED_DIR), "guard-harness-probe")) == "ok",
    }
    PROTO.write(json.dumps({"results": results, "honest": honest, "violations": guard.violations(),
                            "arm_s": arm_s, "forward_us": [before_us, after_us],
                            "open_us": [open_before_us, open_after_us]}) + "\n")
    PROTO.flush()


main()
