"""Goal reaching with a paper table's trained runs, on every seed: success per seed beside the table's metrics.

``planning.py`` trains one small model per continuous task; here CEM and MPPI plan with the runs a
table script trained (``<runs>/<variant>/seed<k>/best.pt``, as ``paper_tables.py`` lays them out),
so planning success is reported for every seed of every variant, next to the run's own evaluation
(``eval.json``: Hits@1, Hard Hits@1, pose error). The task is the runs' environment with the
checkpoint's ``env_kwargs`` (it must be a goal task: ``SymmetricEnv.goal_observation``). Planner
settings, goals (reset seeds 40000..) and budget are ``planning.py``'s.

    .venv/bin/python benchmarks/planning_runs.py --runs runs/bench/cpu/runs/rotation-continuous-stabiliser --seeds 0 1 2

Writes ``<out>/<name>.md`` and ``<out>/<name>.csv`` (one row per episode); ``--out`` defaults to
``benchmarks/results/planning_runs`` and ``--name`` to the runs directory's name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planning import QUICK, Settings, continuous_agents, fmt, grid_agents, log, machine  # noqa: E402
from train_speed import write_atomic, write_csv  # noqa: E402

import symwm  # noqa: F401,E402
from symwm.agents.evaluate_planning import EpisodeResult, evaluate  # noqa: E402
from symwm.world_models.checkpoint import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: columns of a run's eval.json shown beside its planning success, when present
RUN_METRICS = (("hits@1", "Hits@1 %"), ("hard_hits@1", "Hard Hits@1 %"), ("pose_error_deg", "pose error deg"))


def find_runs(runs: Path, variants: list[str] | None, seeds: list[int]) -> dict[tuple[str, int], Path]:
    """``(variant, seed) -> best.pt`` under ``runs``; a missing checkpoint is an error naming it."""
    if not runs.is_dir():
        raise SystemExit(f"runs directory {runs} does not exist (expected <runs>/<variant>/seed<k>/best.pt)")
    # by default the variants with a first-seed run; family variants sit one level down ("planar/ours"): name them
    names = variants or sorted(p.name for p in runs.iterdir() if (p / f"seed{seeds[0]}").is_dir())
    found, missing = {}, []
    for v in names:
        for seed in seeds:
            path = runs / v / f"seed{seed}" / "best.pt"
            if path.exists():
                found[(v, seed)] = path
            else:
                missing.append(str(path))
    if missing:
        raise SystemExit("missing checkpoint(s): " + ", ".join(missing))
    if not found:
        raise SystemExit(f"no runs under {runs} (expected <runs>/<variant>/seed<k>/best.pt)")
    return found


def task_of(models: dict[tuple[str, int], Any]) -> tuple[str, dict[str, Any]]:
    """The environment every run was trained on (they must agree)."""
    tasks = {(m.spec.env_id, json.dumps(m.spec.env_kwargs, sort_keys=True)) for m in models.values()}
    if len(tasks) != 1:
        raise SystemExit(f"the runs were trained on different environments: {sorted(tasks)}")
    env_id, kwargs = tasks.pop()
    return env_id, json.loads(kwargs)


def run_metrics(ckpt: Path) -> dict[str, float]:
    """The run's own evaluation (its ``eval.json`` beside the checkpoint), empty if there is none."""
    path = ckpt.parent / "eval.json"
    return json.loads(path.read_text()).get("metrics", {}) if path.exists() else {}


