"""The paper's evaluation metrics: Hits@k / MRR, hard Hits@k, equivariance error (EE), distance invariance error (DIE).

Pure torch: every function takes tensors (and, for EE, callables), never datasets or models, so
the evaluation code decides how latents are produced. Distances and norms are taken over all
non-batch dimensions and computed in float64. The N x N distance matrix of the ranking metrics is
built a block of rows at a time, so N ~ 10,000 fits in memory. Randomness (pairs for DIE) comes
only from an explicit ``torch.Generator``.

Conventions (Park et al., ICML 2022, restated in ``paper-notes.md``):

* **Ranks** are 1 + the number of candidates *strictly* closer than the true one: ties are
  broken in favour of the true match (as in C-SWM). A consequence worth knowing: a collapsed
  model whose predictions are all identical scores Hits@1 = 100 on :func:`ranking_metrics`;
  look at the DIE / EE numbers or the energy of negatives before trusting such a result.
* **Distances** are squared Euclidean over all non-batch dims; for latents ``[N, K, D]`` that is
  the sum over K and D, i.e. ``2 sigma^2 K`` times :func:`symwm.world_models.model.energy`, so the
  ranking is the ranking by energy.
* Percentages are in 0..100; EE and DIE are plain ratios (the paper reports DIE x 1e-3).
* The authors' release measures EE and DIE at one element, the quarter turn, and pairs each
  prediction with a random *true* latent for DIE(model)
  (:func:`release_distance_invariance_error`); the paper's figures follow that definition. An
  average of EE over several elements (:func:`mean_equivariance_error`) is a different number.
* **Distinct targets** (``distinct_hits@k``, ``distinct_mrr``; not in the paper or the release): in
  an environment with few states, many evaluation episodes end in the *same* observation, and the
  prediction of each of them is a fair answer for the others. Ranked the release's way, a perfect
  model then scores about ``1 / (episodes per final observation)``. :func:`retrieval_ranks` with
  ``target_ids`` (:func:`identical_rows` of the final observations) leaves the predictions of
  episodes with the same final observation out of each other's candidates.
* Non-finite inputs raise ``ValueError``: NaN distances compare as "not closer", which would
  silently rank a diverged model first.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from symwm.envs.groups import geodesic_distances, nearest_rotation

#: blocks of rows are sized to hold about this many float64 values (distances, or candidate features)
DEFAULT_BLOCK_ENTRIES = 1 << 22


# ----------------------------------------------------------------------------------------------
# Ranking: Hits@k and MRR
# ----------------------------------------------------------------------------------------------


def _flat64(x: torch.Tensor, name: str) -> torch.Tensor:
    """``[N, ...]`` -> float64 ``[N, F]``, refusing non-finite values."""
    if x.dim() < 1:
        raise ValueError(f"{name} needs a batch dimension, got a scalar")
    flat = x.detach().reshape(x.shape[0], math.prod(x.shape[1:])).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return flat


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[..., P, F] x [..., Q, F] -> [..., P, Q]``.

    Computed pair by pair (no ``|a|^2 + |b|^2 - 2ab`` expansion), so equal vectors give bit-equal
    distances and ties are real ties.
    """
    return torch.cdist(a, b, p=2.0, compute_mode="donot_use_mm_for_euclid_dist").square()


def identical_rows(x: torch.Tensor) -> torch.Tensor:
    """int64 ``[N]``: equal ids for equal rows of ``x`` ``[N, ...]`` (e.g. the final observations of episodes)."""
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"identical_rows needs a non-empty batch, got shape {tuple(x.shape)}")
    return torch.unique(x.reshape(x.shape[0], -1), dim=0, return_inverse=True)[1]


