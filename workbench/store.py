"""A run on disk, and its typed state in memory.

outputs/runs/<run-id>/
  params.json        what the search was asked to do, and the digest of its problem (written once)
  events.jsonl       one JSON object a line; every event has a unique "id"
  candidates/<id>.py each candidate's source, written before its event
  best.py, best.json the best correct kernel so far, and the run's model totals
  .lock              held (flock) by the one search writing the run

Safety: one writer per run (an flock the kernel drops when its process dies, so a killed
search never leaves a run stuck); each event is one os.write of one line to a file opened
O_APPEND, under an flock, so appends from threads and processes never interleave. A run
killed at any moment resumes from its log: a torn last line is dropped, damaged lines
elsewhere are reported (line number, what was lost) and skipped, events are keyed by id so
nothing is recorded twice.

`RunState` is the one in-memory record of a run (ideas, candidates with their verdicts, model
calls, rounds), kept up to date as events are read and appended; the search plans from it,
and the report and the panel can read it instead of the raw events.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator


REPO_ROOT = Path(__file__).resolve().parent.parent  # as workbench.problem has it; imported without torch
RUNS_DIR = Path(os.environ.get("WORKBENCH_RUNS", REPO_ROOT / "outputs" / "runs"))
PROBLEM_DIGEST = "problem_digest"  # the params.json key binding a run to its problem file


class RunError(ValueError):
    """A run cannot be opened as asked (in use, other parameters, a changed problem)."""


def new_run_id(problem: str) -> str:
    p = Path(problem)  # a problem given as a path names the run by the problem, never by the path
    name = p.parent.name if p.name == "reference.py" else (p.stem if p.suffix == ".py" else p.name)
    name = re.sub(r"[^\w.-]", "_", name).strip(".") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{os.getpid() % 10000:04d}"


# -- the typed record ---------------------------------------------------------------------------------
def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class CallRecord:
    """One model call at its place in the run (e.g. "r1-ideas-0", "r1-i0-m1", "r1-i0-m1-fix1")."""
    place: str
    model: str
    text: str | None = None  # the reply; None when the call failed for good
    error: str = ""
    input_tokens: int = 0  # billed over every attempt, retries included
    output_tokens: int = 0  # reasoning included
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 0
    seconds: float = 0.0
    discarded: bool = False  # a reply came but held no usable ideas or code
    replayed_from: str | None = None  # the run whose recorded reply this is

    @classmethod
    def from_event(cls, ev: dict[str, Any]) -> "CallRecord":
        return cls(**_known(cls, ev))


@dataclass
class VerdictRecord:
    status: str
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    ms: float | None = None
    speedup_eager: float | None = None
    speedup_compile: float | None = None
    roofline_fraction: float | None = None
    timing: dict[str, Any] | None = None
    build_seconds: float = 0.0
    build_cached: bool | None = None
    build_resources: list[dict[str, Any]] = field(default_factory=list)  # ptxas registers and spills per kernel
    build_log: str = ""
    tolerance: Any = None
    seconds: float = 0.0
    stage: str | None = None
    policy: str | None = None
    device_index: int | None = None
    device_name: str | None = None
    phases: dict[str, float] | None = None
    degenerate: Any = None
    copied_from: str | None = None  # a duplicate source takes its original's verdict

    @classmethod
    def from_event(cls, ev: dict[str, Any]) -> "VerdictRecord":
        return cls(**_known(cls, ev))


@dataclass
class IdeaRecord:
    id: str
    round: int
    text: str
    model: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CandidateRecord:
    id: str
    round: int
    model: str
    idea: str | None = None
    parent: str | None = None
    hash: str | None = None
    duplicate_of: str | None = None
    repair_of: str | None = None
    failed: bool = False  # no source: the reply held no code, or the call failed
    error: str = ""
    verdict: VerdictRecord | None = None


@dataclass
class RunState:
    ideas: dict[str, IdeaRecord] = field(default_factory=dict)
    candidates: dict[str, CandidateRecord] = field(default_factory=dict)
    calls: dict[str, CallRecord] = field(default_factory=dict)
    rounds: dict[int, dict[str, Any]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def apply(self, ev: dict[str, Any]) -> None:
        t = ev.get("type")
        if t == "idea":
            self.ideas[ev["id"]] = IdeaRecord(ev["id"], ev.get("round", 0), ev.get("text", ""), ev.get("model", ""),
                                              ev.get("data") or {})
        elif t == "candidate":
            c = CandidateRecord(**_known(CandidateRecord, {**ev, "id": ev["candidate"]}))
            old = self.candidates.get(c.id)
            c.verdict = old.verdict if old else None  # a verdict may have been read first
            self.candidates[c.id] = c
        elif t == "verdict":
            cid = ev["candidate"]
            c = self.candidates.setdefault(cid, CandidateRecord(cid, ev.get("round", -1), ev.get("model", "")))
            c.verdict = VerdictRecord.from_event(ev)
        elif t == "call":
            self.calls[ev["place"]] = CallRecord.from_event(ev)
        elif t == "round":
            self.rounds[ev["round"]] = ev
        elif t == "facts":
            self.facts = ev.get("facts") or {}
        elif t == "baseline":
            self.baseline = {k: v for k, v in ev.items() if k not in ("id", "type", "time")}
        elif t == "notice":
            self.notices.append(ev.get("message", ""))

    # -- what the search plans from ------------------------------------------------------------------
    def in_round(self, r: int) -> list[CandidateRecord]:
        return [c for c in list(self.candidates.values()) if c.round == r]

    def correct(self) -> list[CandidateRecord]:
        ok = [c for c in list(self.candidates.values()) if c.verdict and c.verdict.status == "correct" and c.verdict.ms]
        return sorted(ok, key=lambda c: c.verdict.ms)  # type: ignore[union-attr]

    def model_failures(self) -> list[CallRecord]:
        """Calls that failed for good (unreachable, refused, retries used up), in log order."""
        return [c for c in list(self.calls.values()) if c.text is None]

    def totals(self) -> dict[str, Any]:
        """Model accounting: per model and overall, from every recorded call."""
        per: dict[str, dict[str, Any]] = {}
        for c in list(self.calls.values()):  # a snapshot: other threads append meanwhile
            t = per.setdefault(c.model, empty_totals())
            t["calls"] += 1
            t["failed_calls"] += c.text is None
            t["discarded_replies"] += c.discarded
            t["attempts"] += c.attempts
            t["retries"] += max(0, c.attempts - 1)
            t["replayed_calls"] += c.replayed_from is not None
            for k in ("input_tokens", "output_tokens", "reasoning_tokens", "cost_usd", "seconds"):
                t[k] += getattr(c, k)
        overall = empty_totals()
        for t in per.values():
            for k in overall:
                overall[k] += t[k]
        return {"per_model": per, "overall": overall}


def empty_totals() -> dict[str, Any]:
    return {"calls": 0, "failed_calls": 0, "discarded_replies": 0, "attempts": 0, "retries": 0, "replayed_calls": 0,
            "input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0, "seconds": 0.0}


# -- the store ----------------------------------------------------------------------------------------
class RunStore:
    def __init__(self, run_dir: str | Path, load: bool = True):
        """Read a run (no lock: for reports and panels). `open` is for the search that writes it
        (it reads the log once it holds the lock, so it asks for no load here)."""
        self.dir = Path(run_dir)
        self.events_path = self.dir / "events.jsonl"
        self.candidates_dir = self.dir / "candidates"
        self._events: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._mutex = threading.Lock()  # appends from the search's threads
        self._lock_fd: int | None = None
        self.state = RunState()
        self.damage: list[str] = []  # what the reader skipped, one line each
        if load and self.events_path.is_file():
            self._load(repair=False)

    # -- creation ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, run_id: str | None, params: dict[str, Any], runs_dir: str | Path | None = None,
             problem_digest: str | None = None, new_run_on_change: bool = False,
             free: tuple[str, ...] = ()) -> "RunStore":
        """Create a run, or reopen it to resume, as its one writer. A reopened run must have the
        same parameters (but those named in `free`) and, when `problem_digest` is given, the same
        problem file; a changed problem refuses the resume, or starts a new run when
        `new_run_on_change`."""
        root = Path(runs_dir or RUNS_DIR)
        run_id = run_id or new_run_id(str(params.get("problem", "run")))
        store = cls(root / run_id, load=False)
        store.dir.mkdir(parents=True, exist_ok=True)
        store._take_lock()
        path = store.dir / "params.json"
        store.candidates_dir.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            old = json.loads(path.read_text())
            recorded = old.get(PROBLEM_DIGEST)
            if problem_digest and recorded and recorded != problem_digest:
                store.close()
                if new_run_on_change:
                    return cls.open(new_run_id(str(params.get("problem", "run"))), params, runs_dir, problem_digest,
                                    free=free)
                raise RunError(f"run {run_id} was made for {old.get('problem')} with digest {recorded}; the problem "
                               f"file has changed since (digest now {problem_digest}), so its verdicts do not hold "
                               f"for it. Refusing to resume: restore the file, use another --run-id, or pass "
                               f"--new-run-on-change to start a new run")
            same_problem = _same_problem(old.get("problem"), params.get("problem"))
            diff = {k for k in set(old) | set(params) if k not in ("run_id", PROBLEM_DIGEST, *free)
                    and old.get(k) != params.get(k) and not (k == "problem" and same_problem)}
            if diff:
                store.close()
                raise RunError(f"run {run_id} exists with other parameters ({', '.join(sorted(diff))}); "
                               f"use another --run-id or the same parameters to resume")
        else:
            record = {**params, "run_id": run_id}
            if problem_digest:
                record[PROBLEM_DIGEST] = problem_digest
            _atomic_write(path, json.dumps(record, indent=1, sort_keys=True))
        if store.events_path.is_file():
            store._reset()
            store._load(repair=True)  # now that we are the writer, a torn tail may be cut
        return store

    def _take_lock(self) -> None:
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            raise RunError(f"run {self.run_id} is in use by another search ({holder or 'pid unknown'}); "
                           f"wait for it to end, stop it, or use another --run-id") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        """Give up being the run's writer (the kernel also does this when the process dies)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def run_id(self) -> str:
        return self.dir.name

    @property
    def params(self) -> dict[str, Any]:
        return json.loads((self.dir / "params.json").read_text())

    # -- the log ---------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._events, self._by_id, self.state, self.damage = [], {}, RunState(), []

    def _load(self, repair: bool) -> None:
        """Read every intact line; report the rest. Never raises on the log's content."""
        raw = self.events_path.read_bytes()
        cut = raw.rfind(b"\n") + 1
        if cut < len(raw):  # a last line torn by a kill
            last = raw.count(b"\n") + 1
            self.damage.append(f"line {last}: torn last write ({len(raw) - cut} bytes) dropped" + _lost(raw[cut:]))
            if repair:  # the writer cuts it, so the next append starts on a clean line
                with open(self.events_path, "r+b") as f:
                    f.truncate(cut)
        for n, line in enumerate(raw[:cut].split(b"\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                self.damage.append(f"line {n}: not UTF-8 ({e.reason} at byte {e.start}), skipped" + _lost(line))
                continue
            try:
                ev = json.loads(text)
            except json.JSONDecodeError as e:
                self.damage.append(f"line {n}: not JSON ({e.msg} at column {e.colno}), skipped" + _lost(line))
                continue
            if not isinstance(ev, dict):
                self.damage.append(f"line {n}: a JSON {type(ev).__name__}, not an event object, skipped")
                continue
            if not isinstance(ev.get("id"), str) or not isinstance(ev.get("type"), str):
                self.damage.append(f"line {n}: an object without a string id and type, skipped" + _lost(line))
                continue
            if ev["id"] not in self._by_id:
                self._record(ev)

    def _record(self, ev: dict[str, Any]) -> None:
        self._by_id[ev["id"]] = ev
        self._events.append(ev)
        try:
            self.state.apply(ev)
        except (KeyError, TypeError, ValueError) as e:  # a well-formed line with a bad shape
            self.damage.append(f"event {ev['id']}: not understood ({type(e).__name__}: {e}); kept in the log only")

    def has(self, event_id: str) -> bool:
        return event_id in self._by_id

    def get(self, event_id: str) -> dict[str, Any] | None:
        return self._by_id.get(event_id)

    def append(self, event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
        """Record an event once; a second append of the same id returns the first. Safe from
        many threads; one write of one line under an flock, safe from many processes."""
        with self._mutex:
            if event_id in self._by_id:
                return self._by_id[event_id]
            ev = {"id": event_id, "type": event_type, "time": time.time(), **data}
            line = (json.dumps(ev, default=str) + "\n").encode()
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                written = os.write(fd, line)
                while written < len(line):  # a short write (disk full, signal): finish the same line
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)  # closing drops the flock
            ev = json.loads(line)  # what a reader of the log will see (default=str applied)
            self._record(ev)
            return ev

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._events if event_type is None or e["type"] == event_type]

    # -- sources -----------------------------------------------------------------------------------------
    def candidate_path(self, cand_id: str) -> Path:
        return self.candidates_dir / f"{cand_id}.py"

    def save_source(self, cand_id: str, source: str) -> Path:
        path = self.candidate_path(cand_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, source)
        return path

    def save_best(self, cand_id: str | None, record: dict[str, Any]) -> None:
        """best.json holds the best kernel (if any) and the run's model totals; best.py its source."""
        if cand_id is not None:
            _atomic_write(self.dir / "best.py", self.candidate_path(cand_id).read_text())
        _atomic_write(self.dir / "best.json", json.dumps({"candidate": cand_id, **record}, indent=1, default=str))

    # -- views ---------------------------------------------------------------------------------------------
    def table(self) -> list[dict[str, Any]]:
        """One row per judged candidate: its idea, model, round, verdict and timings."""
        rows = []
        for c in self.state.candidates.values():
            v = c.verdict
            if v is None:
                continue
            idea = self.state.ideas.get(c.idea or "")
            rows.append({"run": self.run_id, "candidate": c.id, "round": c.round if c.round >= 0 else None,
                         "idea": idea.text if idea else "", "model": c.model or None, "parent": c.parent,
                         "status": v.status, "correct": v.status == "correct", "ms": v.ms,
                         "speedup_eager": v.speedup_eager, "speedup_compile": v.speedup_compile,
                         "roofline_fraction": v.roofline_fraction, "codes": v.codes, "repair_of": c.repair_of,
                         "build_seconds": v.build_seconds, "device_name": v.device_name})
        return rows


def _lost(data: bytes) -> str:
    """What a damaged line held, as far as it can be told."""
    found = re.search(rb'"id"\s*:\s*"([^"]{1,120})"', data)
    what = f"; it held event {found.group(1).decode(errors='replace')!r}" if found else "; its event id is unreadable"
    return f"{what} ({data[:80]!r})"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def problem_ref(problem: str) -> str:
    """How a run names its problem so that any working directory finds it again: a problem
    name stays a name; a path inside the repository becomes relative to its root; any other
    path becomes absolute."""
    p = Path(problem)
    if not p.exists() and "/" not in problem and (REPO_ROOT / "problems" / problem).exists():
        return problem
    full = (p if p.is_absolute() or p.exists() else REPO_ROOT / p).resolve()
    if full.name == "reference.py":  # a problem directory and its reference.py are one problem
        full = full.parent
    try:
        return full.relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return str(full)


def _same_problem(a: Any, b: Any) -> bool:
    """Two spellings of one problem (a name, a relative or an absolute path)."""
    try:
        return isinstance(a, str) and isinstance(b, str) and problem_ref(a) == problem_ref(b)
    except OSError:
        return False


def problem_path(ref: str) -> str:
    """The inverse of `problem_ref`: a path that exists from this working directory."""
    p = Path(ref)
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        return str(REPO_ROOT / p)
    return ref


def list_runs(runs_dir: str | Path | None = None) -> Iterator[RunStore]:
    root = Path(runs_dir or RUNS_DIR)
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if (d / "params.json").is_file():
                yield RunStore(d)


__all__ = ["CallRecord", "CandidateRecord", "IdeaRecord", "RunError", "RunState", "RunStore", "VerdictRecord",
           "list_runs", "new_run_id", "problem_path", "problem_ref"]
