"""Start a command confined, and end it together with everything it started.

What runs, for `spawn(cmd, ...)` where namespaces are allowed (Linux as root, or with
unprivileged user namespaces):

    judge ── outer: `python -I -S sandbox.py --setup SPEC -- cmd`   (host PID namespace)
               unshare(2) new mount + PID + network namespaces (+ user namespace when not root),
               read-only bind remounts of every `readonly` path, `writable` paths bound read-write
             └─ init: PID 1 of the new namespace; PR_SET_PDEATHSIG=SIGKILL on outer; reaps orphans;
                exits when cmd exits or when the judge's lifeline pipe closes (the judge died)
                  └─ cmd: all capabilities dropped, no_new_privs, cwd/HOME/TMPDIR = scratch

When PID 1 of a namespace dies the kernel kills every process in it, so nothing cmd starts
(setsid daemons included) outlives it. The lifeline is a pipe whose only write end the judge
process holds: when the judge dies, even by SIGKILL, the kernel closes it and init sees EOF.

Where namespaces are refused the same wrapper runs as a session leader and child subreaper
(orphans of cmd reparent to it, not to the host's init), sweeps them when cmd exits or the
lifeline closes, and `kill` sweeps descendants and the process group from here. `Confinement`
says which guarantees held. docs/isolation.md describes both cases and what they cannot promise.

The setup step runs as a plain script (`-I -S`: no site-packages, no PYTHON* variables), so
this file imports only the standard library.
"""
from __future__ import annotations

import ctypes
import errno
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
    base = os.environ if base is None else base
    secret_values = [v for k, v in base.items() if _is_secret_name(k) and len(v) >= 8]
    env = {}
    for name, value in base.items():
        if _is_secret_name(name):
            continue
        if name not in _ALLOWED_NAMES and not name.startswith(_ALLOWED_PREFIXES):
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
# Linux constants (include/uapi/linux/{sched,mount,prctl,capability}.h)

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
# statvfs f_flag bits that are also mount flags; a remount in a user namespace must keep them
_KEPT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 28, 38, 36
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# SECBIT_NOROOT|_LOCKED, NO_SETUID_FIXUP|_LOCKED, KEEP_CAPS_LOCKED: root regains nothing at execve
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# /proc, /sys and /dev stay as they are under a read-only "/": CUDA needs its device nodes and
# /dev/shm, and the worker's output files live there.
_KEEP_AS_IS = ("/proc", "/sys", "/dev")

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _prctl(option: int, arg: int = 0, what: str = "prctl") -> None:
    _check(_c().prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)), what)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, what: str) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), None), what)


# ---------------------------------------------------------------------------------------------
# The setup step (runs in the child: `python -I -S sandbox.py --setup SPEC -- cmd...`)

def _mountinfo_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def _under(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def _bind_readonly(path: str) -> None:
    """Make `path` and every mount below it read-only in this mount namespace."""
    if path not in _mountinfo_points():
        _mount(path, path, None, MS_BIND | MS_REC, f"bind {path}")
    for point in _mountinfo_points():
        if not _under(point, path):
            continue
        if any(_under(point, keep) for keep in _KEEP_AS_IS) and not any(_under(path, k) for k in _KEEP_AS_IS):
            continue
        try:
            kept = os.statvfs(point).f_flag & _KEPT_FLAGS
        except OSError:
            continue  # an overmounted or vanished point: nothing reachable to protect
        _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, f"read-only remount of {point}")


def _bind_writable(path: str) -> None:
    _mount(path, path, None, MS_BIND | MS_REC, f"bind {path}")
    kept = os.statvfs(path).f_flag & _KEPT_FLAGS
    _mount(None, path, None, MS_REMOUNT | MS_BIND | kept, f"read-write remount of {path}")


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _drop_privileges() -> None:
    """No capability survives, now or after execve, and setuid binaries grant none."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text()) if Path("/proc/sys/kernel/cap_last_cap").exists() else 40
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap, "drop capability from the bounding set")
    _prctl(PR_SET_SECUREBITS, _SECUREBITS, "set securebits")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear ambient capabilities")
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable x 2 words, all zero
    _check(_c().capset(header, data), "capset")
    _prctl(PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")


def _quiet_stdio() -> None:
    """The wrappers let go of the worker's pipes, so the judge sees EOF the moment cmd exits."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _sweep_children() -> None:
    """SIGKILL every descendant of this process and reap them (used where no namespace holds)."""
    for _ in range(100):
        pids = descendants(os.getpid())
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap_all()
        time.sleep(0.01)
    _reap_all()


def _reap_all() -> list[tuple[int, int]]:
    done = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, status))


