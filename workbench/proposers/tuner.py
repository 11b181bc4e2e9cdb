"""The offline proposer: no network, no key. It searches the joint space of the problem's seed
variants (which seed file) and each variant's marked tunables (`#define X 256  // tune: 128, 256`
or `X = 4  # tune: 1, 2, 4`) with one Optuna study per search (TPE, seeded), fed back the judge's
verdicts. Every idea is one untried point of that space, described against the current best; an
idea's further implementations are other untried points of the same variant. Sources already
evaluated, and points a learned build constraint rules out, are never proposed again; the tuner
proposes until the space is exhausted (the search's budget stops it otherwise).

Optuna is imported only when the tuner first plans, so `import workbench` does not need it.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from workbench.proposers.proposal import Context, Idea, Implementation

_C_TUNE = re.compile(r"^(?P<pre>[ \t]*#define[ \t]+(?P<name>\w+)[ \t]+)(?P<value>[^\s/]+)(?P<post>[ \t]*//[ \t]*tune:[ \t]*(?P<opts>[^\n]*))$", re.M)
_PY_TUNE = re.compile(r"^(?P<pre>(?P<name>[A-Za-z_]\w*)[ \t]*=[ \t]*)(?P<value>[^\s#]+)(?P<post>[ \t]*#[ \t]*tune:[ \t]*(?P<opts>[^\n]*))$", re.M)

# Spaces up to this many points are listed exactly: the untried count subtracts every point a
# constraint rules out, and a source hash seen elsewhere (a resumed run) maps back to its point.
ENUMERATE_LIMIT = 20_000
# Draws from the sampler that may land on a closed point before one untried point is picked at random.
MAX_REDRAWS = 6


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass
class Tunable:
    name: str
    value: str
    options: list[str]


def tunables(source: str) -> dict[str, Tunable]:
    """The marked tunables of a kernel file, by name (first definition wins)."""
    found: dict[str, Tunable] = {}
    for rx in (_C_TUNE, _PY_TUNE):
        for m in rx.finditer(source):
            opts = [o.strip() for o in m.group("opts").split(",") if o.strip()]
            if m.group("name") not in found and opts:
                found[m.group("name")] = Tunable(m.group("name"), m.group("value"), opts)
    return found


def apply(source: str, assign: dict[str, str]) -> str:
    """Rewrite the values of marked tunables; only marked lines change."""
    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        return f"{m.group('pre')}{assign[name]}{m.group('post')}" if name in assign else m.group(0)

    return _PY_TUNE.sub(sub, _C_TUNE.sub(sub, source))


# -- the space ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One point of the joint space: a seed variant and a value for each of its tunables."""
    variant: str
    values: tuple[tuple[str, str], ...]

    @property
    def assign(self) -> dict[str, str]:
        return dict(self.values)


@dataclass
class Variant:
    name: str
    source: str
    params: dict[str, list[str]]  # tunable -> its distinct listed values, in file order

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.params.values())


class Space:
    """Every seed variant with every combination of its tunables' listed values."""

    def __init__(self, seed_paths: list[Path]):
        self.variants: dict[str, Variant] = {}
        for path in seed_paths:
            src = path.read_text()
            params = {n: list(dict.fromkeys(t.options)) for n, t in tunables(src).items()}
            self.variants[path.stem] = Variant(path.stem, src, params)
        self.size = sum(v.size for v in self.variants.values())

    def point(self, variant: str, assign: dict[str, str]) -> Point:
        return Point(variant, tuple((n, str(assign[n])) for n in self.variants[variant].params))

    def source(self, p: Point) -> str:
        return apply(self.variants[p.variant].source, p.assign)

    def locate(self, source: str) -> Point | None:
        """The point whose source this is, or None (a kernel outside the space)."""
        marks = tunables(source)
        for v in self.variants.values():
            if set(marks) != set(v.params) or any(marks[n].value not in opts for n, opts in v.params.items()):
                continue
            p = self.point(v.name, {n: marks[n].value for n in v.params})
            if self.source(p) == source:
                return p
        return None

    def points(self, variant: str | None = None) -> Iterator[Point]:
        for v in self.variants.values():
            if variant is None or v.name == variant:
                for values in itertools.product(*v.params.values()):
                    yield Point(v.name, tuple(zip(v.params, values)))

    def random_point(self, rng: random.Random, variant: str | None = None) -> Point:
        names = [variant] if variant else list(self.variants)
        v = self.variants[rng.choices(names, weights=[self.variants[n].size for n in names])[0]]
        return Point(v.name, tuple((n, rng.choice(opts)) for n, opts in v.params.items()))


