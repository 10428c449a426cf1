"""The fault suite's table: one row per fault test (tests/faults/), printed at the end of
the session by `pytest_terminal_summary`.

A row travels in its test report's `user_properties`, which pytest-xdist forwards from
the workers to the controller with the report, so the table prints under `-n auto` too.
`tests/conftest.py` calls `print_table` as well: the xdist controller does not collect,
so it never loads this folder's conftest.py; a flag on the config prints the table once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

ROW_KEY = "fault_row"


@dataclass
class FaultRow:
    """What one fault test records: the test sets `injected` once the fault is in place
    and `lost` once it has counted the records (entries, rows, runs) the fault cost."""

    fault: str
    injected: bool = False
    lost: int | None = None
    handled: bool = False  # filled from the test's outcome: passed = handled as specified


def to_property(row: FaultRow, passed: bool) -> tuple[str, str]:
    row.handled = passed
    return ROW_KEY, json.dumps(asdict(row))


def collect(stats: dict) -> list[dict]:
    rows = {}
    for reports in stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", ()) or ():
                if key == ROW_KEY:
                    rows[report.nodeid] = json.loads(value)
    return [rows[nodeid] for nodeid in sorted(rows)]


def print_table(terminalreporter, config) -> None:
    if getattr(config, "_fault_table_printed", False):
        return
    config._fault_table_printed = True
    rows = collect(terminalreporter.stats)
    if not rows:
        return
    width = max(len(r["fault"]) for r in rows)
    terminalreporter.write_sep("=", "fault table (tests/faults)")
    terminalreporter.write_line(f"{'fault':<{width}}  injected  handled as specified  records lost")
    for r in rows:
        lost = "?" if r["lost"] is None else str(r["lost"])
        terminalreporter.write_line(f"{r['fault']:<{width}}  {'yes' if r['injected'] else 'no':<8}  "
                                    f"{'yes' if r['handled'] else 'NO':<20}  {lost}")
    handled = sum(r["handled"] for r in rows)
    lost = sum(r["lost"] or 0 for r in rows)
    terminalreporter.write_line(f"{len(rows)} faults, {sum(r['injected'] for r in rows)} injected, {handled} handled "
                                f"as specified, {lost} records lost")
