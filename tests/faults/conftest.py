"""The fault suite (issue 17, item 6): each test injects one fault at the smallest size
and asserts the specified outcome; each records a row of the table printed at the end
(fault_table.py): fault, injected, handled as specified (the test passed), records lost.

Files in collection order alternate between tests that need the session's base project
(test_concurrent_runs, test_killed_jobs, test_truncated_and_full_disk) and tests that do
not (test_data_faults, test_fault_units), so under `-n 2 --dist loadfile` one worker
builds the base while the other runs the in-process faults."""

from __future__ import annotations

import os

import pytest

from .fault_table import FaultRow, print_table, to_property


@pytest.fixture
def fault(request) -> FaultRow:
    marker = request.node.get_closest_marker("fault")
    assert marker is not None, "a fault test names its fault: @pytest.mark.fault('...')"
    return FaultRow(marker.args[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("fault")
    if marker is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
        return
    row = item.funcargs.get("fault") if hasattr(item, "funcargs") else None
    report.user_properties.append(to_property(row if isinstance(row, FaultRow) else FaultRow(marker.args[0]),
                                              report.passed))


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    """The tiny project with every job run once (read-only: tests work on copies)."""
    from ._support import shared_base

    return shared_base(tmp_path_factory, os.environ.get("PYTEST_XDIST_WORKER"))


def pytest_terminal_summary(terminalreporter, config):
    print_table(terminalreporter, config)