def _supervise(child: int, lifelines: list[int], sweep: bool) -> int:
    """Reap orphans until `child` exits or a lifeline closes; return cmd's exit code."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    code = None
    while code is None:
        for pid, status in _reap_all():
            if pid == child:
                code = _exit_code(status)
        if code is not None:
            break
        ready, _, _ = select.select([*lifelines, wake_r], [], [], 5.0)
        if any(fd in ready for fd in lifelines):
            code = 137  # the judge (or the outer wrapper) is gone: end everything
        if wake_r in ready:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
    if sweep:
        _sweep_children()
    return code


def _start_cmd(cmd: list[str], scratch: str, lifelines: list[int], report: int, drop: bool, facts: dict) -> int:
    """Fork cmd, confined. It reports `facts` on the report pipe, which execve then closes
    (close-on-exec), so the judge reads to EOF: a last line "ok" means cmd is running."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
        if os.getppid() != parent:
            os._exit(137)  # the wrapper died before the death signal was armed
        for fd in lifelines:
            os.close(fd)
        os.chdir(scratch)
        if drop:
            _drop_privileges()
        else:
            _prctl(PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")
        os.set_inheritable(report, False)
        os.write(report, (json.dumps({"ok": True, **facts}) + "\n").encode())
        os.execvp(cmd[0], cmd)
    except BaseException as e:  # noqa: BLE001 - report, never return into the wrapper's code
        try:
            os.write(report, (json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}) + "\n").encode())
        finally:
            os._exit(126)
    os._exit(126)


def _setup_main(spec: dict, cmd: list[str]) -> int:
    lifeline, report = spec["lifeline"], spec["report"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    facts = {"notes": []}
    if not spec["namespaces"]:
        _prctl(PR_SET_CHILD_SUBREAPER, 1, "child subreaper")
        child = _start_cmd(cmd, spec["scratch"], [lifeline], report, drop=False, facts=facts)
        os.close(report)
        _quiet_stdio()
        return _supervise(child, [lifeline], sweep=True)
    try:
        uid, gid = os.getuid(), os.getgid()
        flags = CLONE_NEWNS | CLONE_NEWPID | (0 if spec["network"] else CLONE_NEWNET)
        if spec["user_namespace"]:
            flags |= CLONE_NEWUSER
        _check(_c().unshare(flags), "unshare")
        if spec["user_namespace"]:
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
            Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        _mount(None, "/", None, MS_REC | MS_PRIVATE, "make mounts private")  # nothing leaks to the host
        for path in sorted(spec["readonly"], key=lambda p: p.count("/")):
            _bind_readonly(path)
        for path in spec["writable"]:
            _bind_writable(path)
    except OSError as e:
        os.write(report, (json.dumps({"ok": False, "error": f"setup: {e}"}) + "\n").encode())
        return 125
    # outer -> init: a second lifeline. PR_SET_PDEATHSIG alone has a window (outer killed before
    # init arms it) that getppid() cannot close here: init's parent is outside its PID namespace.
    outer_r, outer_w = os.pipe2(os.O_CLOEXEC)
    init = os.fork()
    if init == 0:  # PID 1 of the new PID namespace
        try:
            os.close(outer_w)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
            _prctl(PR_SET_DUMPABLE, 0, "not dumpable")  # no ptrace or /proc/1/mem from cmd
            if spec["new_proc"]:
                _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mount /proc")
                facts["notes"].append("own /proc")
            else:
                facts["notes"].append("host /proc (host processes listed, not reachable)")
            if not spec["network"]:
                try:
                    _loopback_up()
                except OSError as e:
                    facts["notes"].append(f"loopback down ({e.strerror})")
        except OSError as e:
            os.write(report, (json.dumps({"ok": False, "error": f"init: {e}"}) + "\n").encode())
            os._exit(125)
        child = _start_cmd(cmd, spec["scratch"], [lifeline, outer_r], report, drop=True, facts=facts)
        os.close(report)
        _quiet_stdio()
        os._exit(_supervise(child, [lifeline, outer_r], sweep=False))
    os.close(report)
    os.close(outer_r)
    os.close(lifeline)  # init watches it; outer only forwards init's exit and holds outer_w
    _quiet_stdio()
    _, status = os.waitpid(init, 0)
    return _exit_code(status)


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
          ) -> tuple[subprocess.Popen, Confinement]:
    """Start `cmd` confined in `scratch` (its cwd, HOME and TMPDIR); end it with `kill`.

    `env` defaults to `worker_env(os.environ, scratch)`. `new_proc` mounts a /proc of the new PID
    namespace (hides the host's processes; check CUDA with `--selftest` before turning it on).
    Raises RuntimeError, with the reason, when the confinement could not be set up."""
    return _spawn(cmd, available(), scratch=scratch, readonly=readonly, writable=writable, env=env, stdin=stdin,
                  stdout=stdout, stderr=stderr, pass_fds=pass_fds, network=network, new_proc=new_proc)


