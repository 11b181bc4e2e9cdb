"""An ipywidgets control panel for a search: pick a problem and parameters, Start, watch, Stop.

Start runs `Search(...).run()` in a background thread; its events come to `on_event`, which
updates the progress bar, the table of latest candidates and (each round) the trajectory.
Stop sets a threading.Event that the search reads between steps (a clean stop: the run can
be resumed later with the same run id). `on_event` may be called directly, e.g. with the
events of a finished run, which is how the tests drive it without a kernel.
"""
from __future__ import annotations

import html
import io
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from workbench import report

TABLE_ROWS = 12
CSS_COLOURS = {"correct": "green", "pending": "gray", "failed": "gray", "build_error": "darkorange"}


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

        from workbench.problem import list_problems

        choices = list_problems()
        if problem and problem not in choices:
            choices = [problem, *choices]
        if target is None:
            import torch

            target = "cuda" if torch.cuda.is_available() else "cpu"
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
        self._fixed_total = total
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.store: Any = None
        self.error: BaseException | None = None
        self.log = EventLog()
        self.widget = w.VBox([
            w.HBox([self.problem, self.models, self.target]),
            w.HBox([self.rounds, self.ideas, self.impls, self.seeds]),
            w.HBox([self.start_button, self.stop_button, self.progress, self.status]),
            self.table, self.out])

    # -- parameters ------------------------------------------------------------------------------------
    def params(self) -> Any:
        from workbench.search import SearchParams

        models = [m.strip() for m in self.models.value.split(",") if m.strip()] or ["tuner"]
        return SearchParams(problem=self.problem.value, models=models, rounds=self.rounds.value,
                            ideas=self.ideas.value, impls=self.impls.value, seeds=self.seeds.value,
                            target=self.target.value, **self.search_kwargs)

    def expected_total(self, params: Any) -> int:
        try:
            from workbench.problem import load_problem

            n_seeds = len(load_problem(params.problem).seeds())
        except Exception:
            n_seeds = 0
        return n_seeds + params.rounds * params.ideas * params.impls

    def reset(self, params: Any = None, run_id: str | None = None, run_dir: Path | None = None) -> None:
        self.log = EventLog(run_id or "live", asdict(params) if params is not None else {}, run_dir)
        if params is not None and not self._fixed_total:
            self.progress.max = max(1, self.expected_total(params))
        self.progress.value = 0
        self.progress.description = "0 judged"
        self.table.value = ""
        self.out.clear_output()

    # -- running ----------------------------------------------------------------------------------------
    def start(self, params: Any = None, block: bool = False) -> None:
        """Start the search in a background thread (or in this one with block=True)."""
        if self.thread is not None and self.thread.is_alive():
            return
        from workbench.search import Search

        params = params or self.params()
        self.stop_event.clear()
        self.error = None
        self.reset(params)
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"starting {html.escape(str(params.problem))}..."

        def work() -> None:
            try:
                search = Search(params, run_id=self.run_id, runs_dir=self.runs_dir, on_event=self.on_event,
                                should_stop=self.stop_event.is_set)
                self.store = search.store
                self.log.run_id, self.log.dir = search.store.run_id, search.store.dir
                search.run()
                self.status.value = (f"stopped: run {self.store.run_id}" if self.stop_event.is_set()
                                     else f"done: run {self.store.run_id}")
            except BaseException as e:  # shown in the panel, not lost in a thread
                self.error = e
                self.status.value = f"<b style='color:red'>error: {html.escape(repr(e))[:400]}</b>"
            finally:
                self.start_button.disabled, self.stop_button.disabled = False, True
                self.draw()

        if block:
            work()
        else:
            self.thread = threading.Thread(target=work, name="workbench-search", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.status.value = "stopping after the current step..."

    def wait(self, timeout: float | None = None) -> Any:
        if self.thread is not None:
            self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.store

    # -- events -------------------------------------------------------------------------------------------
    def on_event(self, ev: dict[str, Any]) -> None:
        self.log.add(ev)
        t = ev.get("type")
        if t == "verdict":
            judged = len(self.log.events("verdict"))
            self.progress.max = max(self.progress.max, judged)
            self.progress.value = judged
            correct = sum(1 for v in self.log.events("verdict") if v.get("status") == "correct")
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
            self.progress.value = len(self.log.events("verdict"))
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
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def draw(self) -> None:
        """Redraw the trajectory into the Output widget (thread-safe: no `with out:` context)."""
        from IPython.display import Image

        plt = report._pyplot()
        fig = report.plot_trajectory(self.log)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        self.out.outputs = ()  # replace, not append: one figure at a time
        self.out.append_display_data(Image(data=buf.getvalue(), format="png"))

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
    return SearchParams(problem=problem, target=target, **{k: v for k, v in kw.items() if v is not None or k in
                                                          ("max_candidates", "max_tokens", "max_wall_s", "base_url")})


def run(params: Any, run_id: str | None = None, runs_dir: str | Path | None = None, interactive: bool = False) -> Any:
    """Run a search to its end: with the panel when interactive, else with a text progress bar. Returns the RunStore."""
    if interactive:
        return watch(params, run_id=run_id, runs_dir=runs_dir, block=True)
    from tqdm.auto import tqdm

    from workbench.problem import load_problem
    from workbench.search import run_search

    bar = tqdm(total=len(load_problem(params.problem).seeds()) + params.rounds * params.ideas * params.impls,
               desc=f"search {params.problem}", unit="cand")

    def on_event(ev: dict[str, Any]) -> None:
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
