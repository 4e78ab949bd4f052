"""The process runner shared by the demo and the paper tables: phases in order, a cap on parallel tasks, failures named."""

import sys

import pytest

from symwm.runner import Phase, Task, run_tasks


def py(code: str) -> Phase:
    return Phase(lambda: [sys.executable, "-c", code])


def test_phases_run_in_order_with_their_threads_and_the_log_collects_their_output(tmp_path):
    log = tmp_path / "a.log"
    first = Phase(lambda: [sys.executable, "-c", "import os; print('one', os.environ['OMP_NUM_THREADS'])"], threads=3, note="phase one")
    second = py("print('two')")
    notes, done = [], []
    failed = run_tasks([Task("a", [first, second], log)], parallel=1, on_done=lambda t, q: done.append((t.name, q)), log=notes.append)
    assert failed == [] and done == [("a", 0)]
    assert log.read_text().split() == ["one", "3", "two"]
    assert notes == ["a: phase one"]


def test_argv_is_built_when_the_phase_starts(tmp_path):
    """A later phase sees what the earlier one left (the demo resumes from the first call's checkpoint)."""
    marker = tmp_path / "marker"
    seen = []

    def second() -> list[str]:
        seen.append(marker.exists())
        return [sys.executable, "-c", "pass"]

    run_tasks([Task("t", [py(f"open({str(marker)!r}, 'w').close()"), Phase(second)], tmp_path / "t.log")], parallel=1)
    assert seen == [True]


def test_parallel_caps_the_running_tasks_and_failures_are_named(tmp_path):
    stamp = "import time, sys; open(sys.argv[1], 'a').write(f'{time.time()} '); time.sleep(0.5); open(sys.argv[1], 'a').write(f'{time.time()}\\n')"
    tasks = [Task(f"t{i}", [Phase(lambda i=i: [sys.executable, "-c", stamp, str(tmp_path / f"t{i}.txt")])], tmp_path / f"t{i}.log")
             for i in range(3)]
    tasks.append(Task("bad", [py("raise SystemExit(3)"), py("print('never')")], tmp_path / "bad.log"))
    statuses = []
    failed = run_tasks(tasks, parallel=2, on_status=lambda running: statuses.append(len(running)), status_every=0.0, log=lambda m: None)
    assert failed == ["bad"] and "never" not in (tmp_path / "bad.log").read_text()
    spans = sorted(tuple(map(float, (tmp_path / f"t{i}.txt").read_text().split())) for i in range(3))
    assert max(statuses) <= 2
    assert spans[2][0] >= min(spans[0][1], spans[1][1]) - 0.05  # the third started only once one of the first two ended
    with pytest.raises(SystemExit, match="bad failed \\(exit 3\\); see .*bad.log"):
        run_tasks([Task("bad", [py("raise SystemExit(3)")], tmp_path / "bad.log")], parallel=1, fail_fast=True)
    with pytest.raises(ValueError, match="parallel must be >= 1"):
        run_tasks([], parallel=0)
