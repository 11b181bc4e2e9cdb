"""Build a candidate's extensions without running it: `python -m workbench.prebuild FILE`.

Runs the candidate's module-level code (where load_inline calls live) in a throwaway process
with the cached builder patched in, so the worker that evaluates it later finds every
extension built. Prints one JSON line: the builds, or the error.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback


def main(path: str) -> None:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the candidate's prints must not corrupt our one line
    from workbench import build

    result: dict = {}
    try:
        spec = importlib.util.spec_from_file_location(f"prebuild_{os.getpid()}", path)
        assert spec is not None and spec.loader is not None
        with build.patched_load_inline():
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except build.BuildError as e:
        result["error"] = "build_error"
        result["log"] = e.result.log[-20000:]
    except BaseException as e:  # noqa: BLE001 - anything a candidate raises at import
        result["error"] = "error"
        result["detail"] = "".join(traceback.format_exception(e))[-4000:]
    result["builds"] = [b.summary() for b in build.BUILDS]
    out.write(json.dumps(result) + "\n")
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
