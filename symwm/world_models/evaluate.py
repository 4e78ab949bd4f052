"""Evaluate a trained world model on a rollout file: the paper's table, offline, from local files.

For each evaluation episode the model encodes the first observation, rolls the latent forward
``h`` steps with the recorded actions, and the prediction is ranked against the encodings of the
true observations after ``h`` steps of all episodes (Hits@k, MRR; :mod:`metrics`). If the file has
transformed twins (``symwm collect --twins ...``) it also reports, as the authors' release defines
them, at the quarter turn ``g`` (``env.symmetry.quarter_turn()``; collect with
``--twins quarter-turn`` or any set that includes it):

* ``ee``: the SEN's equivariance error ``mean ||rho_V(g) S(s) - S(g s)|| / mean ||S(s)||``;
* ``die_sen``: the distance invariance error of the SEN outputs over random pairs;
* ``die_model``: the distance invariance error of the ``h``-step predictions, each paired with the
  true latent of a random episode and its twin, divided by the mean norm of the current latents;

``slot_usage`` (object-factored latents only): the least-varying object slot's spread over the
true latents relative to the median slot's (:func:`metrics.slot_usage`; near 0: a slot encodes
nothing). And, with more than one twin element, ``ee_mean_g``: EE averaged over the twins' elements (a
different number from the release's EE; never print it beside the paper's).

For the rotating object (``hard_negatives > 0``) it adds Hard Hits@1 / MRR: the prediction must be
closer to the true latent than to the latents of ``hard_negatives`` observations rendered from
orientations close to the true one (random axis, angle uniform in ``[angle / 2, angle]`` with
``angle`` one small action, 2 pi / 30). Where the SEN outputs group elements (``has_pose``) and the
env names its pose (``pose_key``), ``pose_error_deg`` / ``pose_error_median_deg``: the SEN's
rotations of the first observations against the true poses, aligned by the best constant right
factor (:func:`metrics.pose_error`; not in the paper).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from symwm.envs.groups import rotation_from_vector
from symwm.envs.symmetry import pose_key
from symwm.world_models.compatibility import check_compatible
from symwm.world_models.datasets import PathDataset, open_dataset
from symwm.world_models.metrics import (
    batch_distance_invariance_error,
    equivariance_error,
    hard_ranking_metrics,
    identical_rows,
    mean_equivariance_error,
    metrics_from_ranks,
    pose_error,
    ranks_with_and_without_ids,
    release_distance_invariance_error,
    slot_usage,
)
from symwm.world_models.model import WorldModel

HARD_NEGATIVE_ANGLE = 2.0 * np.pi / 30.0
#: column order of the tables (absent metrics are left out)
COLUMNS = ("hits@1", "hits@5", "hits@10", "mrr", "distinct_hits@1", "distinct_mrr", "hard_hits@1", "hard_mrr", "ee", "ee_mean_g", "die_sen", "die_model", "slot_usage", "pose_error_deg")


@torch.no_grad()
def _batched(fn, *tensors: torch.Tensor, batch_size: int, device: torch.device, desc: str | None = None) -> torch.Tensor:
    """Apply ``fn`` to aligned batches of ``tensors`` on ``device``; results concatenated on CPU.

    ``desc``: show a progress bar with this label (None: none).
    """
    starts = range(0, len(tensors[0]), batch_size)
    if desc is not None:
        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    out = [fn(*(t[i : i + batch_size].to(device) for t in tensors)).cpu() for i in starts]
    return torch.cat(out)


def hard_negative_key(env: Any) -> str:
    """The state key that hard negatives perturb (``env.pose_key``), or a clear error naming the env."""
    key = pose_key(env)
    if key is None:
        raise ValueError(f"hard negatives need env.pose_key, the state key of the pose; {type(env).__name__} declares none")
    return key


def hard_negative_observations(
    env: Any, states: dict[str, np.ndarray], n_negatives: int, rng: np.random.Generator, angle: float = HARD_NEGATIVE_ANGLE
) -> torch.Tensor:
    """uint8 ``[N, M, H, W, C]``: renderings of poses (``env.pose_key``) within ``angle`` of each true one."""
    key = hard_negative_key(env)
    out = []
    for i in range(len(states[key])):
        row = []
        for _ in range(n_negatives):
            axis = rng.standard_normal(3)
            axis /= np.linalg.norm(axis)
            delta = rotation_from_vector(axis * rng.uniform(angle / 2, angle))
            state = {k: v[i] for k, v in states.items()}
            state[key] = delta @ state[key]
            row.append(env.observation_of(state))
        out.append(np.stack(row))
    return torch.from_numpy(np.stack(out))


def _quarter_turn_index(env: Any, elements: list[Any]) -> int | None:
    """Position of the env's quarter turn among the twins' group elements (None if absent)."""
    sym = env.unwrapped.symmetry
    g = sym.quarter_turn()
    return next((j for j, h in enumerate(elements) if sym.action_group.equal(g, h)), None)


@torch.no_grad()
def _twin_metrics(
    model: WorldModel, batch: dict[str, Any], elements: list[Any], quarter: int | None, s: torch.Tensor, z: torch.Tensor,
    pred: torch.Tensor, target: torch.Tensor, batch_size: int, device: torch.device, seed: int,
) -> dict[str, float]:
    """EE, DIE(S) and DIE(model) at the quarter turn (the release's definitions), EE averaged over the twins, and
    ``ee_latent``: the same ratio for the latents ``E(S(.))`` where the model's latent carries a group action.

    ``s``, ``z``, ``pred``, ``target``: the SEN outputs and latents of the observations, the predictions
    and the true latents, computed once by :func:`evaluate` (the SEN runs once per image).
    """
    twin_obs = batch["twin_obs"]  # [N, G, H, W, C]
    act = lambda g, v: model.symmetry.act_on_embedding(g, v)  # noqa: E731
    twin_s = [_batched(model.embed, twin_obs[:, j], batch_size=batch_size, device=device) for j in range(len(elements))]
    out: dict[str, float] = {}
    if len(elements) > 1:
        out["ee_mean_g"] = mean_equivariance_error(lambda v: v, s, list(zip(elements, twin_s)), act, batch_size=len(s))
    if quarter is None:
        return out
    g, j = elements[quarter], quarter
    out["ee"] = equivariance_error(lambda v: v, s, twin_s[j], act, g, batch_size=len(s))
    gen = torch.Generator().manual_seed(seed)
    out["die_sen"] = batch_distance_invariance_error(s, twin_s[j], gen)
    twin_z = _batched(model.encoder, twin_s[j], batch_size=batch_size, device=device)
    try:  # does the latent carry a group action? ('none' variants raise here)
        model.symmetry.act_on_latent(g, z[:1])
    except ValueError:
        pass
    else:  # EE of the whole encoder E(S(.)) against the latent's group action (not the release's EE, which is the SEN's)
        out["ee_latent"] = equivariance_error(lambda v: v, z, twin_z, model.symmetry.act_on_latent, g, batch_size=len(z))
    twin_pred = _batched(model.rollout, twin_z, batch["twin_actions"][:, j], batch_size=batch_size, device=device)
    twin_target = _batched(model.encode, batch["twin_next_obs"][:, j], batch_size=batch_size, device=device)
    out["die_model"] = release_distance_invariance_error(pred, target, twin_pred, twin_target, z, gen)
    return out


@torch.no_grad()
def evaluate(
    model: WorldModel,
    dataset: str | os.PathLike,
    horizon: int,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    seed: int = 0,
    hard_negatives: int = 0,
    progress: bool = False,
    distinct_targets: bool = False,
) -> dict[str, float]:
    """The paper's metrics for ``model`` on the rollout file ``dataset`` at ``horizon`` steps.

    ``distinct_targets`` adds ``distinct_hits@k`` / ``distinct_mrr`` (episodes that end in the same
    observation are not each other's negatives; :mod:`symwm.world_models.metrics`) and
    ``distinct_final_obs``, the number of different final observations.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    with open_dataset(dataset, expect_env_id=model.spec.env_id) as f:
        check_compatible(model.spec, f.env_id, f.env_kwargs, f"evaluation data {dataset}", f.obs_shape)
        has_twins = f.n_twins > 0
        elements = f.twin_elements() if has_twins else []
        wants_pose = model.symmetry.has_pose and f.has_states
        env = f.make_env() if hard_negatives or has_twins or wants_pose else None
    key = pose_key(env) if wants_pose else None
    if hard_negatives:
        hard_negative_key(env)  # before the rankings: an env without a pose fails at once
    quarter = _quarter_turn_index(env, elements) if has_twins else None
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    paths = PathDataset(dataset, horizon, twins=has_twins, states=hard_negatives > 0 or key is not None, expect_env_id=model.spec.env_id)
    batch = next(iter(DataLoader(paths, batch_size=len(paths))))  # evaluation sets are small: one batch in memory
    obs, actions, next_obs = batch["obs"], batch["actions"], batch["next_obs"]

    bar = (lambda what: f"{what} ({len(paths)} episodes)") if progress else (lambda what: None)  # noqa: E731
    s = _batched(model.embed, obs, batch_size=batch_size, device=device, desc=bar("SEN"))  # V of the first observations
    z = _batched(model.encoder, s, batch_size=batch_size, device=device)  # [N, K, D]
    pred = _batched(model.rollout, z, actions, batch_size=batch_size, device=device, desc=bar(f"{horizon}-step predictions"))
    target = _batched(model.encode, next_obs, batch_size=batch_size, device=device, desc=bar("true latents"))
    results: dict[str, float] = {"episodes": float(len(paths)), "horizon": float(horizon)}
    ids = identical_rows(next_obs) if distinct_targets else None
    ranks, distinct = ranks_with_and_without_ids(pred, target, ids)  # one pass over the N x N distances for both
    results.update(metrics_from_ranks(ranks))
    if target.dim() == 3 and target.shape[1] > 1 and target.shape[0] > 1:  # [N, K, D] with K objects
        results["slot_usage"] = slot_usage(target)
    if key is not None:  # the SEN's reading of the first observations' poses
        results.update(pose_error(model.symmetry.pose(s), batch["states"][key]))
    if distinct is not None:
        results["distinct_final_obs"] = float(int(ids.max()) + 1)
        results.update({f"distinct_{k}": v for k, v in metrics_from_ranks(distinct).items()})

    if hard_negatives:
        rng = np.random.default_rng(seed)
        states = {k: v.numpy() for k, v in batch["next_states"].items()}
        neg_obs = hard_negative_observations(env, states, hard_negatives, rng)  # [N, M, H, W, C]
        n, m = neg_obs.shape[:2]
        neg = _batched(model.encode, neg_obs.flatten(0, 1), batch_size=batch_size, device=device)
        hard = hard_ranking_metrics(pred, target, neg.reshape(n, m, *neg.shape[1:]), ks=(1,))
        results.update({f"hard_{k}": v for k, v in hard.items()})

    if has_twins:
        results.update(_twin_metrics(model, batch, elements, quarter, s, z, pred, target, batch_size, device, seed))
    return results


def format_table(rows: dict[str, dict[str, float]], title: str | None = None) -> str:
    """Markdown table, one row per model: Hits@k and MRR in %, EE and DIE as ratios (DIE x 1e-3)."""
    cols = [c for c in COLUMNS if any(c in r for r in rows.values())]
    heads = {"ee": "EE", "ee_mean_g": "EE mean over g", "die_sen": "DIE(S) x1e-3", "die_model": "DIE(model) x1e-3", "slot_usage": "slot usage", "pose_error_deg": "pose error (deg)"}
    lines = [f"### {title}", ""] if title else []
    lines.append("| model | " + " | ".join(heads.get(c, c.replace("_", " ").replace("hits", "Hits").replace("mrr", "MRR") + " %") for c in cols) + " |")
    lines.append("|---" * (len(cols) + 1) + "|")
    for name, r in rows.items():
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("" if v is None else f"{v * 1e3:.1f}" if c.startswith("die") else f"{v:.3f}" if c.startswith("ee") or c == "slot_usage" else f"{v:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows: dict[str, dict[str, float]], out_dir: str | os.PathLike, stem: str = "eval", title: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.csv`` atomically; returns their paths."""
    if not stem or Path(stem).name != stem or stem in (".", ".."):
        raise ValueError(f"stem must be a plain file name without directories, got {stem!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, cs = out / f"{stem}.md", out / f"{stem}.csv"
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(format_table(rows, title))
    os.replace(tmp, md)
    keys = sorted({k for r in rows.values() for k in r})
    tmp = cs.with_name(f".{cs.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", *keys])
        for name, r in rows.items():
            w.writerow([name, *(r.get(k, "") for k in keys)])
    os.replace(tmp, cs)
    return md, cs
