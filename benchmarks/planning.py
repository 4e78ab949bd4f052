"""Planning benchmark: goal reaching with the learned models against a random policy and the true simulator.

1. Grid world (Cubes3D, the demo's models trained WITHOUT "left"): goals 1..6 moves away; random,
   beam search on the simulator (upper bound), on `ours` and on `none`; plus an exhaustive BFS run.
   Goals are split by whether they need "left" (some object ends left of where it starts: with
   up/right/down only no column ever decreases, so no left-free solution exists).
2. Reacher (random goals) and the rotating object (continuous rotations): small `ours` models are
   collected and trained here on CPU; CEM and MPPI on the model and on the simulator, and random.
3. Planning latency per decision for every planner and dynamics.

Writes ``planning.md``, ``planning.csv`` (summary), ``planning_episodes.csv`` and ``planning.png``
to ``--out`` (default ``benchmarks/results``; ``--quick``: ``runs/planning_quick``).

    .venv/bin/python benchmarks/planning.py            # full run: ~16 min on 2 shared cores, + ~15 min training
    .venv/bin/python benchmarks/planning.py --quick    # smoke run, under a minute

Trained continuous-task models are kept in ``--work`` and reused by later runs with the same settings.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

import symwm  # noqa: F401
from symwm.agents.evaluate_planning import EpisodeResult, evaluate, grid_budget, summarise
from symwm.agents.goals import reset_goal_task
from symwm.agents.planning import RandomAgent, make_agent
from symwm.world_models.checkpoint import load_model

ROOT = Path(__file__).resolve().parent.parent
GRID_ENV = "symwm/Cubes3D-v0"


@dataclass
class Settings:
    """What one benchmark run measures (full defaults; ``--quick`` shrinks them)."""

    grid_episodes: int = 50
    distances: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    beam: tuple[int, int] = (16, 4)  # width, depth
    tie_tolerance: float = 0.02
    bfs_episodes: int = 10
    ablation_episodes: int = 15
    bfs_depth: int = 3
    cont_episodes: int = 20
    reacher_budget: int = 50
    rotation_budget: int = 30
    cem: tuple[int, int, int, int] = (6, 200, 20, 4)  # horizon, population, elites, iterations
    mppi: tuple[int, int, int] = (6, 200, 3)  # horizon, samples, iterations
    continuous_cost: str = "min"  # distance at the best step of the horizon (as the discrete planners)
    continuous_seed: int = 40_000  # first reset seed of the continuous tasks (settings were tried on 10000..10007)
    reacher_data: tuple[int, int, int] = (1000, 10, 10)  # episodes, steps, warm-up steps
    rotation_data: tuple[int, int] = (1000, 10)  # episodes, steps
    train_epochs: int = 12
    train_batch: int = 256
    latency_decisions: int = 20
    check_episodes: int = 40


QUICK = Settings(
    grid_episodes=3, distances=(1, 2), bfs_episodes=1, ablation_episodes=1, bfs_depth=2, cont_episodes=2, reacher_budget=8, rotation_budget=6,
    cem=(5, 32, 4, 2), mppi=(5, 32, 2), reacher_data=(40, 10, 5), rotation_data=(40, 10), train_epochs=1, train_batch=64,
    latency_decisions=3, check_episodes=3,
)


def log(msg: str) -> None:
    """Timestamped progress line."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> str:
    """CPU model, cores and library versions."""
    cpu = cpu_model()
    load = "load average at start %.2f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else "load unknown"
    return (f"{cpu}, {os.cpu_count()} logical cores (shared with other jobs; {load}), torch {torch.__version__} with "
            f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}, numpy {np.__version__}")


# -------------------------------------------------------------------------------------------------
# Models
# -------------------------------------------------------------------------------------------------


