"""Check an environment against symwm's symmetry contract, as gymnasium's ``check_env`` checks the Env API.

What datasets, models, metrics and planners rely on (``symwm check --env ID`` runs it):

* the unwrapped env is a :class:`~symwm.envs.symmetry.SymmetricEnv` whose ``symmetry`` is an
  :class:`~symwm.envs.symmetry.EnvSymmetry` with a ``group`` and an ``action_group``;
* ``get_state`` / ``set_state`` round-trip: the same state renders the same observation;
* the group acts on states: ``e . s = s``, ``g . (h . s) = (g h) . s``, ``g^-1 . (g . s) = s``,
  and ``g . s`` is a valid state (its twin renders);
* the action group acts on actions in the same way, into the action space;
* the dynamics are equivariant: ``next(g . s, g . a) = g . next(s, a)``.

Each check is run on random states (from ``reset``), actions and group elements; the result is the
largest error seen, compared with ``tol``.

Not part of the contract, a warning: :func:`check_episode_constants` finds pixels that no action
changes within an episode but that differ between episodes (a goal marker drawn into every frame).
A contrastive world model can tell episodes apart by such pixels alone and then learns no dynamics;
give a goal as an image of its own (``info["goal_image"]``, ``goal_observation``) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from symwm.envs.symmetry import EnvSymmetry, SymmetricEnv


@dataclass
class CheckResult:
    """One property of the contract: its name, the largest error found (or the failure) and whether it holds."""

    name: str
    error: float
    ok: bool
    detail: str = ""


def _action_distance(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)), initial=0.0))


def check_symmetric_env(env: gym.Env, n: int = 50, seed: int = 0, tol: float = 1e-6) -> list[CheckResult]:
    """Run every check of the contract on ``env`` (made with ``gymnasium.make``); returns one result per property."""
    base = env.unwrapped
    if not isinstance(base, SymmetricEnv):
        return [CheckResult("SymmetricEnv", float("inf"), False, f"{type(base).__name__} is not a symwm SymmetricEnv")]
    sym = getattr(base, "symmetry", None)
    if not isinstance(sym, EnvSymmetry) or not hasattr(sym, "group") or not hasattr(sym, "action_group"):
        return [CheckResult("EnvSymmetry", float("inf"), False, "env.symmetry must be an EnvSymmetry with group and action_group")]
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    group, agroup = sym.group, sym.action_group
    worst = {name: 0.0 for name in ("state round trip", "identity on states", "composition on states",
                                    "inverse on states", "identity on actions", "composition on actions",
                                    "inverse on actions", "equivariant dynamics")}
    failures: dict[str, str] = {}

    def record(name: str, fn: Callable[[], float]) -> None:
        if name in failures:
            return
        try:
            worst[name] = max(worst[name], fn())
        except Exception as exc:  # a raised error is a failed property, named with its message
            failures[name] = f"{type(exc).__name__}: {exc}"

    dist = sym.state_distance
    for i in range(n):
        obs, _ = env.reset(seed=seed + i)
        s = base.get_state()
        a = env.action_space.sample()
        g, h = agroup.sample(rng), agroup.sample(rng)
        gs, ghs = group.sample(rng), group.sample(rng)
        record("state round trip", lambda: float(np.max(np.abs(base.observation_of(s).astype(np.int64) - np.asarray(obs).astype(np.int64)), initial=0)))
        record("identity on states", lambda: dist(sym.act_on_state(group.identity(), s), s))
        record("composition on states", lambda: dist(sym.act_on_state(gs, sym.act_on_state(ghs, s)), sym.act_on_state(group.compose(gs, ghs), s)))
        record("inverse on states", lambda: dist(sym.act_on_state(group.inverse(gs), base.validate_state(sym.act_on_state(gs, s))), s))
        record("identity on actions", lambda: _action_distance(sym.act_on_action(agroup.identity(), a), a))
        record("composition on actions", lambda: _action_distance(
            sym.act_on_action(g, sym.act_on_action(h, a)), sym.act_on_action(agroup.compose(g, h), a)))

        def inverse_on_actions() -> float:
            ga = sym.act_on_action(g, a)
            if not env.action_space.contains(np.asarray(ga, dtype=env.action_space.dtype) if isinstance(env.action_space, gym.spaces.Box) else ga):
                raise ValueError(f"act_on_action({g!r}, {a!r}) = {ga!r} is not in the action space")
            return _action_distance(sym.act_on_action(agroup.inverse(g), ga), a)

        record("inverse on actions", inverse_on_actions)

        def dynamics() -> float:
            after = base.next_state(s, a)
            twin = base.validate_state(sym.act_on_state(g, s))
            base.observation_of(twin)  # the twin renders
            return dist(base.next_state(twin, sym.act_on_action(g, a)), sym.act_on_state(g, after))

        record("equivariant dynamics", dynamics)
    results = []
    for name, err in worst.items():
        if name in failures:
            results.append(CheckResult(name, float("inf"), False, failures[name]))
        else:
            results.append(CheckResult(name, err, err <= tol))
    return results


def check_episode_constants(env: gym.Env, episodes: int = 8, steps: int = 40, seed: int = 0) -> CheckResult:
    """Pixels constant within every one of ``episodes`` random episodes yet different between them; ``ok`` if none.

    ``error`` is their fraction of the image. Such content identifies an episode without encoding
    what moves, which lets the contrastive loss be met by a model that ignores the dynamics.
    """
    env.action_space.seed(seed)
    firsts, constant = [], np.True_  # becomes [H, W, C]: constant within every episode so far
    for i in range(episodes):
        first = np.asarray(env.reset(seed=seed + i)[0])
        for _ in range(steps):
            constant = constant & (np.asarray(env.step(env.action_space.sample())[0]) == first)
        firsts.append(first)
    varies = (np.stack(firsts) != firsts[0]).any(axis=0)  # differs between episodes
    flagged = constant & varies
    if flagged.ndim == 3:
        flagged = flagged.any(axis=-1)  # [H, W]: a pixel with any such channel
    frac = float(flagged.mean()) if flagged.size else 0.0
    detail = "" if frac == 0 else (
        f"{100 * frac:.1f} % of the pixels never change within an episode but differ between episodes (a goal drawn "
        "into every frame?): a contrastive world model can tell episodes apart by them without learning the "
        "dynamics; give per-episode content as an image of its own (info['goal_image'], goal_observation)"
    )
    return CheckResult("no per-episode constants in observations (warning)", frac, frac == 0, detail)
