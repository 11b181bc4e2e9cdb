"""Loaded by tests/test_guard.py's harness script after guard.arm(): each attempt is something a
candidate may not do. run() returns {name: "refused" | "allowed: <what happened>"}."""
import gc
import inspect
import os
import socket
import subprocess
import sys
import traceback


def _frame_via_traceback():
    try:
        raise RuntimeError
    except RuntimeError as e:
        tb = getattr(e, "__trace" + "back__")  # the attack: names built from strings
        return getattr(tb, "tb_fr" + "ame")


def _exc_info_frame():
    try:
        raise RuntimeError
    except RuntimeError:
        return sys.exc_info()[2].tb_frame


def _gen():
    yield 1


def _code_replace():
    c = (lambda: 0).__code__
    return c.replace(co_filename="/fake")


def _import_harness():
    import workbench.judge  # noqa: F401  (dropped from sys.modules by the harness: a fresh import)


def _ctypes():
    import ctypes
    return ctypes.CDLL(None)


ATTEMPTS = {
    "traceback_frame": _frame_via_traceback,
    "sys_getframe": lambda: sys._getframe(),
    "inspect_currentframe": lambda: inspect.currentframe(),
    "inspect_stack": lambda: inspect.stack(),
    "traceback_walk_stack": lambda: next(traceback.walk_stack(None)),
    "logging_currentframe": lambda: __import__("logging").currentframe(),
    "exc_info_frame": lambda: _exc_info_frame(),
    "current_frames": lambda: sys._current_frames(),
    "gi_frame": lambda: _gen().gi_frame,
    "code_object": lambda: (lambda: 0).__code__,
    "code_replace": _code_replace,
    "gc_get_objects": lambda: gc.get_objects(),
    "gc_get_referrers": lambda: gc.get_referrers(sys),
    "gc_get_referents": lambda: gc.get_referents(sys),
    "settrace": lambda: sys.settrace(None),
    "setprofile": lambda: sys.setprofile(None),
    "ctypes": _ctypes,
    "subprocess": lambda: subprocess.run(["true"]),
    "os_system": lambda: os.system("true"),
    "os_execv": lambda: os.execv("/bin/true", ["true"]),
    "os_fork": lambda: os.fork(),
    "os_posix_spawn": lambda: os.posix_spawn("/bin/true", ["true"], {}),
    "os_kill": lambda: os.kill(os.getppid(), 0),
    "socket": lambda: socket.socket(),
    "write_outside": lambda: open(os.environ["GUARD_TEST_OUTSIDE"], "w"),
    "write_proc_fd": lambda: open("/proc/self/fd/1", "w"),
    "os_open_write": lambda: os.open(os.environ["GUARD_TEST_OUTSIDE"], os.O_WRONLY | os.O_CREAT),
    "remove_outside": lambda: os.remove(os.environ["GUARD_TEST_OUTSIDE"]),
    "rename_outside": lambda: os.rename(os.environ["GUARD_TEST_OUTSIDE"], os.environ["GUARD_TEST_OUTSIDE"] + ".x"),
    "chmod_outside": lambda: os.chmod(os.environ["GUARD_TEST_OUTSIDE"], 0o777),
    "truncate_outside": lambda: os.truncate(os.environ["GUARD_TEST_OUTSIDE"], 0),
    "import_harness": _import_harness,
    "addaudithook": lambda: _addaudithook(),
}


class _Refused(PermissionError):
    """sys.addaudithook swallows a hook's refusal and returns None: report it as refused."""

    def __str__(self):
        return "workbench guard refused silently"


def _addaudithook():
    seen = []
    sys.addaudithook(lambda event, args: seen.append(event))
    sys.audit("guard_test.probe")
    if not seen:
        raise _Refused()
    return seen


def run():
    results = {}
    for name, attempt in ATTEMPTS.items():
        try:
            got = attempt()
            results[name] = f"allowed: {type(got).__name__}"
        except PermissionError as e:
            results[name] = "refused" if "workbench guard" in str(e) else f"allowed: {e}"
        except Exception as e:  # noqa: BLE001 - anything but the guard's refusal means it got through
            results[name] = f"allowed: {type(e).__name__}: {e}"
    return results


def forge_reply():
    """The issue's attack: reach the harness frame through a traceback and call its reply()."""
    try:
        raise RuntimeError
    except RuntimeError as e:
        try:
            frame = getattr(getattr(e, "__trace" + "back__"), "tb_fr" + "ame")
            while frame is not None:
                loc = getattr(frame, "f_lo" + "cals")
                if "reply" in loc:
                    loc["reply"]({"ms": 0.01})
                    break
                frame = getattr(frame, "f_ba" + "ck")
        except PermissionError:
            pass
    return None


def callback_attack(harness_fn):
    """Call a harness function that suspends the guard, with a callback of our own."""
    try:
        harness_fn(lambda: open(os.environ["GUARD_TEST_OUTSIDE"], "w"))
        return "allowed"
    except PermissionError:
        return "refused"


def suspend_attack(guard):
    try:
        with guard.suspended():
            open(os.environ["GUARD_TEST_OUTSIDE"], "w")
        return "allowed"
    except PermissionError:
        return "refused"


def honest_namedtuple():
    import collections
    return collections.namedtuple("Q", "x")(3).x == 3


def honest_write(directory):
    path = os.path.join(directory, "scratch.txt")
    with open(path, "w") as f:
        f.write("ok")
    os.remove(path)
    return True


def honest_environ():
    os.environ["WORKBENCH_TEST_FLAG"] = "1"
    return os.environ.get("WORKBENCH_TEST_FLAG") == "1"


def honest_build(builder, path):
    """A candidate's import calls the harness's builder (load_inline); the builder suspends the guard."""
    return builder(path)
