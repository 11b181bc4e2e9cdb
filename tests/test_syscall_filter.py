"""workbench.syscall_filter in a process of its own: threads work, every way of starting a process or
a program ends the process with SIGSYS, clone3 says ENOSYS (so glibc makes threads with clone),
userfaultfd says EPERM."""
from __future__ import annotations

import platform
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
                                reason="the filter is for Linux on x86_64 and aarch64")

PRELUDE = """
import ctypes, os, sys, threading
from workbench import syscall_filter
why = syscall_filter.install()
assert why == "", why
t = threading.Thread(target=lambda: None); t.start(); t.join()  # threads still start
print("ready", flush=True)
"""

ATTEMPTS = {
    "os.fork": "os.fork()",
    "subprocess": "import subprocess; subprocess.run(['true'])",
    "raw fork": "libc = ctypes.CDLL(None); libc.syscall.restype = ctypes.c_long; libc.syscall(57 if os.uname().machine == 'x86_64' else 220, 17, 0, 0, 0, 0)",
    "execv": "os.execv('/bin/true', ['true'])",
}


def run(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE) + body], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_starting_a_process_or_program_is_fatal(name: str):
    r = run(ATTEMPTS[name] + "\nprint('survived', flush=True)")
    assert "ready" in r.stdout, r.stderr
    assert "survived" not in r.stdout
    assert r.returncode == -signal.SIGSYS, (r.returncode, r.stderr[-500:])


def test_threads_and_torch_work_and_clone3_says_enosys():
    r = run("""
import errno, torch
x = torch.randn(512, 512)
torch.set_num_threads(2)
assert float((x @ x).abs().sum()) > 0  # torch's thread pool
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long
assert libc.syscall(435, 0, 0) == -1 and ctypes.get_errno() == errno.ENOSYS
userfaultfd = 323 if os.uname().machine == "x86_64" else 282
assert libc.syscall(userfaultfd, 0) == -1 and ctypes.get_errno() == errno.EPERM  # refused, not fatal
print("ok", flush=True)
""")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-1000:]