# -- constraints learned from build errors -------------------------------------------------------

@dataclass(frozen=True)
class Constraint:
    """Points of `variant` holding all these values fail to build (a static_assert or #error)."""
    variant: str
    values: tuple[tuple[str, str], ...]
    message: str

    def rules_out(self, p: Point) -> bool:
        return p.variant == self.variant and all(p.assign.get(n) == v for n, v in self.values)


_ASSERT_MESSAGES = (
    re.compile(r'static assertion failed with "(?P<msg>[^"\n]*)"'),  # nvcc
    re.compile(r"static assertion failed(?: due to requirement [^:\n]*)?: (?P<msg>[^\n]*)"),  # gcc, clang
    re.compile(r'static_assert failed(?: due to requirement [^"\n]*)? "(?P<msg>[^"\n]*)"'),  # older clang
    re.compile(r"#error(?: directive:)? (?P<msg>[^\n]*)"),  # the preprocessor, any compiler
)
_DEFINE = re.compile(r"^[ \t]*#define[ \t]+(\w+)[ \t]+([^\n]*?)(?:[ \t]*//[^\n]*)?$", re.M)
_CONSTEXPR = re.compile(r"\bconstexpr\s+[\w:<> ]+?\s(\w+)\s*=\s*([^;]+);")
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


def failed_asserts(build_log: str) -> list[str]:
    """The messages of the static_asserts and #errors a build log reports, in order, once each."""
    msgs = [m.group("msg").strip().strip('"').strip() for rx in _ASSERT_MESSAGES for m in rx.finditer(build_log)]
    return list(dict.fromkeys(msgs))


def _condition(source: str, msg: str) -> str | None:
    """The condition of the static_assert (or the #if around the #error) that carries `msg`."""
    m = re.search(r"static_assert\s*\((?P<cond>(?:[^;])*?),\s*\"" + re.escape(msg) + r"\"\s*\)", source)
    if m:
        return m.group("cond")
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*#\s*error\b", line) and msg in line:
            for back in range(i - 1, -1, -1):
                cond = re.match(r"\s*#\s*(?:el)?if(?:n?def)?\b(.*)", lines[back])
                if cond:
                    return cond.group(1)
    return None


def _tunables_reached(expr: str, source: str, names: set[str]) -> set[str]:
    """The tunables an expression depends on, through the #defines and constexprs of the source."""
    defs: dict[str, str] = {}
    for rx in (_DEFINE, _CONSTEXPR):
        for m in rx.finditer(source):
            defs.setdefault(m.group(1), m.group(2))
    found, todo, seen = set(), list(_IDENT.findall(expr)), set()
    while todo:
        ident = todo.pop()
        if ident in seen:
            continue
        seen.add(ident)
        if ident in names:
            found.add(ident)
        elif ident in defs:
            todo.extend(_IDENT.findall(defs[ident]))
    return found


def learn_constraints(p: Point, source: str, build_log: str) -> list[Constraint]:
    """What a failed build rules out: for each failing assert, the values of the tunables its
    condition depends on; else the tunables its message names; else the exact assignment."""
    out = []
    for msg in failed_asserts(build_log):
        cond = _condition(source, msg)
        names = _tunables_reached(cond, source, set(p.assign)) if cond else set()
        if not names:
            names = set(_IDENT.findall(msg)) & set(p.assign)
        keep = tuple((n, v) for n, v in p.values if n in names) if names else p.values
        out.append(Constraint(p.variant, keep, msg))
    return out


