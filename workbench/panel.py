"""An ipywidgets control panel for a search: pick a problem and parameters, Start, watch, Stop.

Start runs `Search(...).run()` in the panel's runner thread; its events come to `on_event`, which
updates the progress bar, the table of latest candidates and (each round) the trajectory.
Stop sets a threading.Event that the search reads between steps (a clean stop: candidates not yet
judged stay pending in the run's log, and resuming the run id judges them). `on_event` may be called
directly, e.g. with the events of a finished run, which is how the tests drive it without a kernel.

Why a runner thread made with the panel: with JupyterLab sending widget messages over kernel
subshells, a button callback runs in a subshell thread. A search thread started from there is tied
to that subshell, which a page reload leaves stale (the kernel then logs "Cannot handle comm_msg ...
Unknown subshell_id" and drops the messages). The runner is started by the cell that builds the
panel, in the main shell; Start only hands it the parameters. After a reload, running the panel
cell again gives a panel that attaches to the search still running (`SearchPanel.active`), so it
shows that run and its Stop stops it.

Runs started here store the problem as a name under problems/ or an absolute path
(`problem_spec`), so `python -m workbench search <problem> --run-id <id>` resumes them from any
directory, and the panel resumes runs the CLI started.
"""
from __future__ import annotations

import html
import inspect
import io
import queue
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from workbench import report
from workbench.progress import CandidateCount

TABLE_ROWS = 12
CSS_COLOURS = {"correct": "green", "pending": "gray", "model_error": "gray", "build_error": "darkorange"}


def problem_spec(problem: str) -> str:
    """How a run stores its problem: the name when it is one of problems/, else the absolute path of its file
    (a path relative to wherever the notebook ran could not be resumed from anywhere else)."""
    from workbench.problem import PROBLEMS_DIR, resolve_path

    path = resolve_path(problem)  # raises ProblemError with the known names when it is neither
    if path.name == "reference.py" and path.parent.parent == PROBLEMS_DIR.resolve():
        return path.parent.name
    return str(path)


def seed_count(problem: str, target: str) -> int:
    """How many seeds round 0 judges on this target."""
    from workbench.problem import load_problem

    return len(load_problem(problem, target=target).seeds())


def problems_for(target: str) -> list[str]:
    """The problems that can run on this target: `list_problems(target)` where the problem module offers it
    (problems with a seed for the target), else every problem."""
    from workbench import problem as problem_module

    list_problems = getattr(problem_module, "list_problems")
    try:
        if "target" in inspect.signature(list_problems).parameters:
            return list(list_problems(target=target))
    except (TypeError, ValueError):
        pass
    return list(list_problems())


class EventLog:
    """The few RunStore methods the report functions use, over events held in memory."""

    def __init__(self, run_id: str = "live", params: dict[str, Any] | None = None, run_dir: Path | None = None):
        self.run_id = run_id
        self.params = params or {}
        self.dir = run_dir
        self._events: list[dict[str, Any]] = []

    def add(self, ev: dict[str, Any]) -> None:
        self._events.append(ev)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._events if event_type is None or e["type"] == event_type]

    def get(self, event_id: str) -> dict[str, Any] | None:
        return next((e for e in self._events if e["id"] == event_id), None)

    def candidate_path(self, cand_id: str) -> Path:
        return (self.dir or Path(".")) / "candidates" / f"{cand_id}.py"