def demo_models(demo_dir: Path, quick: bool, work: Path) -> tuple[dict[str, Any], str]:
    """The demo's `ours` and `none` (trained without "left"); runs the demo pipeline when missing."""
    paths = {v: demo_dir / v / "best.pt" for v in ("ours", "none")}
    if all(p.exists() for p in paths.values()):
        return {v: load_model(p) for v, p in paths.items()}, f"reused `{demo_dir}/{{ours,none}}/best.pt` (made by `make demo`)"
    from symwm.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=str(work / "demo")) if not quick else DemoConfig(
        out=str(work / "demo"), train_episodes=100, eval_episodes=50, epochs=1, twins=2)
    log(f"demo checkpoints missing: running the demo pipeline into {cfg.out}")
    run_demo(cfg)
    paths = {v: Path(cfg.out) / v / "best.pt" for v in ("ours", "none")}
    return {v: load_model(p) for v, p in paths.items()}, f"trained by `symwm.demo.run_demo` into `{cfg.out}` ({cfg})"


def train_small(env_id: str, env_kwargs: dict, work: Path, episodes: int, steps: int, warmup: int,
                epochs: int, batch: int, seed: int = 0, variant: str = "ours") -> tuple[Any, dict[str, Any]]:
    """Collect random-policy data and train a `cpu`-size model (reused when already done)."""
    from symwm.world_models.collect import collect
    from symwm.world_models.model import ModelSpec
    from symwm.world_models.train import TrainConfig, train

    work.mkdir(parents=True, exist_ok=True)
    record = work / "benchmark_training.json"
    wanted = {"env_id": env_id, "env_kwargs": env_kwargs, "episodes": episodes, "steps": steps, "warmup": warmup,
              "epochs": epochs, "batch": batch, "seed": seed, "variant": variant, "size": "cpu", "lr": 1e-3}
    if record.exists():
        done = json.loads(record.read_text())
        if done.get("settings") == wanted and (work / "best.pt").exists():
            log(f"reusing {work / 'best.pt'}")
            return load_model(work / "best.pt"), {**done, "reused": True}
    t0 = time.perf_counter()
    data = collect(work / "train.h5", env_id, episodes, steps, seed=seed + 1, env_kwargs=env_kwargs,
                   warmup_steps=warmup, progress=False)
    t_data = time.perf_counter() - t0
    spec = ModelSpec(env_id=env_id, variant=variant, size="cpu", env_kwargs=env_kwargs)
    cfg = TrainConfig(dataset=str(data), out_dir=str(work), epochs=epochs, batch_size=batch, lr=1e-3, seed=seed,
                      progress=False, tensorboard=False, overwrite=True)  # settings changed: replace the old run
    log(f"training {variant} for {env_id} {env_kwargs}: {episodes} episodes x {steps} steps, {epochs} epochs")
    result = train(spec, cfg)
    done = {"settings": wanted, "data_seconds": t_data, "train_seconds": time.perf_counter() - t0 - t_data,
            "final_loss": result.history[-1]["loss"] if result.history else math.nan,
            "first_loss": result.history[0]["loss"] if result.history else math.nan,
            "best_epoch": min(range(len(result.history)), key=lambda i: result.history[i]["loss"]) + 1 if result.history else 0}
    record.write_text(json.dumps(done, indent=2))
    return load_model(result.best), done


# -------------------------------------------------------------------------------------------------
# Runs
# -------------------------------------------------------------------------------------------------


def grid_agents(models: dict[str, Any], s: Settings, method: str = "beam") -> dict[str, Callable[[gym.Env], Any]]:
    """Factories: random, the simulator (upper bound), ours, none."""
    if method == "beam":
        kw = {"width": s.beam[0], "depth": s.beam[1], "tie_tolerance": s.tie_tolerance}
    else:
        kw = {"depth": s.bfs_depth, "tie_tolerance": s.tie_tolerance}
    out: dict[str, Callable[[gym.Env], Any]] = {}
    if method == "beam":
        out["random"] = lambda env: RandomAgent(env, seed=0)
    out[f"simulator {method}"] = lambda env: make_agent(env, method, **kw)
    for v, m in models.items():
        out[f"{v} {method}"] = lambda env, m=m: make_agent(env, method, model=m, **kw)
    return out


def without_no_op_skip(factory: Callable[[gym.Env], Any]) -> Callable[[gym.Env], Any]:
    """The same agent factory with the observed-no-op skip switched off (ablation)."""

    def make(env: gym.Env) -> Any:
        agent = factory(env)
        agent.avoid_no_ops = False
        return agent

    return make


