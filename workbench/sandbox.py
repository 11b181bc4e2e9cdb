"""Start a command confined, and end it together with everything it started.

    judge ─ outer: `python -I -S sandbox_init.py SPEC -- cmd`  (host PID namespace: proc.pid)
              new mount + PID + network namespaces (+ user namespace when not root); every
              `readonly` path bind-remounted read-only, `writable` paths and scratch read-write
            └─ init: PID 1 of the new PID namespace; reaps orphans; exits when cmd exits or a
               lifeline closes; the kernel then kills every process left in the namespace
                 └─ cmd: no capabilities, no_new_privs, cwd/HOME/TMPDIR = scratch, allow-listed env

The lifeline is a pipe whose only write end the judge process holds: when the judge dies, even
by SIGKILL, the kernel closes it and init sees EOF (PR_SET_PDEATHSIG would fire on the death of
the judge's spawning *thread*, not of the process). init also watches outer the same way.

Where namespaces are refused, outer is a session leader and child subreaper (orphans of cmd
reparent to it, not to the host's init) that sweeps cmd's descendants when cmd exits or the
lifeline closes, and `kill` sweeps descendants and the process group from here. `Confinement`
says which guarantees held; docs/isolation.md describes each case and what none can promise.
The child side is workbench/sandbox_init.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from workbench.sandbox_init import descendants, start_time

_INIT_SCRIPT = Path(__file__).resolve().with_name("sandbox_init.py")

# ---------------------------------------------------------------------------------------------
# The environment

_ALLOWED_NAMES = {
    "PATH", "LANG", "LANGUAGE", "TERM", "TORCH_CUDA_ARCH_LIST", "CUDA_HOME", "LD_LIBRARY_PATH",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "WORKBENCH_BUILD_CACHE", "MAX_JOBS",
    # NVLink multicast stays off on the GPU machines: a worker must see these as the judge does.
    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS",
}
_ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_")
_SECRET_WORDS = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.IGNORECASE)
_SECRET_PREFIXES = ("OPENAI_", "GEMINI_", "GOOGLE_", "ANTHROPIC_", "AWS_", "HF_", "GH_", "GITHUB_")


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_WORDS.search(name)) or name.upper().startswith(_SECRET_PREFIXES)


def worker_env(base: Mapping[str, str] | None = None, scratch: Path | None = None) -> dict[str, str]:
    """An allow-listed copy of `base` (default os.environ) with HOME and TMPDIR in `scratch`.

    A credential never passes, even under an allowed name or prefix, nor does an allowed
    variable whose value embeds a credential's value (PATH=...:$TOKEN, for instance)."""
    return _env(base, scratch, allow_list=True)


def build_env(base: Mapping[str, str] | None = None, scratch: Path | None = None) -> dict[str, str]:
    """The compiler's environment: all of `base` (its CC, CPLUS_INCLUDE_PATH, NVCC_* ...) but the
    credentials, screened as in `worker_env`, with HOME and TMPDIR in `scratch`."""
    return _env(base, scratch, allow_list=False)


def _env(base: Mapping[str, str] | None, scratch: Path | None, allow_list: bool) -> dict[str, str]:
    base = os.environ if base is None else base
    secret_values = [v for k, v in base.items() if _is_secret_name(k) and len(v) >= 8]
    env = {}
    for name, value in base.items():
        if _is_secret_name(name):
            continue
        if allow_list and name not in _ALLOWED_NAMES and not name.startswith(_ALLOWED_PREFIXES):
            continue
        if any(s in value for s in secret_values):
            continue
        env[name] = value
    if scratch is not None:
        env["HOME"] = env["TMPDIR"] = str(scratch)
    return env


# ---------------------------------------------------------------------------------------------
# What was applied

@dataclass
class Confinement:
    """What confinement actually held for one spawn (or what this machine allows: `available`)."""
    pid_namespace: bool = False
    mount_namespace: bool = False
    network_namespace: bool = False
    user_namespace: bool = False
    readonly: list[str] = field(default_factory=list)
    scratch: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.pid_namespace and self.mount_namespace:
            kind = "namespaces (pid, mount" + (", net" if self.network_namespace else "") + \
                   (", user" if self.user_namespace else "") + ")"
        else:
            kind = "fallback (session + subreaper + /proc sweep, no namespaces)"
        ro = ", ".join(self.readonly) if self.readonly else "nothing"
        net = "no network" if self.network_namespace else "network reachable"
        text = f"{kind}; read-only: {ro}; {net}"
        if self.scratch:
            text += f"; scratch {self.scratch}"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


