"""The child side of `workbench.sandbox.spawn`: confine, then run cmd under a small init.

Run by spawn as `python -I -S sandbox_init.py key=value... -- cmd...` (a plain script: no
site-packages, no PYTHON* variables; it is on every worker's start, so it imports only ctypes and
what the interpreter has loaded anyway: json and re would add a third to its cost).

    outer   unshare(2): new mount + PID + network namespaces (+ user namespace when not root);
            read-only bind remounts of `readonly`, a private /dev/shm, read-write binds of
            `writable` and scratch, an empty read-only tmpfs over each `hidden` directory
            (/dev/null over each hidden file),
            /dev read-only with only a few devices usable
    init    PID 1 of the new PID namespace: PR_SET_PDEATHSIG on outer, reaps orphans, and exits
            when cmd exits or a lifeline closes (the judge's, or outer's); the kernel then kills
            every process left in the namespace
    cmd     every capability dropped, no_new_privs, cwd = scratch; execve

Where namespaces are refused (namespaces=0) outer is itself the supervisor: a
session leader and child subreaper that sweeps cmd's descendants when cmd exits or the
judge's lifeline closes.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time

# Linux constants (include/uapi/linux/{sched,mount,prctl,capability}.h)

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
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
# A read-only "/" leaves these to _protect_kernel, _restrict_devices and _private_shm, which
# keep what CUDA and Python need usable.
_KEEP_AS_IS = ("/proc", "/sys", "/dev")
# cmd is uid 0 without capabilities as root: plain file permissions would still let it open
# the host's devices (disks, loop, kvm) and write kernel knobs (/proc/sys, sysrq). Only these
# devices stay usable, and these kernel files become read-only.
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty", "ptmx")  # plus every /dev/nvidia*
_KERNEL_READONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs", "/sys")

_libc = None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


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


def _mount(source: str | None, target: str, fstype: str | None, flags: int, what: str, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), what)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as \\ooo (octal)."""
    parts = field.split("\\")
    return parts[0] + "".join(chr(int(p[:3], 8)) + p[3:] for p in parts[1:])


def _mountinfo_points() -> list[str]:
    return [_unescape(line.split()[4]) for line in _read("/proc/self/mountinfo").splitlines()]


def _under(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def _bind_readonly(path: str) -> None:
    """Make `path` and every mount below it read-only in this mount namespace."""
    if path not in _mountinfo_points():
        _mount(path, path, None, MS_BIND | MS_REC, f"bind {path}")
    for point in _mountinfo_points():
        if not _under(point, path):
            continue
        if any(_under(point, k) for k in _KEEP_AS_IS) and not any(_under(path, k) for k in _KEEP_AS_IS):
            continue
        try:
            kept = os.statvfs(point).f_flag & _KEPT_FLAGS
        except OSError:
            continue  # an overmounted or vanished point: nothing reachable to protect
        _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV | kept, f"read-only remount of {point}")


def _bind_writable(path: str) -> None:
    _mount(path, path, None, MS_BIND | MS_REC, f"bind {path}")
    kept = os.statvfs(path).f_flag & _KEPT_FLAGS
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_NODEV | kept, f"read-write remount of {path}")


def _private_shm(writable: list[str]) -> None:
    """A fresh /dev/shm of cmd's own (POSIX semaphores and shared memory keep working, other
    workers' files there are out of sight), with the writable paths that lived in the host's
    /dev/shm (the judge puts scratch directories there) bound back in at the same place."""
    if not os.path.isdir("/dev/shm"):
        return
    inside = [p for p in writable if _under(p, "/dev/shm") and p != "/dev/shm"]
    handles = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in inside}  # reachable after the overmount
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "private /dev/shm", "mode=1777")
    for path, fd in handles.items():
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, f"bind {path} into the private /dev/shm")
        os.close(fd)


def _hide(path: str) -> None:
    """A directory: an empty read-only tmpfs over it. A file: /dev/null over it, read-only. Either
    way what it held cannot be read."""
    if os.path.isdir(path):
        _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, f"hide {path}", "size=4k,mode=555")
        return
    _mount("/dev/null", path, None, MS_BIND, f"hide {path}")
    kept = os.statvfs(path).f_flag & _KEPT_FLAGS  # in a user namespace a remount must keep locked flags
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC | kept, f"read-only {path}")


def _restrict_devices() -> None:
    """Bind the devices cmd may use onto themselves, then make the rest of /dev nodev and
    read-only (/dev is the host's own devtmpfs: uid 0 could otherwise delete its nodes)."""
    if "/dev" not in _mountinfo_points():
        _mount("/dev", "/dev", None, MS_BIND | MS_REC, "bind /dev")
    names = [n for n in os.listdir("/dev") if n in _DEVICES or n.startswith("nvidia")]
    for name in names:
        node = f"/dev/{name}"
        if not os.path.islink(node):
            _mount(node, node, None, MS_BIND | MS_REC, f"bind {node}")
    kept = os.statvfs("/dev").f_flag & _KEPT_FLAGS
    _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV | kept, "read-only nodev remount of /dev")


def _protect_kernel() -> None:
    for path in _KERNEL_READONLY:
        if os.path.exists(path):
            _bind_readonly(path)


