"""Fold the records of ``tests/support/reliability.py`` into ``docs/reliability.md``.

Run after the suite (``make reliability``): every class of fault and input the tests tried,
with the count tried and the count that held, summed over the processes that ran them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.support.reliability import OUTPUT_DIR

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"

HEADER = """# Reliability: what was tried and what held

Written by `make reliability` from the records the test suite itself leaves (see
`tests/support/reliability.py`): each row is a class of hostile input, dirty data or fault
that a test exercised, how many cases it tried in that run, and how many held. A test
records a class only after its assertions passed, so a row is a claim a test checked.
Counts depend on the hypothesis profile (`DIFFMIG_HYPOTHESIS_PROFILE=big` tries more).
"""


def load(directory: Path = OUTPUT_DIR) -> list[dict]:
    rows = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def render(rows: list[dict], origin: str = "") -> str:
    merged: dict[tuple[str, str], dict] = {}
    tests: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        key = (row["area"], row["case"])
        entry = merged.setdefault(key, {"tried": 0, "held": 0, "outcome": row["outcome"]})
        entry["tried"] += row["tried"]
        entry["held"] += row["held"]
        tests[key].add(row["test"].split("::")[0])
    lines = [HEADER + (f"\n{origin}\n" if origin else "")]
    for area in sorted({area for area, _ in merged}):
        lines += [
            f"\n## {area}\n",
            "| case | tried | held | what holding means | tests |",
            "|---|---|---|---|---|",
        ]
        for (row_area, case), entry in sorted(merged.items()):
            if row_area != area:
                continue
            where = ", ".join(f"`{t}`" for t in sorted(tests[(row_area, case)]))
            lines.append(
                f"| {case} | {entry['tried']} | {entry['held']} | {entry['outcome']} | {where} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    rows = load()
    if not rows:
        print(f"no records under {OUTPUT_DIR}: run the test suite first", file=sys.stderr)
        return 1
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=OUTPUT_DIR.parents[1],
        check=False,
    ).stdout.strip()
    newest = max(row.get("at", "") for row in rows)
    DOC.write_text(
        render(rows, origin=f"This copy: the `make test` run of commit `{commit}`, {newest}."),
        encoding="utf-8",
    )
    print(f"{DOC}: {len(rows)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
