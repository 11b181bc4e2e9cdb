"""A seccomp filter that stops a process, and every thread of it, from starting processes or programs.

The worker installs it before it imports a candidate: from then on fork, vfork, clone without
CLONE_THREAD, execve and execveat kill the worker (the judge reads SIGSYS as tamper); clone3,
whose flags a filter cannot read, fails with ENOSYS so that glibc creates threads with clone; and
userfaultfd and perf_event_open fail with EPERM (both can run code when a page of an output is read).
Threads stay allowed: the worker counts the threads a call leaves behind. Why: a child process
is invisible to that count, to the profiler and to the judge's clock, so a candidate that forked
a helper sharing its output memory (a raw fork system call, which no scan of names sees) was
judged correct on the cpu target while its work ran between the timed calls
(tests/candidates/cpu/fork_escape.py). A filter sees the system call itself, however it is spelled.

Linux on x86_64 and aarch64 only; elsewhere `install` returns a reason and nothing is filtered.
On x86_64 the x32 numbers are refused and any other ABI (int 0x80) kills the process.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from typing import Any

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # offsets in struct seccomp_data (little-endian: arg 0's low word at 16)
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000
_PR_SET_NO_NEW_PRIVS, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 38, 1, 1

# arch: (AUDIT_ARCH value, seccomp syscall number, {name: number})
_ARCHES = {
    "x86_64": (0xC000003E, 317, {"fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "execve": 59, "execveat": 322,
                                 "userfaultfd": 323, "perf_event_open": 298}),
    "aarch64": (0xC00000B7, 277, {"clone": 220, "clone3": 435, "execve": 221, "execveat": 281,
                                  "userfaultfd": 282, "perf_event_open": 241}),
}
# Refused with EPERM, the process lives on: ways to run code when a page of the output is read
# (userfaultfd serves faults from another thread; a perf breakpoint on the output signals one).
_REFUSED = ("userfaultfd", "perf_event_open")


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions for `machine` (platform.machine())."""
    audit_arch, _, nr = _ARCHES[machine]
    kill, enosys, eperm, thread_check = "kill", "enosys", "eperm", "thread_check"
    code: list[tuple[int, Any, Any, int]] = [(_LD_W_ABS, 0, 0, _ARCH), (_JEQ, 0, kill, audit_arch), (_LD_W_ABS, 0, 0, _NR)]
    if machine == "x86_64":
        code.append((_JGE, kill, 0, _X32_BIT))
    code.append((_JEQ, thread_check, 0, nr["clone"]))
    code.append((_JEQ, enosys, 0, nr["clone3"]))
    for name in _REFUSED:
        code.append((_JEQ, eperm, 0, nr[name]))
    for name in ("fork", "vfork", "execve", "execveat"):
        if name in nr:
            code.append((_JEQ, kill, 0, nr[name]))
    code.append((_RET, 0, 0, _ALLOW))
    labels = {thread_check: len(code)}
    code += [(_LD_W_ABS, 0, 0, _ARG0_LOW), (_JSET, 0, kill, _CLONE_THREAD), (_RET, 0, 0, _ALLOW)]  # BPF jumps only forward
    labels[kill] = len(code)
    code.append((_RET, 0, 0, _KILL))
    labels[enosys] = len(code)
    code.append((_RET, 0, 0, _ERRNO | errno.ENOSYS))
    labels[eperm] = len(code)
    code.append((_RET, 0, 0, _ERRNO | errno.EPERM))

    def rel(i: int, target: Any) -> int:  # jumps are relative to the next instruction
        return target if isinstance(target, int) else labels[target] - i - 1

    return [(c, rel(i, jt), rel(i, jf), k) for i, (c, jt, jf, k) in enumerate(code)]



def install() -> str:
    """Filter this process (all its threads). '' when installed, else why not (nothing changed)."""
    machine = platform.machine()
    if os.uname().sysname != "Linux" or machine not in _ARCHES:
        return f"no system-call filter on {os.uname().sysname} {machine}"
    _, seccomp_nr, _ = _ARCHES[machine]
    insns = program(machine)
    blob = b"".join(struct.pack("<HBBI", c, jt, jf, k) for c, jt, jf, k in insns)
    buf = ctypes.create_string_buffer(blob, len(blob))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(insns), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"no system-call filter: prctl(NO_NEW_PRIVS) failed ({os.strerror(ctypes.get_errno())})"
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(seccomp_nr), ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
                      ctypes.c_long(_SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(prog))
    if rc != 0:
        why = os.strerror(ctypes.get_errno()) if rc < 0 else f"thread {rc} could not take it"
        return f"no system-call filter: seccomp failed ({why})"
    return ""