def _loopback_up() -> None:
    import _socket  # not `socket`: it would add a few ms (enum, selectors) to every start
    import _struct
    import fcntl
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = _struct.pack("16sH14x", b"lo", 0)
        flags = _struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), siocgifflags, req))[1]
        fcntl.ioctl(s.fileno(), siocsifflags, _struct.pack("16sH14x", b"lo", flags | iff_up))
    finally:
        s.close()


def _drop_privileges() -> None:
    """No capability survives, now or after execve, and setuid binaries grant none."""
    last = int(_read("/proc/sys/kernel/cap_last_cap")) if os.path.exists("/proc/sys/kernel/cap_last_cap") else 40
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


def _report(fd: int, status: str, *items: str) -> None:
    """One line for the judge: status ("ok" or "error") and notes, tab-separated."""
    line = "\t".join([status, *(" ".join(i.split()) for i in items)]) + "\n"
    os.write(fd, line.encode())


def _start_cmd(cmd: list[str], scratch: str, lifelines: list[int], report: int, drop: bool, notes: list[str]) -> int:
    """Fork cmd, confined. It reports "ok" and `notes` on the report pipe, which execve then
    closes (close-on-exec), so the judge reads to EOF: a last line "ok" means cmd is running."""
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
        _report(report, "ok", *notes)
        os.execvp(cmd[0], cmd)
    except BaseException as e:  # noqa: BLE001 - report, never return into the wrapper's code
        try:
            _report(report, "error", f"{type(e).__name__}: {e}")
        finally:
            os._exit(126)
    os._exit(126)


def parse_spec(args: list[str]) -> dict:
    """key=value arguments; readonly, writable and hidden repeat, the rest are single."""
    spec: dict = {"readonly": [], "writable": [], "hidden": []}
    for arg in args:
        key, value = arg.split("=", 1)
        if key in ("readonly", "writable", "hidden"):
            spec[key].append(value)
        elif key in ("lifeline", "report"):
            spec[key] = int(value)
        elif key in ("namespaces", "user_namespace", "network", "new_proc"):
            spec[key] = value == "1"
        else:
            spec[key] = value
    return spec


def setup_main(spec: dict, cmd: list[str]) -> int:
    lifeline, report = spec["lifeline"], spec["report"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    notes: list[str] = []
    if not spec["namespaces"]:
        _prctl(PR_SET_CHILD_SUBREAPER, 1, "child subreaper")
        child = _start_cmd(cmd, spec["scratch"], [lifeline], report, drop=False, notes=notes)
        os.close(report)
        _quiet_stdio()
        return _supervise(child, [lifeline], sweep=True)
    try:
        uid, gid = os.getuid(), os.getgid()
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | (0 if spec["network"] else CLONE_NEWNET)
        if spec["user_namespace"]:
            flags |= CLONE_NEWUSER
        _check(_c().unshare(flags), "unshare")
        if spec["user_namespace"]:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        _mount(None, "/", None, MS_REC | MS_PRIVATE, "make mounts private")  # nothing leaks to the host
        for path in sorted(spec["readonly"], key=lambda p: p.count("/")):
            _bind_readonly(path)
        _private_shm(spec["writable"])
        for path in spec["writable"]:
            _bind_writable(path)
        _restrict_devices()
        for path in spec["hidden"]:
            _hide(path)
    except OSError as e:
        _report(report, "error", f"setup: {e}")
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
                notes.append("own /proc")
            else:
                notes.append("host /proc (host processes listed, not reachable)")
            _protect_kernel()
            if not spec["network"]:
                try:
                    _loopback_up()
                except OSError as e:
                    notes.append(f"loopback down ({e.strerror})")
        except OSError as e:
            _report(report, "error", f"init: {e}")
            os._exit(125)
        child = _start_cmd(cmd, spec["scratch"], [lifeline, outer_r], report, drop=True, notes=notes)
        os.close(report)
        _quiet_stdio()
        os._exit(_supervise(child, [lifeline, outer_r], sweep=False))
    os.close(report)
    os.close(outer_r)
    os.close(lifeline)  # init watches it; outer only forwards init's exit and holds outer_w
    _quiet_stdio()
    _, status = os.waitpid(init, 0)
    return _exit_code(status)


# Processes, from /proc

def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time), None when gone or a zombie: a pid is reused, this is not."""
    try:
        stat = _read(f"/proc/{pid}/stat")
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
            kids += [int(k) for k in _read(f"/proc/{pid}/task/{tid}/children").split()]
        except OSError:
            pass
    return kids


def _children_by_scan() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = _read(f"/proc/{name}/stat")
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(name))
    return kids


_HAS_CHILDREN_FILE = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, ...), from /proc."""
    by_scan = None if _HAS_CHILDREN_FILE else _children_by_scan()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in (_children(p) if by_scan is None else by_scan.get(p, [])):
            if k not in found and k != pid:
                found.append(k)
                todo.append(k)
    return found


if __name__ == "__main__":
    _sep = sys.argv.index("--")
    sys.exit(setup_main(parse_spec(sys.argv[1:_sep]), sys.argv[_sep + 1:]))