def report(rows: list[EpisodeResult], runs: dict[tuple[str, int], Path], seeds: list[int], header: list[str]) -> list[str]:
    """Per planner and variant: success on each seed, mean ± std (n - 1) and the worst seed; the runs' metrics."""
    def success(agent: str, task: str) -> float:
        rs = [r for r in rows if r.agent == agent and r.task == task]
        return 100.0 * np.mean([r.success for r in rs]) if rs else float("nan")

    lines = header + ["| agent | " + " | ".join(f"seed {s} success %" for s in seeds) + " | mean ± std | worst | final distance | ms/decision |",
                      "|---" * (len(seeds) + 5) + "|"]
    for agent in dict.fromkeys(r.agent for r in rows):
        rs = [r for r in rows if r.agent == agent]
        if rs[0].task == "shared":  # random and simulator: the same goals once, no seed
            cells, summary = ["-"] * len(seeds), [f"{success(agent, 'shared'):.0f}", "-"]
        else:
            per_seed = [success(agent, f"seed{s}") for s in seeds]
            std = np.std(per_seed, ddof=1) if len(per_seed) > 1 else 0.0
            cells, summary = [f"{x:.0f}" for x in per_seed], [f"{np.mean(per_seed):.1f} ± {std:.1f}", f"{min(per_seed):.0f}"]
        lines.append(f"| {agent} | " + " | ".join(cells + summary) + f" | {np.mean([r.final_distance for r in rs]):.3f} | "
                     f"{fmt(float(np.nanmean([r.ms_per_decision for r in rs])))} |")
    metrics = {key: run_metrics(path) for key, path in runs.items()}
    shown = [(k, label) for k, label in RUN_METRICS if any(k in m for m in metrics.values())]
    if shown:
        lines += ["", "The runs' own evaluation (their `eval.json`), per seed:", "",
                  "| variant | " + " | ".join(f"{label}, seed {s}" for k, label in shown for s in seeds) + " |",
                  "|---" * (1 + len(shown) * len(seeds)) + "|"]
        for v in dict.fromkeys(v for v, _ in runs):
            lines.append(f"| {v} | " + " | ".join(fmt(metrics[(v, s)].get(k, float("nan"))) for k, _ in shown for s in seeds) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Plan with every run, write the report and the per-episode CSV."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="a table setting's run directory: <runs>/<variant>/seed<k>/best.pt")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds (default: 0 1 2)")
    p.add_argument("--variants", nargs="+", default=None, help="variants (default: every one with the first seed)")
    p.add_argument("--episodes", type=int, default=None, help="goals per agent (default: planning.py's, 20)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "planning_runs"), help="output directory")
    p.add_argument("--name", default=None, help="report name (default: the runs directory's name)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--quick", action="store_true", help="planning.py's smoke-run planner budgets")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else Settings()
    episodes = args.episodes or s.cont_episodes
    runs_dir = Path(args.runs)
    runs = find_runs(runs_dir, args.variants, args.seeds)
    models = {key: load_model(path) for key, path in runs.items()}
    env_id, env_kwargs = task_of(models)
    # planning.py's step budgets; other goal tasks: their registered time limit
    budget = {"symwm/RotatingObject-v0": s.rotation_budget, "symwm/Reacher-v0": s.reacher_budget}.get(env_id) or gym.spec(env_id).max_episode_steps
    make_env = lambda: gym.make(env_id, **env_kwargs)  # noqa: E731
    goals = range(s.continuous_seed, s.continuous_seed + episodes)
    start = time.perf_counter()

    # discrete actions (the rotating object's small ones): planning.py's beam search; continuous: CEM and MPPI
    probe = make_env()
    discrete = isinstance(probe.action_space, gym.spaces.Discrete)
    probe.close()
    agents_of = (lambda m: grid_agents(m, s, "beam")) if discrete else (lambda m: continuous_agents(m, s))  # noqa: E731
    baselines = agents_of({})  # random and the simulator planners: no model
    rows = evaluate(make_env, baselines, seeds=goals, budget=budget, task="shared", progress=log)
    for seed in args.seeds:
        per_seed = {v: m for (v, sd), m in models.items() if sd == seed}
        agents = {k: f for k, f in agents_of(per_seed).items() if k not in baselines}
        rows += evaluate(make_env, agents, seeds=goals, budget=budget, task=f"seed{seed}", progress=log)

    name = args.name or runs_dir.name
    out = Path(args.out)
    h, n, e, it = s.cem
    mh, mn, mit = s.mppi
    header = [
        f"# Planning with the runs of `{runs_dir.name}`, every seed", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/planning_runs.py{' --quick' if args.quick else ''}` "
        f"on {machine()}.", "",
        f"Task: `gym.make('{env_id}', **{env_kwargs})`, the environment the runs were trained on, as a goal task (goal image "
        f"from `goal_observation()`); {episodes} goals (reset seeds {goals.start}..{goals.stop - 1}), the same for every agent; "
        f"budget {budget} steps. Models: `{runs_dir}/<variant>/seed<k>/best.pt`. Planners as in `planning.py`: "
        + (f"beam search (width {s.beam[0]}, depth {s.beam[1]}, tie tolerance {s.tie_tolerance}; the actions are discrete)" if discrete else
           f"CEM (horizon {h}, population {n}, elites {e}, {it} iterations) and MPPI (horizon {mh}, {mn} samples, {mit} iterations)")
        + ", cost = the distance to the goal at the best step of a sequence (model: energy to the goal latent; simulator: the task "
        "distance). Random and the simulator planners do not depend on a run: one row each.", "",
    ]
    lines = report(rows, runs, args.seeds, header)
    lines += ["", f"Wall time {(time.perf_counter() - start) / 60:.1f} min.", ""]
    write_atomic(out / f"{name}.md", "\n".join(lines))
    write_csv(out / f"{name}.csv", [r.to_dict() for r in rows], tuple(rows[0].to_dict()))
    log(f"wrote {out / name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
