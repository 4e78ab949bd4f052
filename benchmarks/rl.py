"""RL on pixels vs on symwm latents: stable-baselines3 PPO (and DQN) with the same budget and seeds.

Tasks (both see the same information: the pixel agent's goal image is stacked as extra channels,
the latent agent gets the latents of observation and goal):

* ``grid``: ``symwm/Cubes3D-v0`` with 3 cubes on 5x5 (12 actions), ``goal_moves=1``, 10-step
  episodes, reward 1 at the goal. Pixels: ``[50, 50, 6]`` uint8 (obs + goal), SB3's ``CnnPolicy``
  (NatureCNN). Latents: ``concat(z(obs), z(goal))`` = 2 x 3 objects x 8 = 48 floats, ``MlpPolicy``.
  PPO and DQN. (The 5-cube task with the ``make demo`` model learnt nothing in 25k steps on latents
  or pixels in pilot runs; ``--grid-checkpoint`` still accepts any Cubes3D checkpoint of the
  task's size.)
* ``reacher``: ``symwm/Reacher-v0`` (fixed goal, oblique camera, ``[64, 64, 6]`` two stacked frames),
  50-step episodes, reward ``-distance - 0.1 |a|^2``. Latents: 32 floats. PPO.

Both world models are small ``ours`` models (``cpu`` size) that the script trains first on
reward-free random-policy data (``WORLD_MODELS``; reused from ``runs/rl/`` when already trained
with the same settings). Latent observations are encoded in one batch per vectorised step
(:class:`symwm.agents.sb3.VecLatentObservation`) and standardised by ``VecNormalize``.

Every (task, algorithm, observation, seed) run trains for ``--budget`` env steps (per task) and is
evaluated with the deterministic policy on fixed evaluation seeds at regular step counts (step 0
included). Runs execute in ``--jobs`` worker processes with one torch thread each. Outputs, in
``--out`` (default ``benchmarks/results``): ``rl.csv`` (every evaluation), ``rl.md`` (settings,
machine, return at fixed budgets, sample-efficiency ratios, wall times), ``rl.png`` (curves).

    .venv/bin/python benchmarks/rl.py                  # the committed rl.md (about 20 min on 2 busy cores)
    .venv/bin/python benchmarks/rl.py --quick          # smoke run, under a minute, writes to /tmp
    .venv/bin/python benchmarks/rl.py --seeds 5 --budget grid=131072 --budget reacher=81920 --jobs 4 --name rl_big
    .venv/bin/python benchmarks/rl.py --report-only    # re-render rl.md / rl.png from rl.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS_DIR = ROOT / "runs" / "rl"

#: the grid-world goal task
GRID_ENV = "symwm/Cubes3D-v0"
GRID_MODEL_KWARGS: dict[str, Any] = {"n_objects": 3}
GRID_KWARGS: dict[str, Any] = {**GRID_MODEL_KWARGS, "goal_moves": 1}
GRID_HORIZON = 10
#: the Reacher task
REACHER_ENV = "symwm/Reacher-v0"
REACHER_KWARGS: dict[str, Any] = {}
REACHER_HORIZON = 50
#: the world models trained here (``ours``, cpu size) on random-policy data: (env id, env kwargs, data + training)
WORLD_MODELS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "grid": (GRID_ENV, GRID_MODEL_KWARGS, dict(episodes=400, episode_length=10, warmup_steps=0, epochs=20, batch_size=128, lr=1e-3, seed=0)),
    # the paper's Reacher data: random torques, 50 unrecorded warm-up steps per episode
    "reacher": (REACHER_ENV, REACHER_KWARGS, dict(episodes=400, episode_length=10, warmup_steps=50, epochs=15, batch_size=128, lr=1e-3, seed=0)),
}

#: hyper-parameters, identical for pixels and latents (only the policy network differs)
PPO_GRID = dict(n_steps=256, batch_size=256, n_epochs=10, learning_rate=1e-3, gamma=0.95, gae_lambda=0.95, ent_coef=0.003, clip_range=0.2)
PPO_REACHER = dict(n_steps=128, batch_size=128, n_epochs=10, learning_rate=1e-3, gamma=0.95, gae_lambda=0.95, ent_coef=0.0, clip_range=0.2)
DQN_GRID = dict(
    buffer_size=20_000, learning_starts=1_000, batch_size=32, train_freq=4, gradient_steps=1, target_update_interval=500,
    exploration_fraction=0.2, exploration_final_eps=0.02, learning_rate=5e-4, gamma=0.95,
)
N_ENVS = {"ppo": 8, "dqn": 1}

DEFAULT_BUDGETS = {"grid": 32_768, "reacher": 20_480}
QUICK_BUDGETS = {"grid": 2_048, "reacher": 1_024}
EVAL_POINTS = 8  # evaluations per run after step 0
EVAL_EPISODES = {"grid": 30, "reacher": 4}
META_TAG = "rl-benchmark-settings"


@dataclass
class Run:
    """One training run."""

    task: str  # "grid" | "reacher"
    algo: str  # "ppo" | "dqn"
    obs: str  # "pixels" | "latents"
    seed: int
    budget: int
    checkpoint: str
    eval_every: int
    eval_episodes: int


@dataclass
class RunResult:
    """Evaluations of one run: (steps, mean return, success rate, wall seconds so far)."""

    run: Run
    evals: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    train_episodes: int = 0


# ----------------------------------------------------------------------------------------------
# environments
# ----------------------------------------------------------------------------------------------


def base_env(task: str) -> gym.Env:
    """The task's pixel env; grid: with the goal image stacked as extra channels."""
    from symwm.agents.sb3 import GoalImageObservation

    if task == "grid":
        return GoalImageObservation(gym.make(GRID_ENV, max_episode_steps=GRID_HORIZON, **GRID_KWARGS))
    if task == "reacher":
        return gym.make(REACHER_ENV, max_episode_steps=REACHER_HORIZON, **REACHER_KWARGS)
    raise ValueError(f"unknown task {task!r}")


