"""A runtime guard for the worker's Python: what the candidate may not do, whatever it is called.

The static scan reads names; a candidate can build any name from strings. This guard instead
watches what happens, through CPython's audit hooks (PEP 578): frame and traceback access, gc
walks, tracing, ctypes, processes, sockets, writes outside the allowed directories, imports of
the harness, new audit hooks. Once armed, every such event is recorded and refused (the hook
raises PermissionError inside the candidate), so a candidate that catches the error is still
rejected: the harness reads `violations()` after each request.

    guard.install()                 # once, early in the worker (idempotent)
    guard.arm(writable=[tmpdir])    # before the candidate is imported; cannot be undone
    with guard.suspended(): ...     # the harness's own I/O, on this thread only
    guard.violations()              # a copy of what was refused so far

Keeping the guard's state out of the candidate's reach: all state lives in the closure of the
hook function, which only the interpreter's hook list references (there is no API that lists
hooks or removes one). The functions below talk to the hook through `sys.audit` events, so
importing this module or calling them grants nothing. Trust is by identity, never by name:
code objects that existed when the guard was armed (torch, the standard library, the harness)
are "known"; every code object made later (the candidate's module, anything it compiles or
builds) is not. `suspended()` is honoured only when called from known harness code, and an
event inside a suspension is still refused if any frame between it and the suspending frame
runs unknown code (a harness function called by the candidate with its own callbacks).

What it cannot see: anything native code does (the link audit and the sandbox cover that),
os.write on an already open descriptor, and reads (allowed: the sandbox strips secrets).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterable

_EVENT = "workbench.guard"  # the control channel: sys.audit(_EVENT, command, payload)
_HARNESS_PACKAGE = "workbench"
# Library functions that hand a frame to their caller: sys._getframe from inside them is refused.
_FRAME_LEAKERS = {("inspect", "currentframe"), ("inspect", "stack"), ("inspect", "trace"),
                  ("inspect", "getouterframes"), ("inspect", "getinnerframes"), ("traceback", "walk_stack"),
                  ("logging", "currentframe"), ("logging", "<lambda>")}
_FRAME_ATTRS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "tb_next", "gi_yieldfrom",
                "cr_await", "ag_await"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Events refused whatever their arguments, while armed.
_ALWAYS = ("sys._current_frames", "sys._current_exceptions", "gc.get_objects", "gc.get_referrers",
           "gc.get_referents", "sys.settrace", "sys.setprofile", "sys.addaudithook", "sys.monitoring.", "ctypes.", "subprocess.",
           "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.kill",
           "os.killpg", "pty.", "socket.", "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
           "mmap.__new__", "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.", "poplib.", "imaplib.",
           "telnetlib.", "nntplib.", "sqlite3.", "cpython.run_", "cpython.PyInterpreterState_Clear",
           "cpython._PySys_ClearAuditHooks", "_thread.start_new_thread", "fcntl.ioctl")
# Events that change the file system: (event, indices of the path arguments).
_FS_EVENTS = {"os.remove": (0,), "os.rename": (0, 1), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,),
              "os.mkdir": (0,), "os.rmdir": (0,), "os.symlink": (0, 1), "os.link": (0, 1), "os.utime": (0,),
              "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,), "shutil.rmtree": (0,),
              "shutil.copyfile": (1,), "shutil.copymode": (1,), "shutil.copystat": (1,), "shutil.copytree": (1,),
              "shutil.move": (0, 1), "shutil.chown": (0,), "shutil.unpack_archive": (1,)}


def install() -> None:
    """Add the guard's audit hook to this interpreter (once; later calls do nothing)."""
    box: list[Any] = []
    sys.audit(_EVENT, "ping", box)
    if not box:
        sys.addaudithook(_make_hook())


