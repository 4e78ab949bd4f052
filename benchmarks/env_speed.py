"""Environment speed on one core: steps per second with rendering, for every environment.

Also times the Cubes3D renderer beside a matplotlib-voxel rendering of the same states (the way
the authors drew 3D Blocks). Prints one line per configuration and writes
``benchmarks/results/env_speed.md``.

    .venv/bin/python benchmarks/env_speed.py            # full run, about a minute
    .venv/bin/python benchmarks/env_speed.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import symwm  # noqa: E402,F401
from symwm.envs.cubes_renderer import CubesRenderer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402
from matplotlib_voxels import render_voxels_matplotlib  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "env_speed.md"

#: (label, env id, kwargs, target steps/s or None)
CONFIGS = [
    ("Shapes2D", "symwm/Shapes2D-v0", {}, None),
    ("Cubes3D", "symwm/Cubes3D-v0", {}, 2000),
    ("RushHour", "symwm/RushHour-v0", {}, None),
    ("Reacher 64x64 oblique", "symwm/Reacher-v0", {}, 1000),
    ("Reacher 64x64 top", "symwm/Reacher-v0", {"camera": "top"}, 1000),
    ("Reacher 128x128 oblique", "symwm/Reacher-v0", {"resolution": 128}, None),
    ("RotatingObject small", "symwm/RotatingObject-v0", {"actions": "small"}, 500),
    ("RotatingObject continuous", "symwm/RotatingObject-v0", {"actions": "continuous"}, 500),
]


def steps_per_second(env_id: str, kwargs: dict, seconds: float) -> float:
    """Random-policy env steps per second, rendering and episode resets included."""
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    for a in actions[:50]:  # warm-up
        env.step(a)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions[:200]:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        n += 200
    return n / (time.perf_counter() - start)


def cubes_render_speed(seconds: float, n_matplotlib: int) -> tuple[float, float]:
    """Frames per second of our Cubes3D renderer and of matplotlib voxels on the same states."""
    env = gym.make("symwm/Cubes3D-v0").unwrapped
    states = []
    for seed in range(max(n_matplotlib, 20)):
        env.reset(seed=seed)
        states.append(env.get_state()["positions"])
    renderer = CubesRenderer(grid_size=5, resolution=50)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for cells in states:
            renderer.render(cells)
        n += len(states)
    ours = n / (time.perf_counter() - start)
    render_voxels_matplotlib(states[0])  # warm-up (font cache, imports)
    start = time.perf_counter()
    for cells in states[:n_matplotlib]:
        render_voxels_matplotlib(cells)
    theirs = n_matplotlib / (time.perf_counter() - start)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, do not write results")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per configuration")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else args.seconds

    rows = []
    for label, env_id, kwargs, target in CONFIGS:
        sps = steps_per_second(env_id, kwargs, seconds)
        verdict = "" if target is None else ("met" if sps >= target else "MISSED")
        rows.append((label, f"{sps:,.0f}", f">= {target:,}" if target else "", verdict))
        print(f"{label:28s} {sps:10,.0f} steps/s  {verdict}", flush=True)

    ours, theirs = cubes_render_speed(seconds, 5 if args.quick else 30)
    ratio = ours / theirs
    print(f"{'Cubes3D renderer':28s} {ours:10,.0f} frames/s")
    print(f"{'matplotlib voxels':28s} {theirs:10,.1f} frames/s   ratio {ratio:,.0f}x (target >= 100x)")
    if args.quick:
        return

    cpu = cpu_model()
    lines = [
        "# Environment speed",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `benchmarks/env_speed.py` on one core of {cpu}",
        f"(Python {platform.python_version()}, numpy {np.__version__}). Random policy, rendering included,",
        "episode resets included.",
        "",
        "| environment | steps/s | target | |",
        "|---|---|---|---|",
        *[f"| {label} | {sps} | {target} | {verdict} |" for label, sps, target, verdict in rows],
        "",
        "## Cubes3D renderer against matplotlib voxels (the authors' way)",
        "",
        "| renderer | frames/s (50x50, 5 cubes) |",
        "|---|---|",
        f"| symwm `CubesRenderer` (numpy, precomputed sprites) | {ours:,.0f} |",
        f"| matplotlib `ax.voxels`, new figure per frame | {theirs:,.1f} |",
        f"| ratio | {ratio:,.0f}x (target >= 100x: {'met' if ratio >= 100 else 'MISSED'}) |",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, RESULTS)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
