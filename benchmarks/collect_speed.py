"""Dataset collection speed: transitions per second written by ``symwm.world_models.collect.collect``.

For every registered environment: random-policy episodes written to HDF5 (gzip, checksums, the whole
file), without twins and with a few sampled group elements' transformed twins, stepping 1 and 2
environments (``n_envs``; 2 uses worker processes). Reacher runs the paper's 50 unrecorded warm-up
steps per episode (timed, not counted). Reported: recorded transitions per second, twin
transitions per second, and both together (a twin transition is a rendered ``g . s`` with its
``rho_A(g) a``; it needs no simulation step).

Prints one line per row; writes ``collect_speed.md`` and ``.csv`` to ``--out`` (default
``benchmarks/results``; with ``--quick``: ``runs/speed_quick``). Files are written to a temporary
folder and deleted.

    .venv/bin/python benchmarks/collect_speed.py            # 200 episodes x 10 steps per row
    .venv/bin/python benchmarks/collect_speed.py --quick    # smoke run: 3 episodes x 2 steps, n_envs 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from machine import cpu_model  # noqa: E402
from train_speed import fmt, selected, software_line, write_atomic, write_csv  # noqa: E402

#: env id -> unrecorded warm-up steps per episode (the paper's 50 for Reacher)
WARMUP = {"symwm/Reacher-v0": 50}
FIELDS = (
    "env", "n_envs", "twins", "episodes", "episode_length", "warmup_steps", "transitions", "twin_transitions",
    "seconds", "transitions_per_s", "twin_transitions_per_s", "all_transitions_per_s",
)


def time_collect(env_id: str, episodes: int, length: int, twins: int | None, n_envs: int, seed: int, folder: Path) -> dict[str, Any]:
    """Collect once into ``folder`` and time it (file deleted afterwards); a result row."""
    from symwm.world_models.collect import collect

    path = folder / f"{env_id.split('/')[-1]}_{n_envs}_{twins or 0}.h5"
    warmup = WARMUP.get(env_id, 0)
    start = time.perf_counter()
    collect(path, env_id, episodes, length, seed=seed, warmup_steps=warmup, twins=twins, n_envs=n_envs, progress=False)
    seconds = time.perf_counter() - start
    path.unlink(missing_ok=True)
    n = episodes * length
    n_twins = n * (twins or 0)
    return {
        "env": env_id, "n_envs": n_envs, "twins": twins or 0, "episodes": episodes, "episode_length": length,
        "warmup_steps": warmup, "transitions": n, "twin_transitions": n_twins, "seconds": round(seconds, 3),
        "transitions_per_s": round(n / seconds, 1), "twin_transitions_per_s": round(n_twins / seconds, 1),
        "all_transitions_per_s": round((n + n_twins) / seconds, 1),
    }


def line_of(row: dict[str, Any]) -> str:
    """The one-line form of a row."""
    return "collect_speed " + " ".join(f"{k}={fmt(row[k], 3 if k == 'seconds' else 1)}" for k in FIELDS)


def write_report(out: Path, rows: list[dict[str, Any]], args: argparse.Namespace) -> Path:
    """``collect_speed.md`` and ``.csv``; returns the markdown path."""
    write_csv(out / "collect_speed.csv", rows, FIELDS)
    lines = [
        "# Dataset collection speed",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `benchmarks/collect_speed.py` on {cpu_model()}; {software_line()}.",
        "",
        f"`symwm.world_models.collect.collect`: {args.episodes} random-policy episodes x {args.length} recorded steps per row,",
        "written to HDF5 (gzip 4, fletcher32) and fsynced; episode resets, unrecorded warm-up steps (Reacher: 50 per",
        "episode, the paper's) and twin rendering included in the time; one untimed 1-episode collection per",
        "environment first (imports, renderer caches). `n_envs = 2` steps two environments in",
        f"worker processes (start-up included). Twins: {args.twins} sampled group elements per episode (a twin",
        "transition is rendered from the transformed state; it costs no simulation step).",
        "",
        "| environment | n_envs | twins | transitions/s | twin transitions/s | all transitions/s | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['n_envs']} | {r['twins']} | {r['transitions_per_s']:,.0f} | {r['twin_transitions_per_s']:,.0f} | "
            f"{r['all_transitions_per_s']:,.0f} | {r['seconds']:.2f} |"
        )
    lines.append("")
    path = out / "collect_speed.md"
    write_atomic(path, "\n".join(lines))
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from symwm.envs import ENV_IDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="", help=f"comma-separated subset of {', '.join(ENV_IDS)}")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--length", type=int, default=10, help="recorded steps per episode")
    parser.add_argument("--twins", type=int, default=4, help="sampled group elements for the twin rows")
    parser.add_argument("--n-envs", default="1,2", help="comma-separated environment counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 episodes x 2 steps, 2 twins, n_envs 1")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results; --quick: runs/speed_quick)")
    args = parser.parse_args(argv)
    args.env_ids = tuple(ENV_IDS)
    if args.quick:
        args.episodes, args.length, args.twins, args.n_envs = 3, 2, 2, "1"
    if args.episodes < 1 or args.length < 1 or args.twins < 1:
        parser.error("--episodes, --length and --twins must be >= 1")
    try:
        args.n_envs_list = [int(n) for n in args.n_envs.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--n-envs must be comma-separated integers, got {args.n_envs!r}")
    if not args.n_envs_list or min(args.n_envs_list) < 1:
        parser.error("--n-envs needs positive integers")
    if args.out is None:
        args.out = str(ROOT / ("runs/speed_quick" if args.quick else "benchmarks/results"))
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; returns the rows."""
    args = parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="symwm_collect_speed_") as tmp:
        for env_id in selected(args.envs, args.env_ids, "env id(s)"):
            time_collect(env_id, 1, 1, 1, 1, args.seed, Path(tmp))  # untimed: imports, renderer caches
            for n_envs in args.n_envs_list:
                for twins in (None, args.twins):
                    row = time_collect(env_id, args.episodes, args.length, twins, n_envs, args.seed, Path(tmp))
                    rows.append(row)
                    print(line_of(row), flush=True)
    path = write_report(Path(args.out), rows, args)
    print(f"wrote {path} and {path.with_suffix('.csv').name}")
    return rows


if __name__ == "__main__":
    main()
