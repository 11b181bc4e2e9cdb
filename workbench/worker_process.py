"""The judge's side of a worker: start it confined, speak its protocol, end it and all it started.

A worker is `python -m workbench.worker` in a sandbox (workbench.sandbox: its own PID, mount
and network namespaces where the OS allows, the repository, problems, build cache and runs
read-only, an allow-listed environment without credentials) with a scratch directory of its
own, the only place it writes. Replies are JSON lines that must carry the request's nonce
(stray or forged lines are counted, never trusted); a worker may ask, during `load`, for a
build (`need_build`), which the judge runs in its own process, since the worker cannot write
the build cache. One warm spare per device hides the start-up (torch import, CUDA context,
profiler) behind the evaluation before it.
"""
from __future__ import annotations

import atexit
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from workbench import exchange
from workbench.problem import REPO_ROOT

SCRATCH_ROOT = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
STARTUP_TIMEOUT_S = 180.0  # import torch, create the CUDA context, start the profiler
MAX_BUILDS_PER_LOAD = 8  # a worker asking for more is flooding the judge's compiler


class WorkerDied(RuntimeError):
    pass


def _sandbox() -> Any:
    """The sandbox module, unless WORKBENCH_SANDBOX=off (a machine where it cannot run: docs/isolation.md)."""
    if os.environ.get("WORKBENCH_SANDBOX", "on") == "off":
        return None
    from workbench import sandbox

    return sandbox


def spawn_confined(cmd: list[str], scratch: Path, stdin: Any, stdout: Any, stderr: Any,
                   confine: bool = True) -> tuple[subprocess.Popen, Any]:
    """Start `cmd` confined: the whole file system read-only but its scratch directory, no network,
    no secrets, its own PID namespace with its own /proc (CUDA needs that /proc: measured on the
    H200, a PID namespace without it fails cudaGetDeviceCount with error 304).

    confine=False (reference workers: trusted code, and torch.compile writes its caches) keeps the
    allow-listed environment and the process group only.
    """
    from workbench import build

    sb = _sandbox() if confine else None
    pythonpath = os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p)
    # HOME is the scratch directory there, so the build cache is named, not derived from HOME.
    # OMP_WAIT_POLICY: OpenMP threads that spin after a parallel region would take the cores the
    # judge's clock and the next sample need (a 2-core machine showed ms of drift).
    common = dict(PYTHONPATH=pythonpath, PYTHONUNBUFFERED="1", WORKBENCH_BUILD_CACHE=str(build.DEFAULT_CACHE),
                  PYTHONDONTWRITEBYTECODE="1", OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    from workbench.sandbox import worker_env  # one allow-list, confined or not

    env = dict(worker_env(scratch=scratch), **common)
    if sb is not None:
        new_proc = os.environ.get("WORKBENCH_SANDBOX_NEW_PROC", "1") != "0"
        return sb.spawn(cmd, scratch=scratch, readonly=[Path("/")], env=env, stdin=stdin, stdout=stdout,
                        stderr=stderr, new_proc=new_proc, hidden=credential_files())
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True, env=env, cwd=scratch)
    return proc, None


# Where tools keep credentials, relative to a home (and `.env` in the checkout): the environment's
# keys are gone from a worker, and these must be too. A name list, so a secret in some other file
# under a home stays readable (docs/threat-model.md says so); no network reaches a worker, but its
# error text travels on into repair prompts and reports.
CREDENTIAL_PATHS = (".netrc", ".git-credentials", ".pypirc", ".npmrc", ".pgpass", ".env", ".ssh", ".gnupg",
                    ".aws", ".azure", ".kube", ".docker", ".oci", ".config/gcloud", ".config/gh", ".config/hub",
                    ".config/openai", ".config/anthropic", ".cache/huggingface", ".huggingface", ".bash_history",
                    ".zsh_history", ".python_history", ".ipython", ".local/share/jupyter/runtime")
# And the machine's own: password hashes and host keys (uid 0 reads them without capabilities), the
# secrets Docker and Kubernetes mount into a container (a service account's token).
SYSTEM_CREDENTIAL_PATHS = ("/etc/shadow", "/etc/gshadow", "/etc/ssh", "/run/secrets", "/var/run/secrets")


def credential_files() -> list[Path]:
    """The credential stores that exist under the judge's home, /root and every /home/<user>, and the
    machine's own (SYSTEM_CREDENTIAL_PATHS)."""
    import pwd

    homes = {Path.home(), Path("/root")}
    try:
        homes.add(Path(pwd.getpwuid(os.getuid()).pw_dir))
        homes.update(p for p in Path("/home").iterdir() if p.is_dir())
    except (KeyError, OSError):
        pass
    found = {REPO_ROOT / ".env", *(Path(p) for p in SYSTEM_CREDENTIAL_PATHS)}
    for home in homes:
        found.update(home / rel for rel in CREDENTIAL_PATHS)
    out = set()
    for p in found:
        try:
            if p.is_file() or p.is_dir():
                out.add(p.resolve())
        except OSError:  # a home we may not look into: the child cannot either
            continue
    return sorted(out)


def end_confined(proc: subprocess.Popen) -> None:
    """End a confined process and every process it started."""
    sb = _sandbox()
    if sb is not None:
        sb.kill(proc)
    elif proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def new_scratch(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"workbench-{kind}-", dir=SCRATCH_ROOT))


