"""A run on disk: parameters, an append-only event log, candidate sources, the best kernel.

outputs/runs/<run-id>/
  params.json        what the search was asked to do (written once)
  events.jsonl       one JSON object a line; every event has a unique "id"
  candidates/<id>.py each candidate's source, written before its event
  best.py, best.json the best correct kernel so far

A run killed at any moment (kill -9 included) resumes from its log: a torn last line is
dropped, events are keyed by id so nothing is recorded twice, and the search asks the log
before doing any piece of work.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

from workbench.problem import REPO_ROOT

RUNS_DIR = Path(os.environ.get("WORKBENCH_RUNS", REPO_ROOT / "outputs" / "runs"))


def new_run_id(problem: str) -> str:
    p = Path(problem)  # a problem given as a path names the run by the problem, never by the path
    name = p.parent.name if p.name == "reference.py" else (p.stem if p.suffix == ".py" else p.name)
    name = re.sub(r"[^\w.-]", "_", name).strip(".") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{os.getpid() % 10000:04d}"


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.events_path = self.dir / "events.jsonl"
        self.candidates_dir = self.dir / "candidates"
        self._events: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        if self.events_path.is_file():
            self._load()

    # -- creation ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, run_id: str | None, params: dict[str, Any], runs_dir: str | Path | None = None) -> "RunStore":
        """Create a run, or reopen it for resuming; a reopened run must have the same parameters."""
        root = Path(runs_dir or RUNS_DIR)
        run_id = run_id or new_run_id(str(params.get("problem", "run")))
        store = cls(root / run_id)
        path = store.dir / "params.json"
        if path.is_file():
            old = json.loads(path.read_text())
            diff = {k for k in set(old) | set(params) if k not in ("run_id",) and old.get(k) != params.get(k)}
            if diff:
                raise ValueError(f"run {run_id} exists with other parameters ({', '.join(sorted(diff))}); "
                                 f"use another --run-id or the same parameters to resume")
        else:
            store.candidates_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, json.dumps({**params, "run_id": run_id}, indent=1, sort_keys=True))
        return store

    @property
    def run_id(self) -> str:
        return self.dir.name

    @property
    def params(self) -> dict[str, Any]:
        return json.loads((self.dir / "params.json").read_text())

    # -- the log ---------------------------------------------------------------------------------------
    def _load(self) -> None:
        raw = self.events_path.read_bytes()
        good = raw if raw.endswith(b"\n") or not raw else raw[: raw.rfind(b"\n") + 1]
        if len(good) != len(raw):  # a line torn by a kill: drop it, so the next append starts clean
            with open(self.events_path, "r+b") as f:
                f.truncate(len(good))
        for line in good.decode().splitlines():
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if ev.get("id") not in self._ids:
                self._ids.add(ev["id"])
                self._events.append(ev)

    def has(self, event_id: str) -> bool:
        return event_id in self._ids

    def get(self, event_id: str) -> dict[str, Any] | None:
        for ev in self._events:
            if ev["id"] == event_id:
                return ev
        return None

    def append(self, event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
        """Record an event once; a second append of the same id returns the first."""
        if event_id in self._ids:
            return self.get(event_id)  # type: ignore[return-value]
        ev = {"id": event_id, "type": event_type, "time": time.time(), **data}
        line = json.dumps(ev, default=str) + "\n"
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.events_path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._ids.add(event_id)
        self._events.append(ev)
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

    def save_best(self, cand_id: str, record: dict[str, Any]) -> None:
        _atomic_write(self.dir / "best.py", self.candidate_path(cand_id).read_text())
        _atomic_write(self.dir / "best.json", json.dumps({"candidate": cand_id, **record}, indent=1, default=str))

    # -- views ---------------------------------------------------------------------------------------------
    def table(self) -> list[dict[str, Any]]:
        """One row per candidate: its idea, model, round, verdict and timings."""
        cands = {e["candidate"]: e for e in self.events("candidate")}
        ideas = {e["id"]: e for e in self.events("idea")}
        rows = []
        for v in self.events("verdict"):
            c = cands.get(v["candidate"], {})
            idea = ideas.get(c.get("idea", ""), {})
            rows.append({"run": self.run_id, "candidate": v["candidate"], "round": c.get("round"),
                         "idea": idea.get("text", c.get("idea_text", "")), "model": c.get("model"),
                         "parent": c.get("parent"), "status": v["status"], "correct": v["status"] == "correct",
                         "ms": v.get("ms"), "speedup_eager": v.get("speedup_eager"),
                         "speedup_compile": v.get("speedup_compile"), "roofline_fraction": v.get("roofline_fraction"),
                         "codes": v.get("codes", []), "repair_of": c.get("repair_of")})
        return rows


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def list_runs(runs_dir: str | Path | None = None) -> Iterator[RunStore]:
    root = Path(runs_dir or RUNS_DIR)
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if (d / "params.json").is_file():
                yield RunStore(d)
