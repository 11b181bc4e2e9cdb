"""Prints the KernelBench GPU run's tables and checks the re-judge against the expected verdicts.

python benchmarks/kernelbench_gpu.py SUITE_DIR REJUDGE_DIR EXPECTED_JSON
(written by benchmarks/kernelbench_gpu.sh). Exit 1 when a must-have verdict differs or a run is missing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def check(rows: list[dict], expected: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(failures of must-have expectations, other differences), one line each."""
    got = {(r["candidate"], r.get("policy_asked") or r.get("policy")): r for r in rows}
    fails, diffs = [], []
    for cand, exp in expected.items():
        for policy in ("strict", "partial"):
            r = got.get((cand, policy))
            outcome = None if r is None else ("correct" if r.get("correct") else "not_correct")
            if outcome == exp[policy]:
                continue
            line = (f"{cand} ({policy}): expected {exp[policy]}, got "
                    + ("no verdict" if r is None else f"{r['status']} [{r.get('policy')}] {(r.get('reason') or '')[:160]}"))
            (fails if exp.get("must") else diffs).append(line)
    return fails, diffs


def main(argv: list[str]) -> int:
    suite_dir, rejudge_dir, expected_path = map(Path, argv)
    expected = json.loads(expected_path.read_text())["candidates"]
    ok = True
    if (suite_dir / "report.md").is_file():
        print((suite_dir / "report.md").read_text())
    else:
        print(f"no suite report in {suite_dir}")
        ok = False
    md = rejudge_dir / "rejudge.md"
    if not md.is_file():
        print(f"no re-judge report in {rejudge_dir}")
        return 1
    print(md.read_text())  # the fast_p table, then the per-candidate table
    fails, diffs = check(json.loads((rejudge_dir / "rejudge.json").read_text())["rows"], expected)
    for line in diffs:
        print(f"DIFFERS (not fatal)  {line}")
    for line in fails:
        print(f"FAILED  {line}")
    n = 2 * len(expected)
    print(f"expected verdicts: {n - len(fails) - len(diffs)} of {n} as expected, {len(fails)} must-have failures")
    return 0 if ok and not fails else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
