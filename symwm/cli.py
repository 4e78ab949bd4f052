"""Command line: ``symwm envs | gallery | check | demo``.

Run ``symwm <command> --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import gymnasium as gym
import numpy as np

from symwm.envs import ENV_IDS

TASKS = {
    "symwm/Shapes2D-v0": "reach a goal configuration (goal_moves=k)",
    "symwm/Cubes3D-v0": "reach a goal configuration (goal_moves=k)",
    "symwm/RushHour-v0": "reach a goal configuration (goal_moves=k)",
    "symwm/Reacher-v0": "bring the fingertip to the goal (-distance - control cost)",
    "symwm/RotatingObject-v0": "reach a target orientation (-geodesic distance)",
}


def describe_space(space: gym.Space) -> str:
    """Short human description of an observation or action space."""
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, gym.spaces.Box):
        if space.dtype == np.uint8:
            return f"{'x'.join(map(str, space.shape))} uint8"
        return f"Box[{float(space.low.min()):g}, {float(space.high.max()):g}]^{space.shape[0]}"
    return str(space)


def env_table() -> str:
    """The markdown table of registered environments (id, group, observation, action, task)."""
    lines = [
        "| id | group | observation | action | task |",
        "|---|---|---|---|---|",
    ]
    for env_id in ENV_IDS:
        env = gym.make(env_id)
        sym = env.unwrapped.symmetry
        group = sym.group.name
        if sym.action_group is not sym.group:
            group += f" (actions: {sym.action_group.name})"
        lines.append(
            f"| `{env_id}` | {group} | {describe_space(env.observation_space)} | "
            f"{describe_space(env.action_space)} | {TASKS[env_id]} |"
        )
        env.close()
    return "\n".join(lines)


def check_equivariance(env_id: str, n_checks: int, seed: int) -> float:
    """Largest ``|step(g.s, g.a) - g.step(s, a)|`` over random states, actions and group elements."""
    env = gym.make(env_id)
    base, sym = env.unwrapped, env.unwrapped.symmetry
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    worst = 0.0
    for i in range(n_checks):
        env.reset(seed=seed + i)
        state = base.get_state()
        action = env.action_space.sample()
        g = sym.action_group.sample(rng)
        base.set_state(state)
        base.step(action)
        after = base.get_state()
        base.set_state(sym.act_on_state(g, state))
        base.step(sym.act_on_action(g, action))
        worst = max(worst, sym.state_distance(sym.act_on_state(g, after), base.get_state()))
    env.close()
    return worst


def rollout_speed(env_id: str, n_steps: int, seed: int) -> float:
    """Environment steps per second (rendering included) under a random policy."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return n_steps / elapsed


def cmd_envs(args: argparse.Namespace) -> int:
    print(env_table())
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from symwm.gallery import save_gallery

    path = save_gallery(args.out, seed=args.seed)
    print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    ids = args.env or list(ENV_IDS)
    failed = False
    for env_id in ids:
        err = check_equivariance(env_id, args.n, args.seed)
        ok = err <= args.tol
        failed |= not ok
        print(f"{env_id:28s} max |step(g.s, g.a) - g.step(s, a)| = {err:.2e}  {'ok' if ok else 'FAILED'}")
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from symwm.gallery import save_gallery

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for env_id in ENV_IDS:
        err = check_equivariance(env_id, args.checks, args.seed)
        sps = rollout_speed(env_id, args.steps, args.seed)
        rows.append((env_id, err, sps))
        print(f"{env_id:28s} equivariance error {err:.1e}   {sps:8.0f} steps/s", flush=True)
    gallery = save_gallery(out / "gallery.png", seed=args.seed)
    report = [
        "# symwm demo",
        "",
        "Random-policy rollouts in every environment and a check that the dynamics commute with",
        f"the symmetry group (max over {args.checks} random states, actions and group elements).",
        "",
        "| env | max equivariance error | steps/s (1 process, rendering included) |",
        "|---|---|---|",
        *[f"| `{e}` | {err:.1e} | {sps:.0f} |" for e, err, sps in rows],
        "",
        "![gallery](gallery.png)",
        "",
    ]
    tmp = out / "report.md.tmp"
    tmp.write_text("\n".join(report))
    os.replace(tmp, out / "report.md")
    print(f"wrote {out / 'report.md'} and {gallery} in {time.perf_counter() - start:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symwm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("envs", help="print the table of registered environments")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("gallery", help="write a PNG of every environment beside its transformed twin")
    p.add_argument("--out", default="docs/gallery.png", help="output PNG path (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="reset seed (default: %(default)s)")
    p.set_defaults(func=cmd_gallery)

    p = sub.add_parser("check", help="check that each environment's dynamics commute with its group")
    p.add_argument("--env", action="append", choices=ENV_IDS, help="env id (repeatable; default: all)")
    p.add_argument("-n", type=int, default=50, help="random (state, action, g) triples per env (default: %(default)s)")
    p.add_argument("--tol", type=float, default=1e-6, help="allowed error (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("demo", help="the main job end to end (see README)")
    p.add_argument("--out", default="runs/demo", help="output directory (default: %(default)s)")
    p.add_argument("--steps", type=int, default=2000, help="random steps per env for the speed column")
    p.add_argument("--checks", type=int, default=50, help="equivariance checks per env")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symwm`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