def run_grid(models: dict[str, Any], s: Settings, method: str, episodes: int, ablation: bool = False) -> list[EpisodeResult]:
    """Every agent on ``episodes`` goals per distance (seeds 10000 + i, shared by all agents)."""
    agents = grid_agents(models, s, method)
    if ablation:
        agents = {f"{name}, no no-op skip": without_no_op_skip(f) for name, f in agents.items() if name.split()[0] in models}
    rows: list[EpisodeResult] = []
    for k in s.distances:
        rows += evaluate(lambda k=k: gym.make(GRID_ENV, goal_moves=k), agents, seeds=range(10_000, 10_000 + episodes),
                         budget=grid_budget(k), task=f"Cubes3D {method}{' ablation' if ablation else ''}", progress=log)
    return rows


def continuous_agents(models: dict[str, Any], s: Settings) -> dict[str, Callable[[gym.Env], Any]]:
    """Factories: random, CEM and MPPI on the simulator and on each model."""
    h, n, e, it = s.cem
    mh, mn, mit = s.mppi
    cem = {"horizon": h, "population": n, "elites": e, "iterations": it, "cost": s.continuous_cost}
    mppi = {"horizon": mh, "samples": mn, "iterations": mit, "cost": s.continuous_cost}
    out: dict[str, Callable[[gym.Env], Any]] = {
        "random": lambda env: RandomAgent(env, seed=0),
        "simulator cem": lambda env: make_agent(env, "cem", **cem),
        "simulator mppi": lambda env: make_agent(env, "mppi", **mppi),
    }
    for v, m in models.items():
        out[f"{v} cem"] = lambda env, m=m: make_agent(env, "cem", model=m, **cem)
        out[f"{v} mppi"] = lambda env, m=m: make_agent(env, "mppi", model=m, **mppi)
    return out


