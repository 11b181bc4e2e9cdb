"""Find the extensions a candidate builds, without running it: `python -m workbench.prebuild FILE`.

Runs the candidate's module-level code (where load_inline calls live) in a confined,
throwaway process whose build cache is read-only. Each load_inline call whose build is not in
the cache is recorded and stops the import; the judge's process then compiles what was
recorded (workbench.pool), so the worker that evaluates the candidate later finds every
extension built, and no candidate's code ever writes the cache. Prints one JSON line:
{"specs": [...]} or {"error": ..., "detail": ...}.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback


class _Captured(Exception):
    """Stops the candidate's import at the first extension the cache does not hold."""


def main(path: str) -> None:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the candidate's prints must not corrupt our one line
    from workbench import build

    specs: list[dict] = []

    def capture(spec: build.BuildSpec) -> build.BuildResult:
        found = build.cached(spec)
        if found is not None:
            return found
        specs.append(build.spec_to_json(spec))
        raise _Captured

    result: dict = {}
    build.BUILDER = capture
    try:
        spec = importlib.util.spec_from_file_location(f"prebuild_{os.getpid()}", path)
        assert spec is not None and spec.loader is not None
        with build.patched_load_inline():
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except _Captured:
        pass
    except BaseException as e:  # noqa: BLE001 - anything a candidate raises at import
        result["error"] = "error"
        result["detail"] = "".join(traceback.format_exception(e))[-4000:]
    result["specs"] = specs
    out.write(json.dumps(result) + "\n")
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