# ---------------------------------------------------------------------------------------------
# The judge's side

_lifeline: dict[int, int] = {}  # judge pid -> read end; the write end is never closed or inherited
_lifeline_lock = threading.Lock()


def _lifeline_fd() -> int:
    """The read end of a pipe whose write end only this process holds: the kernel closes it when
    the process dies, however it dies, and the sandbox's init sees EOF and ends everything."""
    with _lifeline_lock:
        if os.getpid() not in _lifeline:  # a forked copy of the judge makes its own
            r, _w = os.pipe2(os.O_CLOEXEC)
            _lifeline[os.getpid()] = r
        return _lifeline[os.getpid()]


def _is_root() -> bool:
    return os.geteuid() == 0


def _probe() -> Confinement:
    """Run a real confined `true` (read-only bind included): as root without a user namespace,
    then with one; the fallback when both are refused."""
    import tempfile
    tries = [False, True] if _is_root() else [True]
    failures = []
    if sys.platform == "linux":
        for user_ns in tries:
            can = Confinement(True, True, True, user_ns)
            try:
                with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as tmp:
                    proc, _ = _spawn(["true"], can, scratch=Path(tmp), readonly=[Path(tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if proc.wait(timeout=30) == 0:
                        return can
                    failures.append(f"confined `true` exited {proc.returncode}")
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                failures.append(str(e))
    return Confinement(notes=["namespaces refused (" + "; ".join(failures or [sys.platform]) + "): "
                              "session, subreaper and /proc sweep only; nothing read-only, network reachable"])


_available: Confinement | None = None


def available() -> Confinement:
    """What this machine allows, probed once per process and cached."""
    global _available
    if _available is None:
        _available = _probe()
    return _available


def spawn(cmd: list[str], *, scratch: Path, readonly: Sequence[Path], writable: Sequence[Path] = (),
          env: Mapping[str, str] | None = None, stdin=None, stdout=None, stderr=None,
          pass_fds: Sequence[int] = (), network: bool = False, new_proc: bool = False,
          hidden: Sequence[Path] = ()) -> tuple[subprocess.Popen, Confinement]:
    """Start `cmd` confined in `scratch` (its cwd, HOME and TMPDIR); end it with `kill`.

    `env` defaults to `worker_env(os.environ, scratch)`. `new_proc` mounts a /proc of the new PID
    namespace (hides the host's processes; check CUDA with `--selftest` before turning it on).
    `hidden` directories (credential stores, say) look empty to cmd and `hidden` files read as
    /dev/null; no hidden directory may hold a `readonly`, `writable` or scratch path.
    Raises RuntimeError, with the reason, when the confinement could not be set up."""
    return _spawn(cmd, available(), scratch=scratch, readonly=readonly, writable=writable, env=env, stdin=stdin,
                  stdout=stdout, stderr=stderr, pass_fds=pass_fds, network=network, new_proc=new_proc,
                  hidden=hidden)


def _spawn(cmd: list[str], can: Confinement, *, scratch: Path, readonly: Sequence[Path], writable: Sequence[Path] = (),
           env: Mapping[str, str] | None = None, stdin=None, stdout=None, stderr=None, pass_fds: Sequence[int] = (),
           network: bool = False, new_proc: bool = False, hidden: Sequence[Path] = ()
           ) -> tuple[subprocess.Popen, Confinement]:
    if not sys.platform.startswith("linux"):
        raise RuntimeError(f"workbench.sandbox needs Linux (prctl, /proc, namespaces); this is {sys.platform}")
    scratch = Path(scratch).resolve()
    for p in [*readonly, *writable, *hidden]:
        if not Path(p).exists():
            raise FileNotFoundError(f"sandbox path does not exist: {p}")
    hidden = [Path(h).resolve() for h in hidden]
    for h in hidden:
        if not (h.is_dir() or h.is_file()):
            raise ValueError(f"sandbox can hide directories and regular files only: {h}")
        inside = [p for p in [*readonly, *writable, scratch] if Path(p).resolve().is_relative_to(h)]
        if inside:
            raise ValueError(f"sandbox cannot hide {h}: it holds {inside[0]}, which the child needs")
    scratch.mkdir(parents=True, exist_ok=True)
    env = worker_env(os.environ, scratch) if env is None else dict(env)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    spec = {
        "namespaces": can.pid_namespace, "user_namespace": can.user_namespace, "network": network,
        "new_proc": new_proc, "scratch": str(scratch),
        "readonly": [str(Path(p).resolve()) for p in readonly],
        "writable": [str(Path(p).resolve()) for p in [*writable, scratch]],
        "hidden": [str(h) for h in hidden],
        "lifeline": _lifeline_fd(), "report": report_w,
    }
    args = [f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in spec.items() if not isinstance(v, list)]
    args += [f"{k}={p}" for k, v in spec.items() if isinstance(v, list) for p in v]
    setup = [sys.executable, "-I", "-S", str(_INIT_SCRIPT), *args, "--", *cmd]
    try:
        proc = subprocess.Popen(setup, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=str(scratch),
                                pass_fds=(*pass_fds, spec["lifeline"], report_w), start_new_session=True)
    finally:
        os.close(report_w)
    try:
        facts = _read_report(report_r, timeout_s=60.0)
    finally:
        os.close(report_r)
    if not facts.get("ok"):
        kill(proc)
        raise RuntimeError(f"sandbox setup failed: {facts.get('error', 'no report from the setup step')}")
    namespaces = can.pid_namespace
    confinement = Confinement(
        pid_namespace=namespaces, mount_namespace=namespaces,
        network_namespace=namespaces and not network, user_namespace=namespaces and can.user_namespace,
        readonly=spec["readonly"] if namespaces else [], scratch=str(scratch),
        notes=list(facts.get("notes", [])) + ([] if namespaces else list(can.notes)))
    if hidden:
        confinement.notes.append(("hidden: " if namespaces else "NOT hidden (no mount namespace): ")
                                 + ", ".join(spec["hidden"]))
    return proc, confinement


def _read_report(fd: int, timeout_s: float) -> dict:
    """The setup step's last report line, read to EOF (cmd's execve closes the pipe)."""
    data = b""
    deadline = time.monotonic() + timeout_s
    poller = select.poll()  # not select(): a busy judge may hold descriptors above 1024
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1e3):
            return {"ok": False, "error": f"setup step gave no report within {timeout_s:.0f} s"}
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    lines = data.decode(errors="replace").strip().splitlines()
    if not lines:
        return {"ok": False, "error": "setup step exited without a report"}
    status, *items = lines[-1].split("\t")
    if status == "ok":
        return {"ok": True, "notes": items}
    return {"ok": False, "error": "; ".join(items) or lines[-1]}


# ---------------------------------------------------------------------------------------------
# Processes

def _group_members(pgid: int) -> list[int]:
    """Processes in process group or session `pgid` (the worker is a session leader)."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, session, ...
            if int(fields[2]) == pgid or int(fields[3]) == pgid:
                members.append(int(name))
    return members


def kill(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGKILL `proc` and everything below it; when this returns, none of them is alive.

    Raises RuntimeError naming the survivors if some are still alive after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    marked: dict[int, str] = {}  # pid -> start time: a pid is ours only while its start time matches

    def mark(pids: Iterable[int]) -> None:
        for p in pids:
            t = start_time(p)
            if t is not None and p not in marked and p != os.getpid():
                marked[p] = t

    def ours(p: int) -> bool:
        return start_time(p) == marked[p]

    while True:
        if proc.returncode is None:  # not reaped yet, so proc.pid still names this process
            mark([proc.pid, *descendants(proc.pid)])
        mark(_group_members(proc.pid))  # the kernel never reuses a pid that names a live group or session
        for p in [p for p in marked if ours(p)]:
            mark(descendants(p))
        alive = [p for p in marked if ours(p)]
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if proc.returncode is None:
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        if not alive and proc.returncode is not None:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes still alive {timeout_s:.0f} s after SIGKILL: {sorted(alive)}")
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Digests

def digest(paths: Iterable[Path]) -> str:
    """sha256 over the names and contents of the files (directories walked in sorted order).

    `__pycache__` is skipped: the judge's own imports write it (see docs/isolation.md)."""
    h = hashlib.sha256()
    for top in sorted(Path(p) for p in paths):
        files = [top]
        if top.is_dir():
            files = []
            for root, dirs, names in os.walk(top):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                files += [Path(root) / n for n in sorted(names)]
        for f in files:
            h.update(str(f).encode() + b"\0")
            try:
                h.update(hashlib.sha256(f.read_bytes()).digest())
            except OSError as e:
                h.update(f"unreadable:{e.errno}".encode())
    return h.hexdigest()


def judge_digest() -> str:
    """Digest of the judge's own package (workbench/, its subpackages included)."""
    return digest([Path(__file__).resolve().parent])


# ---------------------------------------------------------------------------------------------
# `python -m workbench.sandbox --selftest [--build]`: what holds on this machine, one table

_PROBE_CHILD = r"""
import glob, json, os, socket, subprocess, sys, time
target, port, build, judge, in_ns = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5] == "1"
r = {}
t = time.perf_counter()
try:
    import torch
    r["torch"] = torch.__version__
    if torch.cuda.is_available():
        x = torch.arange(1 << 20, device="cuda", dtype=torch.float32)
        r["cuda"] = f"ok, {torch.cuda.get_device_name()}, sum {(x * 2).sum().item():.0f}"
    else:
        r["cuda"] = "no CUDA device"
    if build and torch.cuda.is_available():
        from torch.utils.cpp_extension import load_inline
        cu = ("__global__ void twice(float* x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x;"
              " if (i < n) x[i] *= 2.f; }\n"
              "void launch(float* x, int n) { twice<<<(n + 255) / 256, 256>>>(x, n); }\n")
        cpp = ("#include <torch/extension.h>\nvoid launch(float* x, int n);\n"
               "void run(torch::Tensor x) { launch(x.data_ptr<float>(), x.numel()); }\n")
        m = load_inline("sandbox_selftest", cpp_sources=cpp, cuda_sources=cu, functions=["run"],
                        no_implicit_headers=True)
        y = torch.ones(1000, device="cuda")
        m.run(y)
        r["build"] = f"ok, sum {y.sum().item():.0f} (expect 2000)"
except Exception as e:
    r["cuda"] = f"FAILED: {type(e).__name__}: {e}"[:200]
r["torch_s"] = round(time.perf_counter() - t, 2)
try:
    open(os.path.join(target, ".sandbox-selftest"), "w").close()
    r["readonly"] = "WROTE"
except OSError as e:
    r["readonly"] = f"refused ({e.strerror})"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
if in_ns:  # outside a mount namespace this would change the host's own mount
    rc = libc.mount(None, target.encode(), None, 32 | 4096, None)  # MS_REMOUNT | MS_BIND: read-write again
    r["remount"] = "REMOUNTED" if rc == 0 else f"refused ({os.strerror(ctypes.get_errno())})"
else:
    r["remount"] = "not tried (no mount namespace)"
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    r["network"] = "CONNECTED"
except OSError as e:
    r["network"] = f"unreachable ({e.strerror})"
try:
    open(f"/proc/{judge}/environ", "rb").read(1)
    r["judge_environ"] = "READ"
except OSError as e:
    r["judge_environ"] = f"refused ({e.strerror})"
d = subprocess.Popen([sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(600)"],
                     start_new_session=True, stdout=subprocess.PIPE)
r["daemon_pid"] = int(d.stdout.readline())
r["env"] = sorted(os.environ)
r["cwd"], r["home"], r["uid"] = os.getcwd(), os.environ.get("HOME", ""), os.getuid()
r["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
r["procs"] = sum(n.isdigit() for n in os.listdir("/proc"))
nodes = [n for n in glob.glob("/dev/nvidia*") if not os.path.isdir(n)]
opened = 0
for n in nodes:
    try:
        os.close(os.open(n, os.O_RDWR))
        opened += 1
    except OSError:
        pass
r["dev_nvidia"] = f"{opened} of {len(nodes)} open"
try:
    open("/proc/sys/vm/swappiness", "r+").close()
    r["sysctl"] = "WRITABLE"
except OSError as e:
    r["sysctl"] = f"refused ({e.strerror})"
print(json.dumps(r), flush=True)
time.sleep(600)
"""


def _selftest(build: bool) -> int:
    import socket
    import tempfile
    repo = Path(__file__).resolve().parent.parent
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    base = {**os.environ, "OPENAI_API_KEY": "sk-selftest-openai-000", "GEMINI_API_KEY": "selftest-gemini-000",
            "CUDA_AUTH_TOKEN": "selftest-token-000"}
    configs = {"judge (ro repo, host /proc)": ([repo], False), "strict (ro /, own /proc)": ([Path("/")], True)}
    rows: dict[str, dict[str, str]] = {}
    failed = False
    print(f"available: {available().summary()}", flush=True)
    for name, (readonly, new_proc) in configs.items():
        with tempfile.TemporaryDirectory(prefix="sandbox-selftest-") as tmp:
            scratch = Path(tmp)
            t = time.perf_counter()
            try:
                proc, conf = spawn([sys.executable, "-c", _PROBE_CHILD, str(repo), str(port), "1" if build else "0",
                                    str(os.getpid()), "1" if available().mount_namespace else "0"],
                                   scratch=scratch, readonly=readonly, env=worker_env(base, scratch),
                                   stdout=subprocess.PIPE, new_proc=new_proc)
            except RuntimeError as e:
                rows.setdefault("setup", {})[name] = f"FAILED: {e}"
                failed = True
                continue
            spawn_ms = (time.perf_counter() - t) * 1e3
            line = proc.stdout.readline()
            tree = descendants(proc.pid)
            try:
                r = json.loads(line)
            except ValueError:
                kill(proc)
                rows.setdefault("setup", {})[name] = "FAILED: the confined child printed no report"
                failed = True
                continue
            try:
                conn, _ = server.accept()
                conn.close()
                reached = True
            except OSError:
                reached = False
            t = time.perf_counter()
            kill(proc)
            kill_ms = (time.perf_counter() - t) * 1e3
            survivors = [p for p in tree if start_time(p) is not None]
            leaked = [k for k in r["env"] if _is_secret_name(k)]
            want_ro = conf.mount_namespace
            checks = {
                "confinement": (conf.summary().split(";")[0], True),
                "spawn (setup done)": (f"{spawn_ms:.0f} ms", True),
                "torch + CUDA": (f"{r.get('cuda')} ({r['torch_s']} s)", not str(r.get("cuda")).startswith("FAILED")),
                "write into the repo": (r["readonly"], r["readonly"] != "WROTE" or not want_ro),
                "remount it read-write": (r["remount"], r["remount"] != "REMOUNTED"),
                "TCP to the parent's 127.0.0.1": (r["network"] if not reached else "CONNECTED",
                                                   not reached or not conf.network_namespace),
                "setsid daemon after kill": (f"{len(survivors)} of {len(tree)} processes left ({kill_ms:.0f} ms)",
                                             not survivors),
                "judge's /proc/<pid>/environ": (r["judge_environ"], r["judge_environ"] != "READ" or not want_ro),
                "secrets in env": (", ".join(leaked) or "none", not leaked),
                "env names": (" ".join(r["env"])[:60], True),
                "cwd/HOME = scratch": (f"{r['cwd'] == str(scratch.resolve())}/{r['home'] == str(scratch.resolve())}",
                                        r["cwd"] == str(scratch.resolve())),
                "uid, effective caps": (f"{r['uid']}, {r['caps']}", not want_ro or int(r["caps"], 16) == 0),
                "processes in /proc": (str(r["procs"]), True),
                "/dev/nvidia* (read-write)": (r["dev_nvidia"], True),
                "write a sysctl": (r["sysctl"], r["sysctl"] != "WRITABLE"),
            }
            if build:
                checks["load_inline build"] = (r.get("build", "not run (no CUDA)"), "FAILED" not in r.get("cuda", ""))
            for check, (text, held) in checks.items():
                rows.setdefault(check, {})[name] = text if held else f"FAILED: {text}"
                failed |= not held
            (repo / ".sandbox-selftest").unlink(missing_ok=True)
    server.close()
    plain, confined = _start_cost()
    width = max(len(k) for k in rows) + 2
    cols = list(configs)
    print("\n" + "check".ljust(width) + " | ".join(c.ljust(44) for c in cols))
    for check, cells in rows.items():
        print(check.ljust(width) + " | ".join(cells.get(c, "-")[:44].ljust(44) for c in cols))
    print(f"\nworker start, `python -c pass` to exit, median of 5: plain Popen {plain:.0f} ms, "
          f"spawn {confined:.0f} ms (+{confined - plain:.0f} ms)")
    print("RESULT:", "something did not hold (FAILED above)" if failed else "every check held")
    return 1 if failed else 0


def _start_cost(n: int = 5) -> tuple[float, float]:
    """Median ms from start to exit of `python -c pass`: plain Popen, then `spawn`."""
    import statistics
    import tempfile
    plain, confined = [], []
    with tempfile.TemporaryDirectory(prefix="sandbox-cost-") as tmp:
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            plain.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            proc, _ = spawn([sys.executable, "-c", "pass"], scratch=Path(tmp), readonly=[Path(__file__).parent])
            proc.wait()
            confined.append((time.perf_counter() - t) * 1e3)
    return statistics.median(plain), statistics.median(confined)


if __name__ == "__main__" and "--selftest" in sys.argv[1:2]:
    sys.exit(_selftest(build="--build" in sys.argv))