@torch.no_grad()
def prediction_check(model: Any, make_env: Callable[[], gym.Env], horizon: int = 10, episodes: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Mean energy of the h-step latent prediction to the encoded true observation, and of the start to it (h = 1..horizon).

    Random actions from reset states (as at the start of a planning episode); the second curve is
    how far the true state moved in latent terms, the scale prediction errors must stay below.
    """
    from symwm.world_models.model import energy

    env = make_env()
    err, moved = np.zeros((episodes, horizon)), np.zeros((episodes, horizon))
    for i in range(episodes):
        obs, _ = env.reset(seed=30_000 + i)
        env.action_space.seed(i)
        actions = [env.action_space.sample() for _ in range(horizon)]
        frames = [obs] + [env.step(a)[0] for a in actions]
        z = model.encode(torch.from_numpy(np.stack(frames)))  # [h+1, K, D]
        zp = z[:1]
        for t, a in enumerate(actions):
            zp = model.predict(zp, torch.as_tensor(np.asarray(a))[None])
            err[i, t] = float(energy(zp, z[t + 1 : t + 2]))
            moved[i, t] = float(energy(z[:1], z[t + 1 : t + 2]))
    return err.mean(0), moved.mean(0)


def latency(agent_factory: Callable[[gym.Env], Any], make_env: Callable[[], gym.Env], decisions: int) -> float:
    """Median milliseconds per decision over ``decisions`` fresh goal episodes (first decision each)."""
    env = make_env()
    agent = agent_factory(env)
    for i in range(decisions):
        obs, goal_obs, _ = reset_goal_task(env, 20_000 + i)
        agent.reset()
        agent.act(obs, goal_obs)
    return float(np.median(agent.latencies_ms))


# -------------------------------------------------------------------------------------------------
# Report
# -------------------------------------------------------------------------------------------------


def fmt(x: float, digits: int = 1) -> str:
    """A number for a table (``-`` for NaN)."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def grid_table(rows: list[EpisodeResult], distances: tuple[int, ...]) -> list[str]:
    """Success % (mean steps to success) per agent and goal distance."""
    summary = {(r["agent"], r["goal_moves"]): r for r in summarise(rows, by=("agent", "goal_moves"))}
    agents = list(dict.fromkeys(r.agent for r in rows))
    head = "| agent | " + " | ".join(f"k = {k}" for k in distances) + " | ms/decision |"
    lines = [head, "|---|" + "---|" * (len(distances) + 1)]
    for a in agents:
        cells = []
        for k in distances:
            r = summary.get((a, k))
            cells.append("-" if r is None else f"{r['success_%']:.0f} ({fmt(r['steps_to_success'])})")
        ms = np.nanmean([r.ms_per_decision for r in rows if r.agent == a])
        lines.append(f"| {a} | " + " | ".join(cells) + f" | {fmt(ms)} |")
    return lines


def left_table(rows: list[EpisodeResult]) -> list[str]:
    """Success on goals that need "left" vs goals that do not, per agent (all distances pooled)."""
    lines = ["| agent | needs left: success % (n) | left-free: success % (n) | left moves per episode (needs-left goals) |",
             "|---|---|---|---|"]
    for a in dict.fromkeys(r.agent for r in rows):
        cells = []
        for flag in (True, False):
            rs = [r for r in rows if r.agent == a and r.needs_left is flag]
            cells.append(f"{100 * np.mean([r.success for r in rs]):.0f} ({len(rs)})" if rs else "-")
        rs = [r for r in rows if r.agent == a and r.needs_left]
        cells.append(fmt(float(np.mean([r.left_actions for r in rs])), 2) if rs else "-")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines


def left_by_distance(rows: list[EpisodeResult], distances: tuple[int, ...]) -> list[str]:
    """Success % on needs-left goals per distance (n in brackets)."""
    lines = ["| agent | " + " | ".join(f"k = {k}" for k in distances) + " |", "|---|" + "---|" * len(distances)]
    for a in dict.fromkeys(r.agent for r in rows):
        cells = []
        for k in distances:
            rs = [r for r in rows if r.agent == a and r.goal_moves == k and r.needs_left]
            cells.append(f"{100 * np.mean([r.success for r in rs]):.0f} ({len(rs)})" if rs else "-")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines


def continuous_table(rows: list[EpisodeResult]) -> list[str]:
    """Success %, mean steps to success, mean final distance and ms/decision per agent."""
    lines = ["| agent | success % (n) | steps to success | final distance | ms/decision |", "|---|---|---|---|---|"]
    for r in summarise(rows, by=("agent",)):
        rs = [x for x in rows if x.agent == r["agent"]]
        lines.append(f"| {r['agent']} | {r['success_%']:.0f} ({r['episodes']}) | {fmt(r['steps_to_success'])} | "
                     f"{np.mean([x.final_distance for x in rs]):.3f} | {fmt(r['ms_per_decision'])} |")
    return lines


def plot(path: Path, grid_rows: list[EpisodeResult], cont: dict[str, list[EpisodeResult]], distances: tuple[int, ...]) -> None:
    """Success vs goal distance per agent; needs-left vs left-free; continuous tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_panels = 2 + bool(cont)
    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 4.0))
    ax = axes[0]
    styles = {"random": ("o", ":"), "simulator": ("s", "--"), "ours": ("^", "-"), "none": ("v", "-")}
    for a in dict.fromkeys(r.agent for r in grid_rows):
        ys = [100 * np.mean([r.success for r in grid_rows if r.agent == a and r.goal_moves == k] or [np.nan]) for k in distances]
        marker, line = styles.get(a.split()[0], ("o", "-"))
        ax.plot(distances, ys, marker=marker, linestyle=line, label=a)
    ax.set(xlabel="goal distance k (goal_moves)", ylabel="success %", ylim=(-3, 103), title="Cubes3D, models trained without 'left'")
    ax.legend(fontsize=8)
    ax = axes[1]
    agents = list(dict.fromkeys(r.agent for r in grid_rows))
    x = np.arange(len(agents))
    for j, (flag, label) in enumerate([(True, "goal needs 'left'"), (False, "left-free goal")]):
        ys = [100 * np.mean([r.success for r in grid_rows if r.agent == a and r.needs_left is flag] or [np.nan]) for a in agents]
        ax.bar(x + (j - 0.5) * 0.38, ys, width=0.38, label=label)
    ax.set_xticks(x, agents, rotation=20, fontsize=8)
    ax.set(ylabel="success %", ylim=(0, 105), title="all distances pooled")
    ax.legend(fontsize=8)
    if cont:
        ax = axes[2]
        names = list(cont)
        agents = list(dict.fromkeys(r.agent for rows in cont.values() for r in rows))
        x = np.arange(len(agents))
        for j, name in enumerate(names):
            ys = [100 * np.mean([r.success for r in cont[name] if r.agent == a] or [np.nan]) for a in agents]
            ax.bar(x + (j - (len(names) - 1) / 2) * 0.8 / len(names), ys, width=0.8 / len(names), label=name)
        ax.set_xticks(x, agents, rotation=20, fontsize=8)
        ax.set(ylabel="success %", ylim=(0, 105), title="continuous actions")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csvs(out: Path, rows: list[EpisodeResult]) -> None:
    """planning_episodes.csv (one row per episode) and planning.csv (summary per task, agent, distance)."""
    fields = list(rows[0].to_dict())
    with open(out / "planning_episodes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(r.to_dict() for r in rows)
    summary = summarise(rows)
    with open(out / "planning.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)


# -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny budgets")
    parser.add_argument("--out", default=None, help="output directory (default: benchmarks/results; quick: runs/planning_quick)")
    parser.add_argument("--work", default=None, help="models and data (default: runs/planning_bench; quick: runs/planning_quick/work)")
    parser.add_argument("--demo-dir", default=str(ROOT / "runs" / "demo"), help="the demo's run directory")
    parser.add_argument("--skip", action="append", default=[], choices=["grid", "bfs", "ablation", "reacher", "rotation"], help="parts to skip")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else Settings()
    out = Path(args.out or (ROOT / ("runs/planning_quick" if args.quick else "benchmarks/results")))
    work = Path(args.work or (ROOT / ("runs/planning_quick/work" if args.quick else "runs/planning_bench")))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    all_rows: list[EpisodeResult] = []
    lines = ["# Planning: goal reaching with learned world models", ""]
    lines += [f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/planning.py{' --quick' if args.quick else ''}` on {machine()}.",
              "Every agent of a table sees the same goals (same reset seeds). Latencies are wall-clock milliseconds per",
              "decision (encode the observation and the goal, search, return the first action), on the CPU.", ""]
    timings: dict[str, float] = {}
    latency_rows: list[tuple[str, str, float]] = []
    grid_rows: list[EpisodeResult] = []
    cont: dict[str, list[EpisodeResult]] = {}
    not_measured: list[str] = []

    if "grid" not in args.skip:
        t0 = time.perf_counter()
        models, how = demo_models(Path(args.demo_dir), args.quick, work)
        grid_rows = run_grid(models, s, "beam", s.grid_episodes)
        all_rows += grid_rows
        timings["grid (beam)"] = time.perf_counter() - t0
        w, d = s.beam
        lines += [
            "## Grid world: Cubes3D goals 1 to 6 moves away, models trained without 'left'",
            "",
            f"Models: the demo's `ours` and `none` (`cpu` size, trained on 1000 random episodes without the 'left' "
            f"action); {how}. Goals: `gym.make('{GRID_ENV}', goal_moves=k)` (k random effective moves, so at most k "
            f"moves away), {s.grid_episodes} goals per distance (reset seeds 10000..{10_000 + s.grid_episodes - 1}), "
            f"step budget 2k + 4. Planner: beam search, width {w}, depth {d}, all {w} x 20 expansions of a level in one "
            f"batched model call; score = distance to the goal at the best step of a sequence, ties (within "
            f"{s.tie_tolerance} energy) to the shorter sequence; receding horizon (first action, then re-plan). The "
            "simulator planner uses the same search on the true dynamics with the total Manhattan distance of the objects "
            "to their goal cells (0 exactly at the goal). Latent planners skip, as first action, actions they have seen "
            "leave the very same observation unchanged (a model can believe a blocked move works).",
            "",
            "Success % (mean steps to success) per goal distance:",
            "",
            *grid_table(grid_rows, s.distances),
            "",
            "Mean optimal solution length (A* on the true simulator, all 20 actions) of the goals per distance: "
            + ", ".join(f"{k}: {np.mean([r.optimal_moves for r in grid_rows if r.goal_moves == k and r.agent == 'random']):.2f}"
                        for k in s.distances) + ".",
            "",
            "### Generalisation to the unseen action: goals that need 'left'",
            "",
            "Definition: a goal *needs left* when some object's goal column is left of its start column. Up, right "
            "and down never decrease a column (a blocked move changes nothing), so such a goal has no solution "
            "without 'left' at all, whatever its length; every other goal keeps every object's column or moves it "
            "right. (`symwm.agents.goals.needs_motion`; `tests/test_planning.py` checks with A* on the true "
            "simulator, restricted to up/right/down, that needs-left goals are unreachable.) The models never saw a "
            "'left' transition.",
            "",
            *left_table(grid_rows),
            "",
            "Success % on needs-left goals per distance (n):",
            "",
            *left_by_distance(grid_rows, s.distances),
            "",
        ]
        if "bfs" not in args.skip:
            t0 = time.perf_counter()
            bfs_rows = run_grid(models, s, "bfs", s.bfs_episodes)
            all_rows += bfs_rows
            timings["grid (bfs)"] = time.perf_counter() - t0
            lines += [
                f"### Exhaustive breadth-first search (depth {s.bfs_depth}, {20 ** s.bfs_depth} sequences of length "
                f"{s.bfs_depth} per decision, one batched call per level), {s.bfs_episodes} goals per distance",
                "",
                *grid_table(bfs_rows, s.distances),
                "",
                *left_table(bfs_rows),
                "",
            ]
        if "ablation" not in args.skip:
            t0 = time.perf_counter()
            abl_rows = run_grid(models, s, "beam", s.ablation_episodes, ablation=True)
            all_rows += abl_rows
            timings["grid (ablation)"] = time.perf_counter() - t0
            lines += [
                f"### Ablation: latent beam search without skipping observed no-ops ({s.ablation_episodes} goals per "
                "distance, the first goals of the table above)",
                "",
                *grid_table(abl_rows, s.distances),
                "",
                *left_table(abl_rows),
                "",
            ]
        for v in ("simulator", "ours", "none"):
            for method, kw in [("beam", {"width": s.beam[0], "depth": s.beam[1]}), ("bfs", {"depth": s.bfs_depth})]:
                model = None if v == "simulator" else models[v]
                ms = latency(lambda env, m=model, me=method, kw=kw: make_agent(env, me, model=m, **kw),
                             lambda: gym.make(GRID_ENV, goal_moves=4), s.latency_decisions)
                latency_rows.append((f"Cubes3D, {method} {kw}", v, ms))
    else:
        not_measured.append("grid-world planning (skipped with --skip grid)")

    for name, env_id, env_kwargs, budget, data, variants in [
        ("reacher", "symwm/Reacher-v0", {"goal": "random"}, s.reacher_budget, s.reacher_data, ("ours",)),
        ("rotation", "symwm/RotatingObject-v0", {"actions": "continuous"}, s.rotation_budget, (*s.rotation_data, 0),
         ("ours", "matmul")),
    ]:
        if name in args.skip:
            not_measured.append(f"{env_id} {env_kwargs} (skipped with --skip {name})")
            continue
        t0 = time.perf_counter()
        episodes, steps, warmup = data
        models, infos = {}, {}
        for v in variants:
            models[v], infos[v] = train_small(env_id, env_kwargs, work / (name if v == "ours" else f"{name}_{v}"), episodes,
                                              steps, warmup, s.train_epochs, s.train_batch, variant=v)
        t1 = time.perf_counter()
        make_task_env = lambda env_id=env_id, env_kwargs=env_kwargs: gym.make(env_id, **env_kwargs)  # noqa: E731
        rows = evaluate(make_task_env, continuous_agents(models, s),
                        seeds=range(s.continuous_seed, s.continuous_seed + s.cont_episodes), budget=budget, task=name,
                        progress=log)
        reused = all(info.get("reused") for info in infos.values())
        timings[f"{name} {'models (reused; trained by an earlier run, times above)' if reused else 'training'}"] = t1 - t0
        timings[f"{name} evaluation"] = time.perf_counter() - t1
        cont[name] = rows
        all_rows += rows
        for agent_name, factory in continuous_agents(models, s).items():
            if agent_name != "random":
                latency_rows.append((f"{name}, {agent_name.split()[1]}", agent_name.split()[0],
                                     latency(factory, make_task_env, s.latency_decisions)))
        checks = {v: prediction_check(m, make_task_env, episodes=s.check_episodes) for v, m in models.items()}
        h, n, e, it = s.cem
        mh, mn, mit = s.mppi
        task = ("Reacher with a random goal per episode (`goal='random'`): success = fingertip within 0.15 of the "
                "goal (reach 2.0, the drawn goal disk has radius 0.16) within the budget; the goal image is the "
                "observation of the arm at rest with its fingertip on the goal (inverse kinematics, the elbow solution "
                "nearer the start pose)") if name == "reacher" else (
                "RotatingObject with continuous rotations (`actions='continuous'`, at most 36 degrees per step): "
                "success = termination within the env's goal tolerance (0.25 rad) of the target orientation; the goal "
                "image is `info['goal_image']`")
        trained = "; ".join(
            f"`{v}`: {info.get('data_seconds', 0):.0f} s data, {info.get('train_seconds', 0):.0f} s training, loss "
            f"{info.get('first_loss', math.nan):.4f} after epoch 1, {info.get('final_loss', math.nan):.4f} after the last, "
            f"best epoch {info.get('best_epoch')}" for v, info in infos.items())
        lines += [
            f"## {'Reacher' if name == 'reacher' else 'Rotating object'}",
            "",
            f"{task}. {s.cont_episodes} episodes (reset seeds {s.continuous_seed}..), budget {budget} steps.",
            f"Models at the `cpu` size trained here on {episodes} random-policy episodes x {steps} steps"
            + (f" after {warmup} random warm-up steps" if warmup else "")
            + f", {s.train_epochs} epochs, batch {s.train_batch}, Adam lr 1e-3 ({trained})."
            + (" `matmul` is the paper's exactly equivariant transition `z' = A(a) z` (no transition parameters; the "
               "SEN alone is learned), its best model for large rotations; `ours` the SO(3)-equivariant network."
               if name == "rotation" else ""),
            f"Planners: CEM (horizon {h}, population {n}, elites {e}, {it} iterations) and MPPI (horizon {mh}, {mn} samples, "
            f"{mit} iterations), the same settings on the models and on the simulator; cost of a sequence = "
            f"{'its distance to the goal at the best step' if s.continuous_cost == 'min' else s.continuous_cost + ' of its distances to the goal'} "
            "(model: energy to the goal latent; simulator: the task distance); warm start from the previous plan "
            "shifted by one step. Horizon and cost were picked on Reacher seeds 10000..10007 (horizon 10 with the "
            "summed cost: 0/6 successes on the model, see the model check below), not on the seeds reported here.",
            "",
            *continuous_table(rows),
            "",
            f"Model check ({s.check_episodes} random-action rollouts from reset states): mean energy between the "
            "h-step latent prediction and the encoding of the true observation (prediction error), beside the energy "
            "between the start and that observation (how far the state really moved, in the model's own units):",
            "",
            "| model, h | " + " | ".join(str(i + 1) for i in range(10)) + " |",
            "|---|" + "---|" * 10,
        ]
        for v, (err, moved) in checks.items():
            lines.append(f"| {v}: prediction error | " + " | ".join(f"{x:.3f}" for x in err) + " |")
            lines.append(f"| {v}: true movement | " + " | ".join(f"{x:.3f}" for x in moved) + " |")
        lines.append("")

    if latency_rows:
        lines += ["## Planning latency", "",
                  f"Median milliseconds per decision over {s.latency_decisions} fresh goals (first decision of each), "
                  f"{torch.get_num_threads()} torch thread(s).", "",
                  "| task, planner | dynamics | ms/decision |", "|---|---|---|"]
        lines += [f"| {t} | {d} | {ms:.1f} |" for t, d, ms in latency_rows]
        lines.append("")
    if all_rows:
        write_csvs(out, all_rows)
        if grid_rows:
            plot(out / "planning.png", grid_rows, cont, s.distances)
            lines += ["![success vs goal distance](planning.png)", ""]
    if not_measured:
        lines += ["## Not measured in this run", "", *[f"- {x}" for x in not_measured], ""]
    total = time.perf_counter() - start
    if hasattr(os, "getloadavg"):
        lines += [f"Load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on "
                  f"{os.cpu_count()} cores: other jobs shared the machine, so latencies are upper bounds.", ""]
    lines += ["Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()) + f"; total {total / 60:.1f} min.", ""]
    (out / "planning.md").write_text("\n".join(lines))
    log(f"wrote {out / 'planning.md'} in {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
