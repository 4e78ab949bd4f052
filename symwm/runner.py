"""Experiments as processes side by side: the loop that the demo's trainings and the paper tables' runs share.

A :class:`Task` is a sequence of :class:`Phase` s, each one process (``python -m symwm.cli train ...``,
``python paper_tables.py --job ...``) with its own thread count; :func:`run_tasks` keeps up to
``parallel`` tasks running, starts a task's next phase as soon as the previous one exits, appends
every process's output to the task's log, and reports progress and failures.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

#: seconds between checks for finished processes (a finished phase is followed at once)
POLL = 0.2


@dataclass
class Phase:
    """One process of a task."""

    argv: Callable[[], list[str]]
    """the command line, built when the phase starts (it may resume what the phase before saved)"""
    threads: int = 1
    """OMP / MKL threads of the process"""
    note: str = ""
    """what the phase does, logged when it starts"""


@dataclass
class Task:
    """Phases run one after another, their output appended to ``log``."""

    name: str
    phases: list[Phase]
    log: Path
    started: float = field(default=0.0, init=False)
    """``time.perf_counter()`` when its first phase started"""


def run_tasks(
    tasks: list[Task],
    parallel: int,
    *,
    on_done: Callable[[Task, int], None] | None = None,
    on_status: Callable[[list[Task]], None] | None = None,
    status_every: float = 15.0,
    fail_fast: bool = False,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Run ``tasks``, up to ``parallel`` at a time; returns the names of those that failed (their last phase's exit code != 0).

    ``on_done(task, queued)``: after a task's last phase succeeded, with the number still waiting;
    ``on_status(running)``: every ``status_every`` seconds and whenever a phase ends; ``fail_fast``:
    raise ``SystemExit`` naming the task and its log at the first failure instead of going on.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    waiting = [t for t in tasks if t.phases]
    running: dict[str, tuple[Task, subprocess.Popen, list[Phase]]] = {}
    failed: list[str] = []

    def start(task: Task, phases: list[Phase]) -> None:
        phase = phases.pop(0)
        argv = phase.argv()
        task.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(phase.threads), "MKL_NUM_THREADS": str(phase.threads)}
        with open(task.log, "a") as out:  # the child keeps its own handle
            running[task.name] = (task, subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env), phases)
        if phase.note:
            log(f"{task.name}: {phase.note}")

    last_status = time.monotonic()
    while waiting or running:
        while waiting and len(running) < parallel:
            task = waiting.pop(0)
            task.started = time.perf_counter()
            start(task, list(task.phases))
        time.sleep(POLL)
        ended = [name for name, (_, proc, _) in running.items() if proc.poll() is not None]
        if on_status is not None and (ended or time.monotonic() - last_status >= status_every):
            last_status = time.monotonic()
            on_status([task for task, _, _ in running.values()])
        for name in ended:
            task, proc, rest = running.pop(name)
            if proc.returncode:
                if fail_fast:
                    raise SystemExit(f"{name} failed (exit {proc.returncode}); see {task.log}")
                failed.append(name)
                log(f"FAILED {name} (exit {proc.returncode}); see {task.log}")
            elif rest:
                start(task, rest)
            elif on_done is not None:
                on_done(task, len(waiting))
    return failed