class WorkerProcess:
    """One confined worker process and its protocol."""

    def __init__(self, device: str, memory_limit_gb: float = 0.0, profile: bool = True, confine: bool = True):
        self.device = device
        self.scratch = new_scratch("worker")
        self.log_path = self.scratch.parent / f"{self.scratch.name}.log"
        self.log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "workbench.worker", "--device", device, "--scratch", str(self.scratch)]
        if memory_limit_gb:
            cmd += ["--memory-limit-gb", str(memory_limit_gb)]
        if not profile:
            cmd.append("--no-profile")
        self.proc, self.confinement = spawn_confined(cmd, self.scratch, subprocess.PIPE, subprocess.PIPE, self.log,
                                                     confine=confine)
        self.reader = exchange.Reader(self.scratch)  # its output files, mapped on the judge's side
        self.ready = False
        self.forged = 0  # reply lines that did not carry the request's nonce: written by the candidate
        self.builds_asked = 0

    def confinement_summary(self) -> str:
        c = self.confinement
        return "process group and allow-listed environment only" if c is None else c.summary()

    # -- the protocol -----------------------------------------------------------------------------------
    def _read(self, timeout_s: float, nonce: str | None = None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    self.proc.wait(timeout=10)
                    raise WorkerDied(f"worker exited with code {self.proc.returncode}")
                try:
                    reply = json.loads(line)
                except json.JSONDecodeError:
                    reply = None
                if nonce is None or (isinstance(reply, dict) and reply.get("nonce") == nonce):
                    return reply if isinstance(reply, dict) else {}
                self.forged += 1
                continue
            if self.proc.poll() is not None:
                raise WorkerDied(f"worker exited with code {self.proc.returncode}")

    def _write(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerDied("worker is gone") from e

    def wait_ready(self) -> None:
        if not self.ready:
            self._read(timeout_s=STARTUP_TIMEOUT_S)
            self.ready = True

    def request(self, req: dict[str, Any], timeout_s: float,
                on_build: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Send one request, return its reply; builds the worker asks for run here, in the judge."""
        self.wait_ready()
        req = {**req, "nonce": secrets.token_hex(16)}
        self._write(req)
        while True:
            reply = self._read(timeout_s, req["nonce"])
            if "need_build" not in reply:
                return reply
            self.builds_asked += 1
            if on_build is None or self.builds_asked > MAX_BUILDS_PER_LOAD:
                self._write({"built": {"name": "refused", "key": "", "ok": False, "directory": "", "module_name": "",
                                       "library": None, "seconds": 0.0, "cached": False, "error": "refused",
                                       "log": "the judge builds at most %d extensions per candidate" % MAX_BUILDS_PER_LOAD}})
                continue
            self._write({"built": on_build(reply["need_build"])})

    def log_tail(self, n: int = 6000) -> str:
        try:
            self.log.flush()
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """End the worker and every process it started; remove its scratch directory."""
        try:
            end_confined(self.proc)
        finally:
            self.reader.close()
            self.log.close()
            self.log_path.unlink(missing_ok=True)
            shutil.rmtree(self.scratch, ignore_errors=True)


# Warm spares per (device, profiled, memory limit, confined): a fresh process per evaluation without
# paying its start-up. One start per evaluation whatever the count; the count only sets how far
# ahead a spare starts: it has (count x evaluation time) to get ready. On the H200 a CUDA worker
# takes 5-7 s to start and an evaluation 1.1-3.4 s (a screened one ~1.5 s): with one spare every
# other evaluation waited 5-9 s, with two half of them waited 0.5-4 s (make run,
# notes/judge-h200-session4.md); five give a spare 7.5 s even behind 1.5 s evaluations. A spare
# costs a process and a CUDA context (~0.5 GB of device memory). On the CPU target one: a worker
# starts in ~1.9 s (0.9 s of it the profiler) and a 2-core machine has no cores to start more.
SPARES = {"cuda": int(os.environ.get("WORKBENCH_SPARES", 5)), "cpu": int(os.environ.get("WORKBENCH_SPARES", 1))}
_spares: dict[tuple[str, bool, float, bool], list[WorkerProcess]] = {}


def take_worker(device: str, memory_limit_gb: float = 0.0, profile: bool = True, confine: bool = True) -> WorkerProcess:
    key = (device, profile, memory_limit_gb, confine)
    waiting = _spares.setdefault(key, [])
    w = None
    while waiting and w is None:  # the oldest first: it has had the longest to start
        w = waiting.pop(0)
        if w.proc.poll() is not None:
            w.kill()
            w = None
    if w is None:
        w = WorkerProcess(device, memory_limit_gb, profile, confine)
    # reference workers (trusted, unconfined) are taken twice per problem: one spare is plenty
    want = SPARES["cuda" if device.startswith("cuda") else "cpu"] if confine else 1
    while len(waiting) < max(1, want):
        waiting.append(WorkerProcess(device, memory_limit_gb, profile, confine))
    return w


@atexit.register
def kill_spares() -> None:
    for waiting in list(_spares.values()):
        for w in waiting:
            w.kill()
    _spares.clear()


def device_for(target: str, index: int = 0) -> str:
    if target == "cuda":
        if not _cuda_available():
            raise ValueError("target 'cuda' needs a CUDA device; use --target cpu to run on the CPU")  # the user's choice, not a crash
        return f"cuda:{index}"
    if target == "cpu":
        return "cpu"
    raise ValueError(f"unknown target {target!r}: cuda or cpu")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_memory_limit_gb() -> float:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
        return max(4.0, total * 0.6)  # a runaway CPU candidate fails to allocate instead of taking the machine
    except (ValueError, OSError):
        return 0.0