def _spawn(cmd: list[str], can: Confinement, *, scratch: Path, readonly: Sequence[Path], writable: Sequence[Path] = (),
           env: Mapping[str, str] | None = None, stdin=None, stdout=None, stderr=None, pass_fds: Sequence[int] = (),
           network: bool = False, new_proc: bool = False) -> tuple[subprocess.Popen, Confinement]:
    scratch = Path(scratch).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    for p in [*readonly, *writable]:
        if not Path(p).exists():
            raise FileNotFoundError(f"sandbox path does not exist: {p}")
    env = worker_env(os.environ, scratch) if env is None else dict(env)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    spec = {
        "namespaces": can.pid_namespace, "user_namespace": can.user_namespace, "network": network,
        "new_proc": new_proc, "scratch": str(scratch),
        "readonly": [str(Path(p).resolve()) for p in readonly],
        "writable": [str(Path(p).resolve()) for p in [*writable, scratch]],
        "lifeline": _lifeline_fd(), "report": report_w,
    }
    setup = [sys.executable, "-I", "-S", str(Path(__file__).resolve()), "--setup", json.dumps(spec), "--", *cmd]
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
    return proc, confinement


def _read_report(fd: int, timeout_s: float) -> dict:
    """The setup step's last report line, read to EOF (cmd's execve closes the pipe)."""
    data = b""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return {"ok": False, "error": f"setup step gave no report within {timeout_s:.0f} s"}
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    lines = data.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"ok": False, "error": "setup step exited without a report"}


# ---------------------------------------------------------------------------------------------
# Processes

def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time), None when gone or a zombie: a pid is reused, this is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _children(pid: int) -> list[int]:
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return kids


def _children_by_scan() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(name))
    return kids


_HAS_CHILDREN_FILE = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, theirs, ...), from /proc."""
    by_scan = None if _HAS_CHILDREN_FILE else _children_by_scan()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in (_children(p) if by_scan is None else by_scan.get(p, [])):
            if k not in found and k != pid:
                found.append(k)
                todo.append(k)
    return found


def _group_members(pgid: int) -> list[int]:
    """Processes in process group or session `pgid` (the worker is a session leader)."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid or int(fields[3]) == pgid:
                members.append(int(name))
    return members


def kill(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGKILL `proc` and everything below it; when this returns, none of them is alive.

    Raises RuntimeError naming the survivors if some are still alive after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    marked: dict[int, str] = {}

    def mark(pids: Iterable[int]) -> None:
        for p in pids:
            t = _start_time(p)
            if t is not None and p not in marked and p != os.getpid():
                marked[p] = t

    while True:
        mark([proc.pid] if proc.returncode is None else [])
        mark(descendants(proc.pid))
        mark(_group_members(proc.pid))
        for p in list(marked):
            mark(descendants(p))
        alive = [p for p, t in marked.items() if _start_time(p) == t]
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
    """Digest of the judge's own modules (workbench/*.py)."""
    return digest(sorted(Path(__file__).resolve().parent.glob("*.py")))


# ---------------------------------------------------------------------------------------------
# `python -m workbench.sandbox --selftest [--build]`: what holds on this machine, one table

_PROBE_CHILD = r"""
import glob, json, os, socket, subprocess, sys, time
target, port, build = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
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
rc = libc.mount(None, target.encode(), None, 32 | 4096, None)  # MS_REMOUNT | MS_BIND: read-write again
r["remount"] = "REMOUNTED" if rc == 0 else f"refused ({os.strerror(ctypes.get_errno())})"
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    r["network"] = "CONNECTED"
except OSError as e:
    r["network"] = f"unreachable ({e.strerror})"
d = subprocess.Popen([sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(600)"],
                     start_new_session=True, stdout=subprocess.PIPE)
r["daemon_pid"] = int(d.stdout.readline())
r["env"] = sorted(os.environ)
r["cwd"], r["home"], r["uid"] = os.getcwd(), os.environ.get("HOME", ""), os.getuid()
r["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
r["procs"] = sum(n.isdigit() for n in os.listdir("/proc"))
r["dev_nvidia"] = len(glob.glob("/dev/nvidia*"))
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
                proc, conf = spawn([sys.executable, "-c", _PROBE_CHILD, str(repo), str(port), "1" if build else "0"],
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
            survivors = [p for p in tree if _start_time(p) is not None]
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
                "secrets in env": (", ".join(leaked) or "none", not leaked),
                "env names": (" ".join(r["env"])[:60], True),
                "cwd/HOME = scratch": (f"{r['cwd'] == str(scratch.resolve())}/{r['home'] == str(scratch.resolve())}",
                                        r["cwd"] == str(scratch.resolve())),
                "uid, effective caps": (f"{r['uid']}, {r['caps']}", not want_ro or int(r["caps"], 16) == 0),
                "processes in /proc": (str(r["procs"]), True),
                "/dev/nvidia* visible": (str(r["dev_nvidia"]), True),
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
if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--setup":
    _sep = sys.argv.index("--")
    sys.exit(_setup_main(json.loads(sys.argv[2]), sys.argv[_sep + 1:]))
