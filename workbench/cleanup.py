"""Clean stops for the CLI: SIGINT and SIGTERM end it with one line, and no process it started outlives it.

The judge starts its workers and builders in their own sessions (so a candidate cannot signal the
judge), which means a signal to the CLI does not reach them: we find them by walking /proc's parent
links instead. The handler exits at once with os._exit rather than unwinding: unwinding would wait
in the build pool's shutdown for every queued build to run. Nothing is lost by that: the run's log is
append-only and a torn last line is dropped on resume (store.py), so `--run-id` picks the run up.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from typing import Any

# What the one-line message adds, e.g. how to resume the run; set by the command once it knows.
hint = ""


def _children_map() -> dict[int, list[int]]:
    """parent pid -> live (non-zombie) child pids, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc (not Linux): nothing to walk
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # gone while we looked
            continue
        state, ppid = stat[stat.rfind(")") + 2:].split()[:2]  # the name in (...) may hold spaces
        if state not in ("Z", "X"):
            children.setdefault(int(ppid), []).append(int(entry))
    return children


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below pid (default: this one), children in their own sessions included."""
    children = _children_map()
    out, todo = [], [pid or os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_descendants(timeout_s: float = 5.0) -> int:
    """SIGKILL every descendant; returns how many were killed.

    The tree is frozen first (SIGSTOP, repeated until no new process appears), so a parent killed
    early cannot leave an orphan it forked a moment before, which we would no longer find by ppid.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frozen: set[int] = set()
        while True:
            pids = set(descendants()) - frozen
            if not pids:
                break
            _signal_all(sorted(pids), signal.SIGSTOP)
            frozen |= pids
        if not frozen:
            break
        _signal_all(sorted(frozen), signal.SIGKILL)
        killed |= frozen
        _reap()
        time.sleep(0.05)
    return len(killed)


def _reap() -> None:
    """Collect our own dead children so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _on_signal(signum: int, _frame: Any) -> None:
    for s in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not interrupt the cleanup
        signal.signal(s, signal.SIG_IGN)
    name = signal.Signals(signum).name
    try:
        sys.stdout.flush()
    except Exception:  # a closed or broken stdout must not stop the cleanup
        pass
    n = kill_descendants()
    message = f"stopped by {name}" + (f"; {hint}" if hint else "") + (f" ({n} child processes ended)" if n else "")
    try:
        sys.stderr.write("\n" + message + "\n")
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(128 + signum)  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them


def install() -> None:
    """Handle SIGINT and SIGTERM in the CLI, and end leftover descendants at a normal exit too."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(kill_descendants, 2.0)