def training_env(run: Run):
    """The SB3 VecEnv of a run: pixels (SB3 transposes them itself) or batched latents."""
    from stable_baselines3.common.env_util import make_vec_env

    from stable_baselines3.common.vec_env import VecNormalize

    from symwm.agents.sb3 import VecLatentObservation

    venv = make_vec_env(lambda: base_env(run.task), n_envs=N_ENVS[run.algo], seed=run.seed)
    if run.obs == "pixels":
        return venv  # SB3 adds VecTransposeImage and divides by 255
    # latents: one batched encode per step, then a running standardisation (the MLP's input scaling)
    return VecNormalize(VecLatentObservation(venv, run.checkpoint), norm_obs=True, norm_reward=False)


def eval_env(run: Run) -> gym.Env:
    """A single evaluation env with the run's observations."""
    from symwm.agents.sb3 import LatentObservation

    env = base_env(run.task)
    return LatentObservation(env, run.checkpoint) if run.obs == "latents" else env


def evaluate(model: Any, env: gym.Env, episodes: int) -> tuple[float, float]:
    """(mean undiscounted return, share of terminated episodes) of the deterministic policy on seeds 10_000+."""
    normalizer = model.get_vec_normalize_env()  # latents: the training env's current statistics
    returns, successes = [], 0
    for i in range(episodes):
        obs, _ = env.reset(seed=10_000 + i)
        total, done = 0.0, False
        while not done:
            x = normalizer.normalize_obs(obs) if normalizer is not None else obs
            action, _ = model.predict(x, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        successes += bool(terminated)
        returns.append(total)
    return float(np.mean(returns)), successes / episodes


# ----------------------------------------------------------------------------------------------
# one run
# ----------------------------------------------------------------------------------------------


def make_agent(run: Run, venv: Any) -> Any:
    """PPO or DQN with the task's hyper-parameters; CnnPolicy on pixels, MlpPolicy on latents."""
    from stable_baselines3 import DQN, PPO

    policy = "CnnPolicy" if run.obs == "pixels" else "MlpPolicy"
    common = dict(seed=run.seed, device="cpu", verbose=0)
    if run.algo == "ppo":
        return PPO(policy, venv, **(PPO_GRID if run.task == "grid" else PPO_REACHER), **common)
    if run.algo == "dqn":
        params = dict(DQN_GRID)
        params["buffer_size"] = min(params["buffer_size"], run.budget)
        params["learning_starts"] = min(params["learning_starts"], run.budget // 10)
        params["target_update_interval"] = min(params["target_update_interval"], max(run.budget // 20, 1))
        return DQN(policy, venv, **params, **common)
    raise ValueError(f"unknown algorithm {run.algo!r}")


def execute(run: Run) -> RunResult:
    """Train one agent, evaluating every ``eval_every`` steps (worker process, one torch thread)."""
    torch.set_num_threads(1)
    import symwm  # noqa: F401

    result = RunResult(run)
    venv = training_env(run)
    model = make_agent(run, venv)
    env = eval_env(run)
    start = time.perf_counter()
    train_s = 0.0
    ret, success = evaluate(model, env, run.eval_episodes)
    result.evals.append(dict(steps=0, mean_return=ret, success=success, train_s=0.0))
    while model.num_timesteps < run.budget:
        t0 = time.perf_counter()
        model.learn(min(run.eval_every, run.budget - model.num_timesteps), reset_num_timesteps=False)
        train_s += time.perf_counter() - t0
        ret, success = evaluate(model, env, run.eval_episodes)
        result.evals.append(dict(steps=model.num_timesteps, mean_return=ret, success=success, train_s=train_s))
    result.wall_s = time.perf_counter() - start
    result.train_episodes = sum(1 for _ in model.ep_info_buffer)
    venv.close()
    return result


# ----------------------------------------------------------------------------------------------
# the Reacher world model
# ----------------------------------------------------------------------------------------------


def world_model(task: str, out_dir: Path, quick: bool) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse, if trained with the same settings) the task's small ``ours`` model on random-policy data."""
    from symwm.world_models.collect import collect
    from symwm.world_models.model import ModelSpec
    from symwm.world_models.train import TrainConfig, train

    env_id, env_kwargs, cfg = WORLD_MODELS[task]
    cfg = dict(cfg)
    if quick:
        cfg.update(episodes=40, epochs=1)
    run_dir = out_dir / f"{task}_{'quick' if quick else 'ours'}"
    best, stamp = run_dir / "best.pt", run_dir / "rl_model.json"
    if best.exists() and stamp.exists():
        info = json.loads(stamp.read_text())
        if info.get("config") == cfg and info.get("env_kwargs") == env_kwargs:
            return best, {**info, "reused": True}
    torch.set_num_threads(1)  # two threads thrash on a busy 2-core machine (measured 10x slower)
    t0 = time.perf_counter()
    data = collect(
        run_dir / "train.h5", env_id, n_episodes=cfg["episodes"], episode_length=cfg["episode_length"],
        warmup_steps=cfg["warmup_steps"], seed=cfg["seed"], env_kwargs=env_kwargs, progress=False,
    )
    t1 = time.perf_counter()
    spec = ModelSpec(env_id=env_id, variant="ours", size="cpu", env_kwargs=env_kwargs)
    result = train(spec, TrainConfig(
        dataset=str(data), out_dir=str(run_dir), epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
        seed=cfg["seed"], device="cpu", progress=False, tensorboard=False, overwrite=True,  # settings changed: replace
    ))
    t2 = time.perf_counter()
    info = {"config": cfg, "env_kwargs": env_kwargs, "collect_s": t1 - t0, "train_s": t2 - t1,
            "losses": [h["loss"] for h in result.history]}
    stamp.write_text(json.dumps(info, indent=1))
    return result.best, info


# ----------------------------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------------------------


def machine() -> str:
    """CPU model, cores, Python / torch / SB3 versions."""
    import stable_baselines3

    cpu = cpu_model()
    return (
        f"{cpu}, {os.cpu_count()} logical cores (shared with other jobs), Python {platform.python_version()}, "
        f"torch {torch.__version__} (1 thread per run), stable-baselines3 {stable_baselines3.__version__}, gymnasium {gym.__version__}"
    )


def curves(results: list[RunResult]) -> dict[tuple[str, str, str], dict[str, np.ndarray]]:
    """(task, algo, obs) -> steps [P], returns [seeds, P], success [seeds, P], wall [seeds]."""
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.run.task, r.run.algo, r.run.obs), []).append(r)
    out = {}
    for key, rs in groups.items():
        rs = sorted(rs, key=lambda r: r.run.seed)
        n = min(len(r.evals) for r in rs)
        out[key] = {
            "steps": np.array([e["steps"] for e in rs[0].evals[:n]]),
            "returns": np.array([[e["mean_return"] for e in r.evals[:n]] for r in rs]),
            "success": np.array([[e["success"] for e in r.evals[:n]] for r in rs]),
            "wall": np.array([r.wall_s for r in rs]),
            "train_s": np.array([r.evals[n - 1]["train_s"] for r in rs]),
            "seeds": [r.run.seed for r in rs],
        }
    return out


def steps_to_reach(steps: np.ndarray, mean: np.ndarray, level: float) -> int | None:
    """First evaluated step count at which the seed-mean return reaches ``level`` (None: never)."""
    hit = np.flatnonzero(mean >= level - 1e-9)
    return int(steps[hit[0]]) if hit.size else None


def efficiency(c: dict[tuple[str, str, str], dict[str, np.ndarray]], task: str, algo: str) -> dict[str, Any] | None:
    """Sample-efficiency ratio: env steps pixels need to reach a return level / env steps latents need.

    Level: halfway from the step-0 return (mean of both agents') to the better agent's final return,
    both as seed means. An agent that never reaches it within the budget B gets no step count, and the
    ratio becomes a bound (``> B / steps_latents`` or ``< steps_pixels / B``).
    """
    pix, lat = c.get((task, algo, "pixels")), c.get((task, algo, "latents"))
    if pix is None or lat is None:
        return None
    pm, lm = pix["returns"].mean(0), lat["returns"].mean(0)
    start = 0.5 * (pm[0] + lm[0])
    level = float(start + 0.5 * (max(pm[-1], lm[-1]) - start))
    s_pix, s_lat = steps_to_reach(pix["steps"], pm, level), steps_to_reach(lat["steps"], lm, level)
    budget = int(min(pix["steps"][-1], lat["steps"][-1]))
    if level <= max(pm[0], lm[0]) + 1e-9:
        text = "n/a (no agent improved on step 0)"
    elif s_pix and s_lat:
        text = f"{s_pix / s_lat:.2f}"
    elif s_lat:
        text = f"> {budget / s_lat:.2f} (pixels do not reach it within {budget:,} steps)"
    elif s_pix:
        text = f"< {s_pix / budget:.2f} (latents do not reach it within {budget:,} steps)"
    else:
        text = "n/a"
    return {"level": level, "steps_pixels": s_pix, "steps_latents": s_lat, "text": text,
            "final_pixels": float(pm[-1]), "final_latents": float(lm[-1]), "best_pixels": float(pm.max())}


def write_csv(path: Path, results: list[RunResult]) -> None:
    """One row per evaluation."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "algo", "obs", "seed", "steps", "mean_return", "success", "train_s", "run_wall_s"])
        for r in sorted(results, key=lambda r: (r.run.task, r.run.algo, r.run.obs, r.run.seed)):
            for e in r.evals:
                w.writerow([r.run.task, r.run.algo, r.run.obs, r.run.seed, int(e["steps"]), f"{e['mean_return']:.4f}",
                            f"{e['success']:.4f}", f"{e['train_s']:.2f}", f"{r.wall_s:.2f}"])


def read_csv(path: Path) -> list[RunResult]:
    """The runs of an ``rl.csv`` (inverse of :func:`write_csv`, enough for the report)."""
    runs: dict[tuple[str, str, str, int], RunResult] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["task"], row["algo"], row["obs"], int(row["seed"]))
            if key not in runs:
                runs[key] = RunResult(Run(*key, budget=0, checkpoint="", eval_every=0, eval_episodes=0), wall_s=float(row["run_wall_s"]))
            runs[key].evals.append(dict(steps=int(row["steps"]), mean_return=float(row["mean_return"]),
                                        success=float(row["success"]), train_s=float(row["train_s"])))
    return list(runs.values())


def plot(path: Path, c: dict[tuple[str, str, str], dict[str, np.ndarray]]) -> None:
    """Learning curves: seed-mean evaluation return +- one standard deviation, one panel per (task, algo)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = sorted({(t, a) for t, a, _ in c})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, (task, algo) in zip(axes[0], panels):
        for obs, colour in (("pixels", "tab:red"), ("latents", "tab:blue")):
            if (task, algo, obs) not in c:
                continue
            d = c[(task, algo, obs)]
            m, s = d["returns"].mean(0), d["returns"].std(0)
            label = f"{obs} ({'CnnPolicy' if obs == 'pixels' else 'MlpPolicy on symwm latents'})"
            ax.plot(d["steps"], m, color=colour, label=label)
            ax.fill_between(d["steps"], m - s, m + s, color=colour, alpha=0.2)
        title = {"grid": f"Cubes3D goal 1 move away, {GRID_HORIZON}-step episodes", "reacher": "Reacher (fixed goal)"}[task]
        ax.set_title(f"{algo.upper()}: {title}", fontsize=9)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return (deterministic)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def describe_model(task: str, info: dict[str, Any], checkpoint: str) -> str:
    """How the task's world model was made (for the report)."""
    if not info:
        return f"the given checkpoint `{checkpoint}`"
    c = info["config"]
    warm = f" after {c['warmup_steps']} unrecorded warm-up steps" if c["warmup_steps"] else ""
    return (
        f"an `ours` cpu-size model trained by the script on random-policy data ({c['episodes']} episodes x "
        f"{c['episode_length']} steps{warm}, all actions; {c['epochs']} epochs, batch {c['batch_size']}, lr {c['lr']}; "
        f"collection {info['collect_s']:.0f} s, training {info['train_s']:.0f} s, contrastive loss "
        f"{info['losses'][0]:.3f} -> {info['losses'][-1]:.3f})"
    )


def write_md(path: Path, c: dict, args: argparse.Namespace, models: dict[str, dict[str, Any]], checkpoints: dict[str, str],
             total_s: float, png: str, finished: str | None = None, load15: float | None = None) -> None:
    """The report: settings, machine, returns at budgets, ratios, wall times."""
    finished = finished or f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}"
    load15 = os.getloadavg()[2] if load15 is None and hasattr(os, "getloadavg") else load15
    command = " ".join(["benchmarks/rl.py", *args.argv])
    lines = [
        "# RL on pixels vs on symwm latents (stable-baselines3)",
        "",
        f"Generated by `{command}`, finished {finished} UTC, "
        f"total wall time {total_s / 60:.1f} min with {args.jobs} worker processes"
        + (" (world models reused from an earlier run with the same settings; their own times are below)."
           if any(m.get("reused") for m in models.values()) else " (world-model training included)."),
        "",
        f"Machine: {machine()}." + (f" 15-minute load average near the end of the run: {load15:.1f} "
                                    "(other jobs shared the cores, so wall times are upper bounds)." if load15 else ""),
        "",
        "## Settings",
        "",
    ]
    if "grid" in checkpoints:
        lines.append(
            f"- **grid**: `{GRID_ENV}` with `{GRID_KWARGS}` ({GRID_KWARGS['n_objects']} cubes on a 5x5 grid, "
            f"{4 * GRID_KWARGS['n_objects']} actions; the goal configuration is one move away), episodes cut at "
            f"{GRID_HORIZON} steps, reward 1 and termination at the goal. Pixels: observation and goal image stacked, "
            "`[50, 50, 6]` uint8, `CnnPolicy` (NatureCNN). Latents: `concat(z(obs), z(goal))`, "
            f"2 x {GRID_KWARGS['n_objects']} objects x 8 floats, `MlpPolicy` (64-64), from "
            f"{describe_model('grid', models.get('grid', {}), checkpoints['grid'])}."
        )
    if "reacher" in checkpoints:
        lines.append(
            f"- **reacher**: `{REACHER_ENV}` defaults (fixed goal, oblique camera, two stacked 64x64 RGB frames), episodes "
            f"of {REACHER_HORIZON} steps, reward `-distance - 0.1 |a|^2`. Pixels: `[64, 64, 6]` uint8, `CnnPolicy`; "
            f"latents: 32 floats, `MlpPolicy` (64-64), from {describe_model('reacher', models.get('reacher', {}), checkpoints['reacher'])}."
        )
    lines += [
        f"- Budgets (env steps per run): {', '.join(f'{k} {v:,}' for k, v in args.budgets.items())}; seeds "
        f"{list(range(args.seeds))}; evaluation every budget/{EVAL_POINTS} steps and at step 0 with the deterministic "
        f"policy on fixed seeds (grid {EVAL_EPISODES['grid']} episodes, reacher {EVAL_EPISODES['reacher']}).",
        f"- PPO grid: {PPO_GRID}, {N_ENVS['ppo']} envs. PPO reacher: {PPO_REACHER}, {N_ENVS['ppo']} envs. "
        f"DQN grid: {DQN_GRID} (buffer, learning start and target interval capped by the budget), 1 env. "
        "Everything else SB3 defaults. Pixel and latent agents differ only in the observations and the policy network: "
        "SB3 scales pixels by 1/255; latents are standardised by `VecNormalize(norm_obs=True, norm_reward=False)` "
        "(running mean and variance; the same statistics are used at evaluation).",
        "",
        "## Mean evaluation return at fixed budgets (mean +- std over seeds)",
        "",
    ]
    for task in ("grid", "reacher"):
        for algo in ("ppo", "dqn"):
            if (task, algo, "pixels") not in c and (task, algo, "latents") not in c:
                continue
            any_d = c.get((task, algo, "pixels")) or c.get((task, algo, "latents"))
            steps = any_d["steps"]
            lines.append(f"**{task} / {algo.upper()}**" + (" (success rate in brackets)" if task == "grid" else ""))
            lines.append("")
            lines.append("| observations | " + " | ".join(f"{int(s):,} steps" for s in steps) + " | train wall s / run |")
            lines.append("|---|" + "---|" * (len(steps) + 1))
            for obs in ("pixels", "latents"):
                d = c.get((task, algo, obs))
                if d is None:
                    continue
                cells = []
                for j in range(len(steps)):
                    cell = f"{d['returns'][:, j].mean():.3f} +- {d['returns'][:, j].std():.3f}"
                    if task == "grid":
                        cell += f" ({100 * d['success'][:, j].mean():.0f} %)"
                    cells.append(cell)
                lines.append(f"| {obs} | " + " | ".join(cells) + f" | {d['train_s'].mean():.0f} |")
            lines.append("")
    lines += ["## Sample efficiency", "",
              "Ratio = env steps the pixel agent needs to reach a return level / env steps the latent agent needs "
              "(> 1: latents are more sample-efficient). Level: halfway from the step-0 return to the better agent's "
              "final return (seed means). Step counts are the first evaluation of the seed-mean curve at or above "
              "the level, resolved to budget/" + str(EVAL_POINTS) + "; an agent that does not reach the level within "
              "the budget turns the ratio into a bound. Wall-time ratio: training time per run (evaluation "
              "excluded), pixels / latents.", "",
              "| task | algo | level | pixels reach it at | latents reach it at | ratio | final return pixels | final return latents | wall-time ratio pixels/latents |",
              "|---|---|---|---|---|---|---|---|---|"]
    for task in ("grid", "reacher"):
        for algo in ("ppo", "dqn"):
            e = efficiency(c, task, algo)
            if e is None:
                continue
            wall = c[(task, algo, "pixels")]["train_s"].mean() / max(c[(task, algo, "latents")]["train_s"].mean(), 1e-9)
            fmt = lambda s: "not reached" if s is None else f"{s:,}"  # noqa: E731
            lines.append(f"| {task} | {algo.upper()} | {e['level']:.3f} | {fmt(e['steps_pixels'])} | {fmt(e['steps_latents'])} | "
                         f"{e['text']} | {e['final_pixels']:.3f} | {e['final_latents']:.3f} | {wall:.2f} |")
    model_steps = {t: model_env_steps(m) for t, m in models.items() if m}
    if model_steps:
        lines += ["", "The latent agents' world models were trained on reward-free random-policy data that the RL "
                  "budgets above do not count: " + ", ".join(f"{t} {n:,} env steps" for t, n in model_steps.items())
                  + " (warm-up steps included). Counted against the latent agent:", ""]
        for task in ("grid", "reacher"):
            for algo in ("ppo", "dqn"):
                e = efficiency(c, task, algo)
                if e is None or task not in model_steps:
                    continue
                budget = int(c[(task, algo, "pixels")]["steps"][-1])
                if e["steps_latents"] is None:
                    continue
                total = e["steps_latents"] + model_steps[task]
                if e["steps_pixels"] is not None:
                    text = f"ratio {e['steps_pixels'] / total:.2f}"
                elif total >= budget:
                    text = f"inconclusive (the latent agent needed {total:,} steps, more than the pixel agent's budget of {budget:,})"
                else:
                    text = f"ratio > {budget / total:.2f}"
                lines.append(f"- {task} / {algo.upper()}: latents reach the level after {total:,} env steps in all: {text}.")
    others = sorted(q.name for q in path.parent.glob("rl*.md") if q.name != path.name)
    if others:
        lines += ["", "Other runs of this benchmark in this directory (other budgets or seeds): "
                  + ", ".join(f"[{name}]({name})" for name in others) + "."]
    lines += ["", f"![learning curves]({png})", "",
              f"Raw numbers: `{path.stem}.csv` (one row per evaluation; `train_s` = training wall time so far, evaluation excluded)."]
    meta = {"args": {k: getattr(args, k) for k in ("argv", "seeds", "budgets", "jobs")}, "total_s": total_s,
            "models": models, "checkpoints": checkpoints, "finished": finished, "load15": load15}
    lines += ["", f"<!-- {META_TAG} {json.dumps(meta)} -->"]  # read back by --report-only
    path.write_text("\n".join(lines) + "\n")