def arm(writable: Iterable[str | Path] = (), harness: Iterable[str] = (_HARNESS_PACKAGE,)) -> None:
    """Start refusing. `writable`: directories the candidate may write in (its build and temp dirs).
    `harness`: module-name prefixes whose code may suspend the guard. Only the first call counts."""
    install()
    dirs = tuple(os.path.realpath(d) for d in writable)
    sys.audit(_EVENT, "arm", (dirs, tuple(harness)))


def violations() -> list[str]:
    """Everything refused since arming, oldest first (a copy)."""
    out: list[str] = []
    sys.audit(_EVENT, "report", out)
    return out


class suspended:  # noqa: N801 - used as `with guard.suspended():`
    """Let the harness's own work through on this thread; refused (and recorded) from candidate code."""

    def __enter__(self) -> None:
        sys.audit(_EVENT, "suspend", None)

    def __exit__(self, *exc: object) -> None:
        sys.audit(_EVENT, "resume", None)


def _known_code(harness: tuple[str, ...]) -> tuple[dict[int, Any], dict[int, Any]]:
    """(every code object alive now, those of the harness modules), keyed by id and holding each
    alive so an id is never reused by a later object."""
    import gc
    import types

    known: dict[int, Any] = {}
    stack = [o.__code__ for o in gc.get_objects() if type(o) is types.FunctionType]
    for mod in list(sys.modules.values()):  # module-level code of loaded modules is not in any function
        for v in list(getattr(mod, "__dict__", {}).values()):
            if type(v) is types.FunctionType:
                stack.append(v.__code__)
    while stack:
        c = stack.pop()
        if id(c) not in known:
            known[id(c)] = c
            stack.extend(k for k in c.co_consts if type(k) is types.CodeType)
    trusted: dict[int, Any] = {}
    package_dir = os.path.dirname(os.path.realpath(__file__))
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None) or ""
        in_package = bool(file) and os.path.dirname(os.path.realpath(file)) == package_dir  # `python -m workbench.worker` is __main__
        if not (in_package or any(name == h or name.startswith(h + ".") for h in harness)) or mod is sys.modules.get(__name__):
            continue
        todo = list(vars(mod).values())
        while todo:
            v = todo.pop()
            if isinstance(v, type) and v.__module__ == name:
                todo.extend(vars(v).values())
            elif isinstance(v, (staticmethod, classmethod)):
                todo.append(v.__func__)
            elif isinstance(v, property):
                todo.extend(f for f in (v.fget, v.fset, v.fdel) if f is not None)
            elif type(v) is types.FunctionType and v.__module__ == name:
                sub = [v.__code__]
                while sub:
                    c = sub.pop()
                    trusted[id(c)] = c
                    sub.extend(k for k in c.co_consts if type(k) is types.CodeType)
    return known, trusted