class SearchPanel:
    def __init__(self, problem: str | None = None, models: Sequence[str] = ("tuner",), rounds: int = 5, ideas: int = 4,
                 impls: int = 2, seeds: int = 2, target: str | None = None, run_id: str | None = None,
                 runs_dir: str | Path | None = None, total: int | None = None, **search_kwargs: Any):
        import ipywidgets as w

        if target is None:
            import torch

            target = "cuda" if torch.cuda.is_available() else "cpu"
        choices = problems_for(target)
        if problem and problem not in choices:
            choices = [problem, *choices]
        self.run_id, self.runs_dir, self.search_kwargs = run_id, runs_dir, search_kwargs
        self.problem = w.Dropdown(options=choices, value=problem or (choices[0] if choices else None),
                                  description="problem")
        self.models = w.Text(value=",".join(models), description="models",
                             placeholder="tuner, openai:<model>, gemini:<model>")
        self.rounds = w.BoundedIntText(value=rounds, min=0, max=100, description="rounds")
        self.ideas = w.BoundedIntText(value=ideas, min=1, max=64, description="ideas K")
        self.impls = w.BoundedIntText(value=impls, min=1, max=64, description="impls M")
        self.seeds = w.BoundedIntText(value=seeds, min=1, max=64, description="seeds B")
        self.target = w.Dropdown(options=["cuda", "cpu"], value=target, description="target")
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=max(1, total or 1), description="0 judged")
        self.status = w.HTML(value="idle")
        self.table = w.HTML(value="")
        self.out = w.Output()
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.target.observe(lambda change: self.list_problems_for(change["new"]), names="value")
        self._fixed_total = total
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.store: Any = None
        self.error: BaseException | None = None
        self.log = EventLog()
        self._viewers: list[SearchPanel] = []  # panels made after a reload that show this one's search
        self._requests: queue.Queue[Any] = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        self.runner = threading.Thread(target=self._serve, name="workbench-panel-runner", daemon=True)
        self.runner.start()
        self.widget = w.VBox([
            w.HBox([self.problem, self.models, self.target]),
            w.HBox([self.rounds, self.ideas, self.impls, self.seeds]),
            w.HBox([self.start_button, self.stop_button, self.progress, self.status]),
            self.table, self.out])

    # -- parameters ------------------------------------------------------------------------------------
    def list_problems_for(self, target: str) -> None:
        """Offer only the problems that can run on the chosen target (keeping the current one when it can)."""
        choices = problems_for(target)
        current = self.problem.value
        self.problem.options = choices
        self.problem.value = current if current in choices else (choices[0] if choices else None)

    def params(self) -> Any:
        from workbench.search import SearchParams

        models = [m.strip() for m in self.models.value.split(",") if m.strip()] or ["tuner"]
        return SearchParams(problem=problem_spec(self.problem.value), models=models, rounds=self.rounds.value,
                            ideas=self.ideas.value, impls=self.impls.value, seeds=self.seeds.value,
                            target=self.target.value, **self.search_kwargs)

    def expected_total(self, params: Any) -> int:
        return self.count_for(params).total

    @staticmethod
    def count_for(params: Any) -> CandidateCount:
        try:
            n_seeds = seed_count(params.problem, params.target)
        except Exception:  # a problem that does not load: Start reports it
            n_seeds = 0
        return CandidateCount(n_seeds, params.rounds, params.ideas, params.impls)

    def reset(self, params: Any = None, run_id: str | None = None, run_dir: Path | None = None) -> None:
        self.log = EventLog(run_id or "live", asdict(params) if params is not None else {}, run_dir)
        self.count = self.count_for(params) if params is not None else None
        if self.count is not None and not self._fixed_total:
            self.progress.max = max(1, self.count.total)
        self.progress.value = 0
        self.progress.description = "0 judged"
        self.table.value = ""
        self.out.clear_output()

    # -- running ----------------------------------------------------------------------------------------
    # The panel whose search is running in this kernel: a panel made after a page reload attaches to it.
    active: "SearchPanel | None" = None

    def start(self, params: Any = None, block: bool = False) -> None:
        """Start the search in the runner thread (or in this one with block=True); a no-op while one runs."""
        running = SearchPanel.active
        if running is not None and running is not self and running.running():
            self.attach(running)
            return
        if self.running():
            return
        try:
            params = params or self.params()
            params = replace(params, problem=problem_spec(params.problem))
        except Exception as e:  # a problem that does not load: shown in the panel, not lost in a callback
            self.error = e
            self.status.value = f"<b style='color:red'>error: {html.escape(str(e))[:400]}</b>"
            return
        self._idle.clear()
        self.stop_event.clear()
        self.error = None
        self.reset(params)
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"starting {html.escape(str(params.problem))}..."
        SearchPanel.active = self
        if block:
            self._work(params)
        else:
            self.thread = self.runner
            self._requests.put(params)

    def running(self) -> bool:
        return not self._idle.is_set()

    def _serve(self) -> None:
        while True:
            params = self._requests.get()
            self._work(params)

    def _work(self, params: Any) -> None:
        from workbench.search import Search

        try:
            search = Search(params, run_id=self.run_id, runs_dir=self.runs_dir, on_event=self._dispatch,
                            should_stop=self.stop_event.is_set)
            self.store = search.store
            self.log.run_id, self.log.dir = search.store.run_id, search.store.dir
            search.run()
            self.status.value = (f"stopped: run {self.store.run_id} (resume it with the same run id)"
                                 if self.stop_event.is_set() else f"done: run {self.store.run_id}")
        except BaseException as e:  # shown in the panel, not lost in a thread
            self.error = e
            self.status.value = f"<b style='color:red'>error: {html.escape(repr(e))[:400]}</b>"
        finally:
            self.start_button.disabled, self.stop_button.disabled = False, True
            self.draw(running=False)  # the search is over: its title must not say [running]
            self._idle.set()
            for viewer in self._viewers:
                viewer.start_button.disabled, viewer.stop_button.disabled = False, True
                viewer.status.value = self.status.value
                viewer.draw(running=False)

    def _dispatch(self, ev: dict[str, Any]) -> None:
        self.on_event(ev)
        for viewer in self._viewers:
            viewer.on_event(ev)

    def attach(self, running: "SearchPanel") -> None:
        """Show another panel's running search here (after a reload) and let this Stop stop it."""
        if self in running._viewers:
            return
        running._viewers.append(self)
        self.log = EventLog(running.log.run_id, running.log.params, running.log.dir)
        self.progress.max = running.progress.max
        for ev in running.log.events():
            self.on_event(ev)
        self.stop_event = running.stop_event
        self.store = running.store
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"attached to the running search {html.escape(str(running.log.run_id))}"

    def stop(self) -> None:
        self.stop_event.set()
        self.status.value = "stopping after the current step..."

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the running search to end; returns its RunStore (raises what it raised)."""
        self._idle.wait(timeout)
        if self.error is not None:
            raise self.error
        return self.store

    # -- events -------------------------------------------------------------------------------------------
    def on_event(self, ev: dict[str, Any]) -> None:
        self.log.add(ev)
        t = ev.get("type")
        if getattr(self, "count", None) is not None and self.count.update(ev) and not self._fixed_total:
            self.progress.max = max(1, self.count.total)
        if t == "verdict":
            verdicts = [v for v in self.log.events("verdict") if not report.unjudged(v)]  # a stop's: still pending
            judged = len(verdicts)
            self.progress.max = max(self.progress.max, judged)
            self.progress.value = judged
            correct = sum(1 for v in verdicts if v.get("status") == "correct")
            self.progress.description = f"{judged} judged"
            self.status.value = f"{correct}/{judged} correct; last {html.escape(ev['candidate'])}: {ev.get('status')}"
            self.table.value = self.table_html()
        elif t == "candidate":
            self.table.value = self.table_html()
        elif t == "round":
            traj = [t for t in report.trajectory(self.log) if t["round"] <= ev["round"]]
            best = traj[-1] if traj else {}
            sp = best.get("best_speedup_eager")
            self.status.value = (f"round {ev['round']}: best {best.get('best')} "
                                 + (f"{sp:.3f}x eager" if sp else "(no correct kernel)"))
            self.draw()
        elif t == "stopped":
            self.status.value = f"stopped: {html.escape(str(ev.get('reason')))}"
        elif t == "end":
            self.progress.value = len([v for v in self.log.events("verdict") if not report.unjudged(v)])
            self.progress.max = max(1, self.progress.value) if self.stop_event.is_set() else self.progress.max

    def table_html(self, n: int = TABLE_ROWS) -> str:
        rows = report.candidates(self.log)[-n:]
        head = "".join(f"<th>{h}</th>" for h in ("candidate", "round", "idea", "status", "ms", "x eager", "x compile"))

        def f(x: Any) -> str:
            return "-" if x is None else f"{x:.4g}"

        body = "".join(
            f"<tr><td>{html.escape(r['candidate'])}</td><td>{r['round']}</td>"
            f"<td>{html.escape(report.short(r['idea'], 50))}</td>"
            f"<td style='color:{CSS_COLOURS.get(r['status'], 'firebrick')}'>{r['status']}</td>"
            f"<td>{f(r['ms'])}</td><td>{f(r['speedup_eager'])}</td><td>{f(r['speedup_compile'])}</td></tr>"
            for r in rows)
        return (f"<style>.wb-candidates th, .wb-candidates td {{padding: 1px 10px; text-align: left}}</style>"
                f"<table class='wb-candidates'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def draw(self, running: bool | None = None) -> None:
        """Redraw the trajectory into the Output widget. Thread-safe: one assignment of the output list, no
        `with out:` context, and no display formatter (outside a kernel, asking for one would make an IPython
        shell in this thread). running: whether a search is still going (default: this panel's state)."""
        import base64

        plt = report._pyplot()
        # A log without an end event is a killed run to the report; here it may be one still running.
        state = "running" if (self.running() if running is None else running) else report.run_state(self.log)["state"]
        title = f"{report.problem_name(self.log)} ({self.log.run_id})" + ("" if state == "finished" else f" [{state}]")
        fig = report.plot_trajectory(self.log, title=title)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        self.out.outputs = ({"output_type": "display_data", "metadata": {},  # replace, not append: one figure
                             "data": {"image/png": base64.b64encode(buf.getvalue()).decode(),
                                      "text/plain": "<trajectory>"}},)

    def show(self) -> Any:
        from IPython.display import display

        display(self.widget)
        return self

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def watch(params: Any, run_id: str | None = None, runs_dir: str | Path | None = None, block: bool = True) -> Any:
    """Show a panel for these parameters and run the search with it; returns the RunStore (block) or the panel."""
    kw = {k: v for k, v in asdict(params).items() if k not in ("problem", "models", "rounds", "ideas", "impls",
                                                               "seeds", "target")}
    panel = SearchPanel(problem=params.problem, models=params.models, rounds=params.rounds, ideas=params.ideas,
                        impls=params.impls, seeds=params.seeds, target=params.target, run_id=run_id,
                        runs_dir=runs_dir, **kw)
    panel.show()
    panel.start(params, block=block)
    if block:
        if panel.error is not None:
            raise panel.error
        return panel.store
    return panel


def search_params(problem: str, target: str | None = None, **kw: Any) -> Any:
    """SearchParams from notebook literals: target None means cuda when available, else cpu."""
    from workbench.search import SearchParams

    if target is None:
        import torch

        target = "cuda" if torch.cuda.is_available() else "cpu"
    return SearchParams(problem=problem_spec(problem), target=target, **{k: v for k, v in kw.items() if v is not None or k in
                                                          ("max_candidates", "max_tokens", "max_wall_s", "base_url")})


def run(params: Any, run_id: str | None = None, runs_dir: str | Path | None = None, interactive: bool = False) -> Any:
    """Run a search to its end: with the panel when interactive, else with a text progress bar. Returns the RunStore."""
    if interactive:
        return watch(params, run_id=run_id, runs_dir=runs_dir, block=True)
    from tqdm.auto import tqdm

    from workbench.search import run_search

    count = CandidateCount(seed_count(params.problem, params.target), params.rounds, params.ideas, params.impls)
    bar = tqdm(total=count.total, desc=f"search {params.problem}", unit="cand")

    def on_event(ev: dict[str, Any]) -> None:
        if count.update(ev):
            bar.total = count.total
            bar.refresh()
        if ev["type"] == "verdict":
            bar.update(1)
            bar.set_postfix_str(f"{ev['candidate']} {ev['status']}")
        elif ev["type"] == "round":
            sp = ev.get("best_speedup_eager")
            bar.write(f"round {ev['round']}: best {ev.get('best')} " + (f"{sp:.3f}x eager" if sp else "(none correct)"))
        elif ev["type"] == "stopped":
            bar.write(f"stopped: {ev.get('reason')}")

    try:
        return run_search(params, run_id=run_id, runs_dir=runs_dir, on_event=on_event)
    finally:
        bar.close()