def model_env_steps(info: dict[str, Any]) -> int:
    """Env steps spent collecting a world model's training data (warm-up included)."""
    c = info["config"]
    return int(c["episodes"] * (c["episode_length"] + c["warmup_steps"]))


def read_meta(md: Path) -> dict[str, Any]:
    """The settings a report was written with (the JSON comment at its end)."""
    for line in md.read_text().splitlines():
        if line.startswith(f"<!-- {META_TAG} "):
            return json.loads(line[len(f"<!-- {META_TAG} "):-len(" -->")])
    raise SystemExit(f"{md} has no settings comment; rerun the benchmark")


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def parse_budget(items: list[str], quick: bool) -> dict[str, int]:
    """``task=steps`` overrides of the default budgets."""
    budgets = dict(QUICK_BUDGETS if quick else DEFAULT_BUDGETS)
    for item in items:
        task, _, value = item.partition("=")
        if task not in budgets or not value.isdigit():
            raise SystemExit(f"--budget takes TASK=STEPS with TASK in {sorted(budgets)}, got {item!r}")
        budgets[task] = int(value)
    return budgets


def main(argv: list[str] | None = None) -> None:
    """Parse options, train the Reacher model, run every (task, algo, obs, seed) and write the report."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny budgets, 1 seed, results to /tmp/symwm_rl_quick")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..n-1); default 3 (quick: 1)")
    p.add_argument("--budget", action="append", default=[], metavar="TASK=STEPS", help="env steps per run, e.g. grid=100000")
    p.add_argument("--tasks", default="grid,reacher", help="comma-separated subset of grid,reacher")
    p.add_argument("--algos", default="ppo,dqn", help="comma-separated subset of ppo,dqn (DQN: grid only)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one torch thread each)")
    p.add_argument("--grid-checkpoint", default=None, help="use this symwm checkpoint for the grid task instead of training one "
                   "(it must be for Cubes3D with the task's n_objects)")
    p.add_argument("--out", default=None, help="results directory (default benchmarks/results; quick: /tmp/symwm_rl_quick)")
    p.add_argument("--name", default="rl", help="output file stem: NAME.md, NAME.csv, NAME.png")
    p.add_argument("--report-only", action="store_true", help="rewrite NAME.md and NAME.png from NAME.csv and the settings in NAME.md")
    args = p.parse_args(argv)
    args.argv = argv
    args.seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    args.budgets = parse_budget(args.budget, args.quick)
    out = Path(args.out) if args.out else (Path("/tmp/symwm_rl_quick") if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path, png = out / f"{args.name}.md", out / f"{args.name}.csv", out / f"{args.name}.png"
    if args.report_only:
        meta = read_meta(md)
        results = read_csv(csv_path)
        write_md(md, curves(results), argparse.Namespace(**meta["args"]), meta["models"], meta["checkpoints"], meta["total_s"],
                 png.name, meta.get("finished"), meta.get("load15"))
        plot(png, curves(results))
        print(f"rewrote {md} and {png.name} from {csv_path.name}")
        return
    tasks = [t for t in args.tasks.split(",") if t]
    algos = [a for a in args.algos.split(",") if a]
    if args.grid_checkpoint and not Path(args.grid_checkpoint).exists():
        raise SystemExit(f"--grid-checkpoint {args.grid_checkpoint} does not exist")

    start = time.perf_counter()
    checkpoints: dict[str, str] = {}
    models: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task == "grid" and args.grid_checkpoint:
            checkpoints[task], models[task] = args.grid_checkpoint, {}
            continue
        print(f"world model for {task} ...", flush=True)
        path, models[task] = world_model(task, out / "quick_models" if args.quick else MODELS_DIR, args.quick)
        checkpoints[task] = str(path)
        print(f"  {path} (collect {models[task]['collect_s']:.0f} s, train {models[task]['train_s']:.0f} s)", flush=True)

    runs = []
    for task in tasks:
        for algo in algos:
            if algo == "dqn" and task != "grid":
                continue
            budget = args.budgets[task]
            rollout = N_ENVS[algo] * (PPO_GRID if task == "grid" else PPO_REACHER)["n_steps"] if algo == "ppo" else 1
            every = max(rollout, -(-budget // EVAL_POINTS) // rollout * rollout)
            for obs in ("pixels", "latents"):
                for seed in range(args.seeds):
                    runs.append(Run(task, algo, obs, seed, budget, checkpoints[task], every, EVAL_EPISODES[task]))
    # longest first (pixel runs), so that the pool's last workers do not idle
    runs.sort(key=lambda r: (r.obs != "pixels", -r.budget))
    print(f"{len(runs)} runs on {args.jobs} workers ...", flush=True)
    results: list[RunResult] = []
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for res in pool.imap_unordered(execute, runs):
            last = res.evals[-1]
            print(f"  {res.run.task:7s} {res.run.algo} {res.run.obs:7s} seed {res.run.seed}: return {last['mean_return']:.3f} "
                  f"at {int(last['steps']):,} steps, {res.wall_s:.0f} s", flush=True)
            results.append(res)
    total = time.perf_counter() - start

    c = curves(results)
    write_csv(csv_path, results)
    plot(png, c)
    write_md(md, c, args, models, checkpoints, total, png.name)
    print(f"wrote {md}, {csv_path.name}, {png.name} in {total / 60:.1f} min")


if __name__ == "__main__":
    main()