def _make_hook() -> Any:
    """The audit hook and, in its closure, all of the guard's state."""
    import _thread

    getframe, get_ident = sys._getframe, _thread.get_ident
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep
    state: dict[str, Any] = {"armed": False, "writable": (), "known": {}, "trusted": {},
                             "guard_code": {id(c): c for c in (suspended.__enter__.__code__, suspended.__exit__.__code__)}}
    log: list[str] = []
    suspends: dict[int, list[Any]] = {}  # thread id -> frames that suspended the guard, innermost last
    busy: set[int] = set()  # threads inside the hook (its own frame access must not recurse)

    def where(frame: Any) -> str:
        return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"

    def honoured(tid: int, frame: Any) -> bool:
        """Is the event raised at `frame` covered by this thread's innermost suspension?"""
        stack = suspends.get(tid)
        if not stack:
            return False
        top, known = stack[-1], state["known"]
        f = frame
        while f is not None and f is not top:
            if id(f.f_code) not in known and id(f.f_code) not in state["guard_code"]:
                return False  # unknown (candidate) code between the harness and this event
            f = f.f_back
        return f is top

    def writable(path: Any) -> bool:
        if isinstance(path, int):
            return False  # a descriptor: could be the judge's pipe
        try:
            p = realpath(fspath(path))
        except (TypeError, ValueError):
            return False
        return any(p == d or p.startswith(d + sep) for d in state["writable"])

    def control(cmd: str, payload: Any, caller: Any) -> None:
        if cmd == "ping":
            payload.append(True)
        elif cmd == "report":
            payload.extend(log)
        elif cmd == "arm" and not state["armed"]:
            dirs, harness = payload
            state["known"], state["trusted"] = _known_code(harness)
            state["writable"], state["armed"] = dirs, True
        elif cmd == "arm":
            log.append(f"guard: a second arm() refused (at {where(caller)})")
            raise PermissionError("workbench guard: already armed")
        elif cmd in ("suspend", "resume"):
            enter = caller  # the frame of suspended.__enter__/__exit__
            if enter is None or id(enter.f_code) not in state["guard_code"]:
                if state["armed"]:
                    log.append(f"guard: {cmd} from outside guard.suspended() (at {where(caller)})")
                    raise PermissionError("workbench guard: not allowed")
                return
            user = enter.f_back
            tid = get_ident()
            if cmd == "suspend":
                if state["armed"] and (user is None or id(user.f_code) not in state["trusted"]):
                    log.append(f"guard: suspended() called by code that is not the harness (at {where(user)})")
                    raise PermissionError("workbench guard: only the harness may suspend the guard")
                suspends.setdefault(tid, []).append(user)
            elif suspends.get(tid):
                suspends[tid].pop()

    def refuse(event: str, args: tuple[Any, ...], caller: Any) -> str | None:
        """Why `event` is forbidden now, or None."""
        if event == "object.__getattr__":
            name = args[1] if len(args) > 1 else "?"
            if name in _FRAME_ATTRS or caller is None or id(caller.f_code) not in state["known"]:
                return f"reads .{name} of a {type(args[0]).__name__}"
            return None
        if event == "sys._getframe":
            code = caller.f_code if caller is not None else None
            if code is None or id(code) not in state["known"]:
                return "calls sys._getframe"
            module = os.path.splitext(os.path.basename(code.co_filename))[0]
            if module == "__init__":  # a package: logging/__init__.py is "logging"
                module = os.path.basename(os.path.dirname(code.co_filename))
            return "gets a frame through " + module + "." + code.co_name if (module, code.co_name) in _FRAME_LEAKERS else None
        if event in ("function.__new__", "code.__new__", "marshal.loads", "marshal.load"):
            if caller is None or id(caller.f_code) not in state["known"]:
                return f"{event} (makes code objects)"
            return None
        if event == "import":
            name = str(args[0])
            if name == _HARNESS_PACKAGE or name.startswith(_HARNESS_PACKAGE + "."):
                return f"imports the harness module {name}"
            return None
        if event == "open":
            path, mode, flags = (list(args) + [None, None, 0])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes and not writable(path):
                return f"opens {path!r} for writing"
            if isinstance(path, (str, bytes)) and os.path.basename(fspath(path)) in ("mem", b"mem") and "/proc" in str(path):
                return f"opens {path!r}"
            return None
        if event in _FS_EVENTS:
            for i in _FS_EVENTS[event]:
                if i < len(args) and not writable(args[i]):
                    return f"{event} on {args[i]!r}"
            return None
        if event.startswith(_ALWAYS):
            return f"{event}"
        return None

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != _EVENT and not state["armed"]:
            return
        tid = get_ident()
        if tid in busy:
            return
        busy.add(tid)
        try:
            try:
                caller = getframe(1)
            except ValueError:  # raised from C with no Python frame (interpreter start-up, a native thread)
                caller = None
            if event == _EVENT:
                control(args[0], args[1], caller)
                return
            why = refuse(event, args, caller)
            if why is None or honoured(tid, caller):
                return
            log.append(f"{why} (at {where(caller)})")
        finally:
            busy.discard(tid)
        raise PermissionError(f"workbench guard: a candidate may not do this: {why}")

    return hook