def retrieval_ranks(
    pred: torch.Tensor, target: torch.Tensor, chunk_size: int | None = None, target_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Rank of the true prediction for each target among all N predictions: int64 ``[N]``, 1 is best.

    For target ``n``, every prediction ``j`` is scored by ``||target_n - pred_j||^2`` (sum over all
    non-batch dims); ``rank_n = 1 + #{j : d(n, j) < d(n, n)}`` (ties favour the true match).
    ``target_ids`` ``[N]``: predictions ``j`` with ``target_ids[j] == target_ids[n]`` are not
    candidates for ``n`` (episodes that end in the same observation; see "Distinct targets").
    ``chunk_size`` rows of the N x N matrix are held at a time (default: about 4M entries).
    """
    plain, distinct = ranks_with_and_without_ids(pred, target, target_ids, chunk_size)
    return plain if distinct is None else distinct


def ranks_with_and_without_ids(
    pred: torch.Tensor, target: torch.Tensor, target_ids: torch.Tensor | None, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`retrieval_ranks` without and with ``target_ids`` from one pass over the distances (``None`` without ids)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    p, t = _flat64(pred, "pred"), _flat64(target, "target")  # [N, F]
    n = p.shape[0]
    if n == 0:
        raise ValueError("ranking needs at least one sample")
    if target_ids is not None and tuple(target_ids.shape) != (n,):
        raise ValueError(f"target_ids must have shape [{n}], got {tuple(target_ids.shape)}")
    ids = None if target_ids is None else target_ids.to(p.device)
    rows = chunk_size if chunk_size is not None else max(1, DEFAULT_BLOCK_ENTRIES // n)
    if rows < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    plain = torch.empty(n, dtype=torch.int64, device=p.device)
    distinct = None if ids is None else torch.empty(n, dtype=torch.int64, device=p.device)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        d = _sq_dists(t[i0:i1], p)  # [r, N]
        local = torch.arange(i1 - i0, device=p.device)
        true = d[local, local + i0]  # [r], taken from the same matrix so ties are exact
        closer = d < true[:, None]  # [r, N]
        plain[i0:i1] = 1 + closer.sum(dim=1)
        if distinct is not None:
            closer &= ids[i0:i1, None] != ids[None, :]  # the same final observation: not a wrong answer
            distinct[i0:i1] = 1 + closer.sum(dim=1)
    return plain, distinct


def metrics_from_ranks(ranks: torch.Tensor, ks: Iterable[int] = (1, 5, 10)) -> dict[str, float]:
    """``{"hits@k": % of ranks <= k for each k, "mrr": 100 * mean(1 / rank)}`` from 1-based ranks."""
    r = ranks.detach().to(torch.float64)
    n = r.numel()
    if n == 0:
        raise ValueError("no ranks given")
    out = {f"hits@{int(k)}": 100.0 * int((r <= k).sum()) / n for k in ks}
    out["mrr"] = 100.0 * float((1.0 / r).mean())
    return out


def ranking_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    target_ids: torch.Tensor | None = None,
) -> dict[str, float]:
    """Hits@k and MRR in percent of predicted vs true latents ``[N, ...]`` (the paper's main metric).

    ``pred[n]`` is the h-step prediction of episode ``n`` (``z_{t+1} = z_t + T(z_t, a_t)`` rolled
    from the encoded first observation), ``target[n]`` the encoding of its true observation after
    h steps. Ranks as in :func:`retrieval_ranks`; keys ``"hits@1"``, ``"hits@5"``, ..., ``"mrr"``.
    """
    return metrics_from_ranks(retrieval_ranks(pred, target, chunk_size, target_ids), ks)


# ----------------------------------------------------------------------------------------------
# Hard Hits@k: negatives drawn close to the true next state
# ----------------------------------------------------------------------------------------------


def hard_ranks(
    pred: torch.Tensor,
    target: torch.Tensor,
    negatives: torch.Tensor,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Rank of the true next latent among ``{target_n} U {negatives_n,m}`` by distance to ``pred_n``: ``[N]``.

    ``negatives`` ``[N, M, ...]`` are latents of states drawn close to the true next state (for the
    rotating object: orientations near the true one). ``rank_n = 1 + #{m : d(pred_n, neg_n,m) <
    d(pred_n, target_n)}``, squared Euclidean over all non-batch dims, ties favour the true one.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if negatives.dim() != pred.dim() + 1 or negatives.shape[0] != pred.shape[0] or negatives.shape[2:] != pred.shape[1:]:
        raise ValueError(
            f"negatives must have shape [N, M, *pred.shape[1:]] = [{pred.shape[0]}, M, "
            f"{', '.join(map(str, pred.shape[1:]))}], got {tuple(negatives.shape)}"
        )
    p, t = _flat64(pred, "pred"), _flat64(target, "target")  # [N, F]
    (n, f), m = p.shape, negatives.shape[1]
    neg = _flat64(negatives.reshape(n * m, *pred.shape[1:]), "negatives").reshape(n, m, f)  # [N, M, F]
    if n == 0:
        raise ValueError("hard ranking needs at least one sample")
    rows = chunk_size if chunk_size is not None else max(1, DEFAULT_BLOCK_ENTRIES // ((m + 1) * max(1, f)))
    if rows < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out = torch.empty(n, dtype=torch.int64, device=p.device)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        cand = torch.cat([t[i0:i1, None], neg[i0:i1]], dim=1)  # [r, 1 + M, F], the true one first
        d = _sq_dists(p[i0:i1, None], cand)[:, 0]  # [r, 1 + M]
        out[i0:i1] = 1 + (d[:, 1:] < d[:, :1]).sum(dim=1)
    return out


def hard_ranking_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    negatives: torch.Tensor,
    ks: Sequence[int] = (1,),
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Hard Hits@k and hard MRR in percent over the candidates of :func:`hard_ranks`."""
    return metrics_from_ranks(hard_ranks(pred, target, negatives, chunk_size), ks)


def hard_hits_at_k(pred: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor, k: int = 1) -> float:
    """Hard Hits@k in percent: share of samples whose true next latent ranks <= k among itself and its negatives."""
    return hard_ranking_metrics(pred, target, negatives, ks=(k,))[f"hits@{int(k)}"]


# ----------------------------------------------------------------------------------------------
# Equivariance error of the SEN
# ----------------------------------------------------------------------------------------------


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each sample over all non-batch dims, float64 ``[N]``."""
    return x.detach().reshape(x.shape[0], math.prod(x.shape[1:])).to(torch.float64).norm(dim=1)


def _twin_list(twins: Mapping[Any, torch.Tensor] | Sequence[tuple[Any, torch.Tensor]]) -> list[tuple[Any, torch.Tensor]]:
    """``{g: twin_obs}`` or ``[(g, twin_obs), ...]`` -> list of pairs."""
    items = list(twins.items()) if isinstance(twins, Mapping) else [tuple(p) for p in twins]
    if not items:
        raise ValueError("no group elements given")
    return items  # type: ignore[return-value]


@torch.no_grad()
def equivariance_errors(
    embed: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    twins: Mapping[Any, torch.Tensor] | Sequence[tuple[Any, torch.Tensor]],
    act: Callable[[Any, torch.Tensor], torch.Tensor],
    batch_size: int | None = None,
) -> list[float]:
    """EE of ``embed`` for each group element of ``twins``, in the order given (see :func:`equivariance_error`).

    ``S(obs)`` is computed once per batch of ``batch_size`` samples and reused for every ``g``.
    """
    items = _twin_list(twins)
    n = obs.shape[0]
    for g, tw in items:
        if tw.shape[0] != n:
            raise ValueError(f"twin observations for {g!r} have {tw.shape[0]} samples, obs has {n}")
    if n == 0:
        raise ValueError("equivariance error needs at least one sample")
    step = batch_size or n
    err_sums = [0.0] * len(items)
    norm_sum = 0.0
    for i0 in range(0, n, step):
        v = embed(obs[i0 : i0 + step])  # S(s): [b, ...]
        norm_sum += float(_norms(v).sum())
        for j, (g, tw) in enumerate(items):
            diff = act(g, v) - embed(tw[i0 : i0 + step])  # rho_V(g) S(s) - S(g s)
            err_sums[j] += float(_norms(diff).sum())
    if norm_sum == 0.0:
        return [float("nan")] * len(items)
    return [e / norm_sum for e in err_sums]  # (sum_err / n) / (sum_norm / n)


def equivariance_error(
    embed: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    twin_obs: torch.Tensor,
    act: Callable[[Any, torch.Tensor], torch.Tensor],
    g: Any,
    batch_size: int | None = None,
) -> float:
    """EE(S) for one group element: ``mean_n ||rho_V(g) S(s_n) - S(g s_n)|| / mean_n ||S(s_n)||``.

    ``embed`` is the SEN on observations (e.g. ``WorldModel.embed``), ``act(g, v)`` is ``rho_V(g)`` on
    a batch of its outputs (e.g. ``model.symmetry.act_on_embedding``). ``twin_obs[n]`` must be the
    environment's rendering of the transformed state ``g . s_n`` -- not a pixel transform of
    ``obs[n]``, which is exactly what the SEN may not assume. Norms over all non-batch dims; NaN
    when every ``S(s_n)`` is zero. Evaluate in eval mode (BatchNorm).
    """
    return equivariance_errors(embed, obs, [(g, twin_obs)], act, batch_size)[0]


def mean_equivariance_error(
    embed: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    twins: Mapping[Any, torch.Tensor] | Sequence[tuple[Any, torch.Tensor]],
    act: Callable[[Any, torch.Tensor], torch.Tensor],
    batch_size: int | None = None,
) -> float:
    """EE(S) averaged over group elements: ``twins`` maps each ``g`` to the renderings of ``g . s``.

    Pass every element of a finite group (the identity included, to average over all of G) or a
    Haar sample for SO(3); a list of pairs is needed when elements are unhashable (matrices).
    """
    errs = equivariance_errors(embed, obs, twins, act, batch_size)
    return sum(errs) / len(errs)


# ----------------------------------------------------------------------------------------------
# Distance invariance error
# ----------------------------------------------------------------------------------------------


def random_pairs(
    n: int, generator: torch.Generator, num_pairs: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs ``(idx1, idx2)`` into a batch of ``n`` with ``idx1 != idx2`` everywhere.

    By default ``idx1 = arange(n)`` (every sample once) and each ``idx2`` is uniform over the other
    ``n - 1`` samples; with ``num_pairs``, ``idx1`` is drawn uniformly too. Deterministic given the
    generator; tensors live on the generator's device.
    """
    if n < 2:
        raise ValueError(f"random pairs need at least 2 samples, got {n}")
    dev = generator.device
    if num_pairs is None:
        idx1 = torch.arange(n, device=dev)
    else:
        idx1 = torch.randint(0, n, (num_pairs,), generator=generator, device=dev)
    shift = torch.randint(1, n, idx1.shape, generator=generator, device=dev)  # 1..n-1
    return idx1, (idx1 + shift) % n


def distance_invariance_error(
    f_x: torch.Tensor, f_x2: torch.Tensor, f_gx: torch.Tensor, f_gx2: torch.Tensor
) -> float:
    """DIE: ``mean_pairs | ||f(s) - f(s2)|| - ||f(g s) - f(g s2)|| |`` divided by ``mean ||f(s)||``.

    Row ``i`` of the four ``[N, ...]`` tensors is one pair ``(s_i, s2_i)`` and its transformed twin
    ``(g s_i, g s2_i)`` (``g`` may differ between rows). It needs no group action on the feature
    space, so it also scores non-equivariant models: an ``f`` that is equivariant under an isometric
    representation has DIE 0. The normaliser is the mean norm of ``f_x`` (NaN if it is zero).

    * DIE(S): ``f`` = SEN outputs of observations and of the rendered twins.
    * DIE(model): ``f`` = the model's h-step predicted latent from ``(s_0, a_0 .. a_{h-1})``; its twin
      is the prediction from ``(g s_0, rho_A(g) a_0 .. rho_A(g) a_{h-1})``. Distances among the
      predictions of original episodes are compared with distances among the predictions of their
      twin episodes; normalised by the mean predicted latent norm.
    """
    shapes = {tuple(t.shape) for t in (f_x, f_x2, f_gx, f_gx2)}
    if len(shapes) != 1:
        raise ValueError(f"DIE inputs must share one shape, got {sorted(shapes)}")
    if f_x.shape[0] == 0:
        raise ValueError("DIE needs at least one pair")
    d = _norms(f_x - f_x2)  # [N]
    d_g = _norms(f_gx - f_gx2)  # [N]
    scale = float(_norms(f_x).mean())
    if scale == 0.0:
        return float("nan")
    return float((d - d_g).abs().mean()) / scale


def batch_distance_invariance_error(
    f: torch.Tensor, f_g: torch.Tensor, generator: torch.Generator, num_pairs: int | None = None
) -> float:
    """DIE over random pairs of a batch: ``f[n]`` the features of ``s_n``, ``f_g[n]`` those of its twin ``g s_n``.

    Pairs come from :func:`random_pairs` (by default every sample is once the first of a pair, so
    the normaliser is the mean norm over the whole batch).
    """
    if f.shape != f_g.shape:
        raise ValueError(f"f and f_g shapes differ: {tuple(f.shape)} vs {tuple(f_g.shape)}")
    i, j = random_pairs(f.shape[0], generator, num_pairs)
    i, j = i.to(f.device), j.to(f.device)
    return distance_invariance_error(f[i], f[j], f_g[i], f_g[j])


def release_distance_invariance_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    twin_pred: torch.Tensor,
    twin_target: torch.Tensor,
    current: torch.Tensor,
    generator: torch.Generator,
) -> float:
    """DIE(model) as the authors' release computes it, for one group element ``g``.

    Each prediction is paired with the *true* latent of a random episode (a random permutation,
    which may pick the episode itself): ``mean_i | ||pred_i - target_p(i)|| - ||twin_pred_i -
    twin_target_p(i)|| |`` divided by the mean norm of ``current`` (the encoded first
    observations). ``twin_*`` come from the episodes' twins at ``g`` (``g.s_0``, ``rho_A(g) a_t``).
    """
    shapes = {tuple(t.shape) for t in (pred, target, twin_pred, twin_target)}
    if len(shapes) != 1:
        raise ValueError(f"DIE inputs must share one shape, got {sorted(shapes)}")
    if current.shape[0] != pred.shape[0] or pred.shape[0] == 0:
        raise ValueError(f"current latents ({current.shape[0]}) and predictions ({pred.shape[0]}) must be the same non-empty batch")
    perm = torch.randperm(pred.shape[0], generator=generator).to(pred.device)
    d = _norms(pred - target[perm])  # [N]
    d_g = _norms(twin_pred - twin_target[perm])  # [N]
    scale = float(_norms(current).mean())
    if scale == 0.0:
        return float("nan")
    return float((d - d_g).abs().mean()) / scale


# ----------------------------------------------------------------------------------------------
# Pose error of an SO(3) SEN (not in the paper or the release)
# ----------------------------------------------------------------------------------------------


def pose_error(estimated: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """How well SEN rotations ``[N, 3, 3]`` read the true poses ``[N, 3, 3]``: geodesic error in degrees.

    An equivariant SEN (``S(g x) = g S(x)``) maps the object in pose ``R`` to ``R C`` with ``C`` the
    SEN's output at the identity pose, a constant it is free to choose. So the estimates are aligned
    by the best constant right factor, ``C = argmin sum_i ||R_i C - S_i||_F^2`` (the rotation
    nearest to ``sum_i R_i^T S_i``), and ``pose_error_deg`` / ``pose_error_median_deg`` are the mean
    and median angle between ``R_i C`` and ``S_i``. Scale: on the rotating object a model with 3
    degrees of error reaches Hard Hits@1 100 %, one with 6 degrees about 27 % (issue 12).
    """
    if estimated.shape != true.shape or estimated.dim() != 3 or tuple(estimated.shape[1:]) != (3, 3) or len(true) == 0:
        raise ValueError(f"pose_error needs estimated and true rotations of one shape [N, 3, 3], got {tuple(estimated.shape)} and {tuple(true.shape)}")
    s = _flat64(estimated, "estimated poses").reshape(-1, 3, 3).cpu().numpy()
    r = _flat64(true, "true poses").reshape(-1, 3, 3).cpu().numpy()
    c = nearest_rotation(np.einsum("nji,njk->ik", r, s))  # sum_i R_i^T S_i
    angles = np.degrees(geodesic_distances(r @ c, s))  # [N]
    return {"pose_error_deg": float(angles.mean()), "pose_error_median_deg": float(np.median(angles))}


def linear_pose_fit(estimated: torch.Tensor, true: torch.Tensor) -> dict[str, Any]:
    """How much of SEN outputs ``[N, 3, k]`` is the equivariant function ``R C`` of the true poses ``[N, 3, 3]``, and the rank of ``C``.

    ``C = argmin sum_i ||R_i C - S_i||^2 = mean_i R_i^T S_i`` (rotations are orthogonal), any ``3 x k``
    matrix. ``fit_residual``: the unexplained share ``sum ||R_i C - S_i||^2 / sum ||S_i||^2`` (0: the
    outputs transform exactly like the pose; 1: unrelated). ``singular_values`` of ``C``: three
    comparable ones when the outputs carry the whole pose; one when they carry only the direction of
    one body axis (``R c``), which a matrix-multiplication transition predicts just as well but which
    cannot tell poses apart that differ by a turn about that axis.
    """
    if estimated.dim() != 3 or estimated.shape[1] != 3 or true.shape != (len(estimated), 3, 3) or len(true) == 0:
        raise ValueError(f"linear_pose_fit needs outputs [N, 3, k] and true rotations [N, 3, 3], got {tuple(estimated.shape)} and {tuple(true.shape)}")
    s = _flat64(estimated, "SEN outputs").reshape(estimated.shape).cpu().numpy()
    r = _flat64(true, "true poses").reshape(-1, 3, 3).cpu().numpy()
    c = np.einsum("nji,njk->ik", r, s) / len(r)  # [3, k]
    residual = float(((r @ c - s) ** 2).sum() / max((s ** 2).sum(), 1e-300))
    return {"fit_residual": residual, "singular_values": [float(v) for v in np.linalg.svd(c, compute_uv=False)]}


# ----------------------------------------------------------------------------------------------
# Collapse of object slots
# ----------------------------------------------------------------------------------------------


def slot_usage(z: torch.Tensor) -> float:
    """How much the least-used object slot varies: ``min_k std_k / median_k std_k`` for latents ``[N, K, D]``.

    ``std_k`` is the standard deviation of slot ``k`` over the batch, averaged over D. About 1 when
    every slot encodes its object; near 0 when a slot stays constant, i.e. encodes nothing (a model
    that never bound one of its objects; the release's whole-state hinge does not prevent it). A slot
    that copies another slot's object varies normally and is not caught by this number.
    """
    if z.dim() != 3 or z.shape[0] < 2:
        raise ValueError(f"slot_usage needs latents [N >= 2, K, D], got shape {tuple(z.shape)}")
    std = z.detach().to(torch.float64).std(dim=0).mean(dim=-1)  # [K]
    median = float(std.median())
    return float(std.min()) / median if median > 0 else 0.0