# -- the proposer -------------------------------------------------------------------------------------

class Tuner:
    """ideas(ctx, k) / implement(ctx, idea, parent, m) for the search; observe() takes verdicts back.

    budget: the candidates the search may judge (sets how many random startup trials TPE takes).
    sampler: "tpe" (default) or "random". pruner: None (default: the judge's screening stage is the
    only halving) or "sha" (Optuna's SuccessiveHalvingPruner answers promote() from screen timings).
    """
    name = "tuner"
    offline = True

    def __init__(self, seed: int = 0, budget: int | None = None, sampler: str = "tpe", pruner: str | None = None):
        if sampler not in ("tpe", "random"):
            raise ValueError(f"unknown tuner sampler {sampler!r} (tpe or random)")
        if pruner not in (None, "sha"):
            raise ValueError(f"unknown tuner pruner {pruner!r} (None or 'sha')")
        self.seed, self.budget, self.sampler_name, self.pruner_name = seed, budget, sampler, pruner
        self.space: Space | None = None
        self.study: Any = None
        self.constraints: list[Constraint] = []
        self.closed: set[Point] = set()  # proposed, evaluated, or ruled out by a constraint
        self.trials: dict[Point, Any] = {}  # the study's trial of each point this tuner asked or was told
        self.told: set[Point] = set()
        self.observed: set[str] = set()  # candidate ids already observed (observe is idempotent)
        self._hash_index: dict[str, Point] | None = None
        self._synced: set[str] = set()
        self._backlog: list[tuple[str, str, dict[str, Any]]] = []  # verdicts observed before the first plan
        self._rng = random.Random(hashlib.sha256(repr(("tuner", seed)).encode()).digest())
        self._lock = threading.RLock()

    # -- the study --------------------------------------------------------------------------------------
    def _ensure(self, ctx: Context) -> Space:
        if self.space is not None:
            return self.space
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = Space(ctx.problem.seeds())
        if self.sampler_name == "random":
            sampler = optuna.samplers.RandomSampler(seed=self.seed)
        else:
            # A fifth of the budget (4..10) spent on random startup trials, then the model; the
            # constant liar keeps the points of one round apart; group handles per-variant tunables.
            startup = 10 if self.budget is None else max(4, min(10, self.budget // 5))
            with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=startup, multivariate=True,
                                                     group=True, constant_liar=True)
        pruner = optuna.pruners.SuccessiveHalvingPruner() if self.pruner_name == "sha" else optuna.pruners.NopPruner()
        self.study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        backlog, self._backlog = self._backlog, []
        for args in backlog:
            self.observe(*args)
        return self.space

    def _suggest(self, trial: Any) -> Point:
        assert self.space is not None
        variant = trial.suggest_categorical("variant", list(self.space.variants))
        params = self.space.variants[variant].params
        return self.space.point(variant, {n: trial.suggest_categorical(f"{variant}.{n}", opts)
                                          for n, opts in params.items()})

    def _params(self, p: Point) -> tuple[dict[str, str], dict[str, Any]]:
        from optuna.distributions import CategoricalDistribution

        assert self.space is not None
        params = {"variant": p.variant, **{f"{p.variant}.{n}": v for n, v in p.values}}
        dists = {"variant": CategoricalDistribution(list(self.space.variants)),
                 **{f"{p.variant}.{n}": CategoricalDistribution(opts)
                    for n, opts in self.space.variants[p.variant].params.items()}}
        return params, dists

    def _is_closed(self, p: Point) -> bool:
        return p in self.closed or any(c.rules_out(p) for c in self.constraints)

    def remaining(self) -> int:
        """Untried points not ruled out (exact up to ENUMERATE_LIMIT points; beyond, an upper bound)."""
        if self.space is None:
            return -1
        return self.space.size - len(self.closed)

    def _untried(self, ctx: Context, variant: str | None) -> Point | None:
        """One open point picked at random (the fallback when the sampler keeps landing on closed ones)."""
        assert self.space is not None
        if self.space.size <= ENUMERATE_LIMIT:
            open_ = [p for p in self.space.points(variant) if not self._is_closed(p)
                     and source_hash(self.space.source(p)) not in ctx.tried]
            return self._rng.choice(open_) if open_ else None
        for _ in range(1000):
            p = self.space.random_point(self._rng, variant)
            if not self._is_closed(p) and source_hash(self.space.source(p)) not in ctx.tried:
                return p
        return None

    def _ban(self, c: Constraint) -> None:
        self.constraints.append(c)
        assert self.space is not None
        if self.space.size <= ENUMERATE_LIMIT:
            self.closed.update(q for q in self.space.points(c.variant) if c.rules_out(q))

    def _ask(self, ctx: Context, variant: str | None = None, fixed: Point | None = None) -> Point | None:
        """A new trial at an open point (of `variant` when it has one open), registered as pending."""
        from optuna.trial import TrialState

        assert self.space is not None and self.study is not None
        if fixed is None and self.space.size <= ENUMERATE_LIMIT:
            if self.remaining() <= 0:
                return None
            if variant is not None and all(self._is_closed(p) for p in self.space.points(variant)):
                variant = None  # that variant is used up: any other will do
        if fixed is not None:
            self.study.enqueue_trial(self._params(fixed)[0])
        for attempt in range(MAX_REDRAWS + 1):
            if attempt == MAX_REDRAWS:  # the sampler keeps returning closed points: pick an open one
                pick = self._untried(ctx, variant) or (self._untried(ctx, None) if variant else None)
                if pick is None:
                    return None
                self.study.enqueue_trial(self._params(pick)[0])
            elif variant is not None and fixed is None:
                self.study.enqueue_trial({"variant": variant})
            trial = self.study.ask()
            p = self._suggest(trial)
            if fixed is not None and p == fixed:
                self.trials[p] = trial
                self.closed.add(p)
                return p
            if not self._is_closed(p) and source_hash(self.space.source(p)) not in ctx.tried:
                self.trials[p] = trial
                self.closed.add(p)
                return p
            # A closed point drawn again: a failed trial, which TPE ignores (it learns nothing new).
            trial.set_user_attr("redraw", True)
            self.study.tell(trial, state=TrialState.FAIL)
            fixed = None
        return None

    def _sync(self, ctx: Context) -> None:
        """Close every point the search already evaluated, and learn what ctx can tell when the
        search does not call observe(): the best kernels' times."""
        assert self.space is not None
        new = ctx.tried - self._synced
        if new and self.space.size <= ENUMERATE_LIMIT:
            if self._hash_index is None:
                self._hash_index = {source_hash(self.space.source(p)): p for p in self.space.points()}
            for h in new:
                if h in self._hash_index:
                    self.closed.add(self._hash_index[h])
        self._synced |= new
        if self.observed:
            return  # the search reports verdicts; nothing to guess
        best = {b["source"]: b.get("ms") for b in ctx.best}
        for src, ms in best.items():
            p = self.space.locate(src)
            if p is not None and ms:
                self._tell(p, ms, {"status": "correct", "from": "ctx.best"})
        for p, trial in list(self.trials.items()):  # judged in an earlier round, not among the best
            if p not in self.told and trial.user_attrs.get("round", ctx.round) < ctx.round \
                    and source_hash(self.space.source(p)) in ctx.tried:
                self._tell(p, None, {"status": "judged, not among the best", "from": "ctx.tried"})

    def _tell(self, p: Point, ms: float | None, attrs: dict[str, Any]) -> None:
        """Record a verdict in the study: its time as the value, or a pruned trial (failed)."""
        import optuna
        from optuna.trial import TrialState

        if p in self.told:
            return
        self.told.add(p)
        self.closed.add(p)
        state = TrialState.COMPLETE if ms else TrialState.PRUNED
        trial = self.trials.get(p)
        if trial is None:  # evaluated without this tuner asking (a seed, a resumed run): add it
            params, dists = self._params(p)
            self.study.add_trial(optuna.trial.create_trial(state=state, value=ms if ms else None, params=params,
                                                           distributions=dists, user_attrs=attrs))
            return
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        self.study.tell(trial, ms if ms else None, state=state)

    # -- the search's interface ----------------------------------------------------------------------
    def ideas(self, ctx: Context, k: int) -> list[Idea]:
        with self._lock:
            space = self._ensure(ctx)
            self._sync(ctx)
            best = next((p for b in ctx.best if (p := space.locate(b["source"]))), None)
            best_id = next((b["id"] for b in ctx.best if space.locate(b["source"]) == best), None) if best else None
            out = []
            for _ in range(k):
                p = self._ask(ctx)
                if p is None:
                    break
                self.trials[p].set_user_attr("round", ctx.round)
                out.append(Idea(describe(p, best), self.name,
                                {"kind": "point", "variant": p.variant, "assign": p.assign, "seed": best_id}))
            return out

    def implement(self, ctx: Context, idea: Idea, seed: dict[str, Any] | None, index: int) -> Implementation:
        with self._lock:
            space = self._ensure(ctx)
            variant = idea.data.get("variant")
            if idea.data.get("kind") != "point" or variant not in space.variants:
                return Implementation(None, self.name, error=f"not a point of this problem's space: {idea.data}")
            if index == 0:
                p = space.point(variant, idea.data["assign"])
                if p not in self.trials and p not in self.told:  # an idea an earlier process recorded
                    self._ask(ctx, fixed=p)
                return Implementation(space.source(p), self.name)
            self._sync(ctx)
            q = self._ask(ctx, variant=variant)
            if q is None:
                return Implementation(None, self.name, error=f"the space is exhausted ({space.size} points, "
                                                               f"all tried or ruled out)")
            self.trials[q].set_user_attr("round", ctx.round)
            return Implementation(space.source(q), self.name)

    def observe(self, candidate_id: str, source: str, record: dict[str, Any]) -> None:
        """A verdict of the search (its verdict_record). Correct, or screened out with a short timing:
        a completed trial with its ms; anything else a pruned trial; a static_assert or #error
        build failure also rules out every point sharing the offending values. Idempotent."""
        with self._lock:
            if self.space is None:  # a resumed search replays its log before the tuner first plans
                self._backlog.append((candidate_id, source, record))
                return
            if candidate_id in self.observed:
                return
            self.observed.add(candidate_id)
            p = self.space.locate(source)
            if p is None:
                return  # a kernel outside the space (a model's, a repair)
            status, ms = record.get("status"), record.get("ms")
            timed = bool(ms) and (status == "correct" or record.get("stage") == "screen")
            if status == "build_error":
                for c in learn_constraints(p, source, record.get("build_log") or ""):
                    if c not in self.constraints:
                        self._ban(c)
            self._tell(p, ms if timed else None, {"candidate": candidate_id, "status": status,
                                                  "stage": record.get("stage", "full")})

    def promote(self, source: str, screen_ms: float) -> bool:
        """With pruner="sha": whether a screened candidate goes on to the full protocol, by Optuna's
        successive halving over the screen times of all trials so far. Without a pruner: always."""
        with self._lock:
            if self.pruner_name is None or self.space is None:
                return True
            p = self.space.locate(source)
            trial = self.trials.get(p) if p else None
            if trial is None or p in self.told:
                return True
            trial.report(screen_ms, step=1)
            return not trial.should_prune()

    def repair(self, ctx: Context, source: str, failure: str, report: str) -> Implementation:
        return Implementation(None, self.name, error="the tuner does not repair kernels")


def describe(p: Point, best: Point | None) -> str:
    """What a point changes relative to the current best, e.g. 'cluster_registers: THREADS 256 -> 512'."""
    if best is not None and best.variant == p.variant:
        old = best.assign
        moves = [f"{n} {old[n]} -> {v}" for n, v in p.values if old.get(n) != v]
        return f"{p.variant}: " + (", ".join(moves) or "the best point again")
    values = ", ".join(f"{n} {v}" for n, v in p.values) or "as written"
    return f"{p.variant} (switch from {best.variant}): {values}" if best else f"{p.variant}: {values}"
