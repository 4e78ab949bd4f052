"""Metrics on hand-made cases with known answers, and against brute-force loops written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from symwm.envs.groups import SO3, Dihedral, DihedralElement, transform_grid
from symwm.world_models.metrics import (
    batch_distance_invariance_error,
    distance_invariance_error,
    equivariance_error,
    equivariance_errors,
    hard_hits_at_k,
    hard_ranking_metrics,
    hard_ranks,
    identical_rows,
    mean_equivariance_error,
    metrics_from_ranks,
    linear_pose_fit,
    pose_error,
    random_pairs,
    ranking_metrics,
    ranks_with_and_without_ids,
    retrieval_ranks,
    slot_usage,
)
from symwm.world_models.model import energy


def brute_force_ranks(pred: np.ndarray, target: np.ndarray) -> list[int]:
    """For each target n: 1 + number of predictions strictly closer to it than pred n."""
    n = pred.shape[0]
    p, t = pred.reshape(n, -1).astype(np.float64), target.reshape(n, -1).astype(np.float64)
    ranks = []
    for i in range(n):
        dists = [float(np.sum((t[i] - p[j]) ** 2)) for j in range(n)]
        ranks.append(1 + sum(1 for j in range(n) if dists[j] < dists[i]))
    return ranks


def brute_force_metrics(ranks: list[int], ks) -> dict[str, float]:
    out = {f"hits@{k}": 100.0 * sum(r <= k for r in ranks) / len(ranks) for k in ks}
    out["mrr"] = 100.0 * sum(1.0 / r for r in ranks) / len(ranks)
    return out


# ----------------------------------------------------------------------------------------------
# Hits@k / MRR
# ----------------------------------------------------------------------------------------------


def test_perfect_predictions_score_100():
    z = torch.randn(20, 5, 4, generator=torch.Generator().manual_seed(0))
    m = ranking_metrics(z, z.clone())
    assert m == {"hits@1": 100.0, "hits@5": 100.0, "hits@10": 100.0, "mrr": 100.0}


def test_pairwise_swapped_predictions():
    target = torch.eye(4).reshape(4, 1, 4)  # well separated, all pairwise distances 2
    pred = target[[1, 0, 3, 2]]  # each prediction is its partner's target
    # target 0: pred 1 is at distance 0 (closer), preds 0, 2, 3 all at distance 2 (tie -> true wins)
    assert retrieval_ranks(pred, target).tolist() == [2, 2, 2, 2]
    m = ranking_metrics(pred, target)
    assert m["hits@1"] == 0.0
    assert m["hits@5"] == 100.0 and m["hits@10"] == 100.0
    assert m["mrr"] == pytest.approx(50.0)


def test_known_ranks_on_a_line():
    # 1-D latents: targets at 0, 10, 20, 30; predictions chosen so the ranks are 1, 2, 3, 4
    target = torch.tensor([0.0, 10.0, 20.0, 30.0]).reshape(4, 1, 1)
    pred = torch.tensor([1.0, 1.0, 12.0, 19.0]).reshape(4, 1, 1)
    # t0=0: d = 1, 1, 144, 361 -> pred0 tied with pred1 -> rank 1
    # t1=10: d = 81, 81, 4, 81 -> pred2 closer -> rank 2
    # t2=20: d = 361, 361, 64, 1 -> pred2 (64) vs pred3 (1) closer -> rank 2
    # t3=30: d = 841, 841, 324, 121 -> pred3 is the closest -> rank 1
    assert retrieval_ranks(pred, target).tolist() == [1, 2, 2, 1]
    m = ranking_metrics(pred, target, ks=(1, 2))
    assert m == pytest.approx({"hits@1": 50.0, "hits@2": 100.0, "mrr": 75.0})


def test_ties_favour_the_true_match():
    target = torch.randn(6, 3, 2, generator=torch.Generator().manual_seed(1))
    pred = torch.ones(6, 3, 2)  # all predictions identical: every distance in a row ties
    m = ranking_metrics(pred, target)
    assert m["hits@1"] == 100.0 and m["mrr"] == 100.0


@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_chunked_equals_unchunked(chunk):
    g = torch.Generator().manual_seed(2)
    target = torch.randn(50, 5, 4, generator=g)
    pred = target + 0.8 * torch.randn(50, 5, 4, generator=g)
    full = retrieval_ranks(pred, target, chunk_size=50)
    assert torch.equal(retrieval_ranks(pred, target, chunk_size=chunk), full)
    assert torch.equal(retrieval_ranks(pred, target), full)


def test_ranks_match_brute_force_loop():
    g = torch.Generator().manual_seed(3)
    target = torch.randn(60, 4, 8, generator=g)
    pred = target + 1.0 * torch.randn(60, 4, 8, generator=g)
    pred[10] = pred[11]  # a duplicated prediction: exact ties with another column
    ranks = retrieval_ranks(pred, target, chunk_size=7)
    expected = brute_force_ranks(pred.numpy(), target.numpy())
    assert ranks.tolist() == expected
    assert len(set(expected)) > 3  # the case is not trivial
    m = ranking_metrics(pred, target, ks=(1, 5, 10), chunk_size=7)
    assert m == pytest.approx(brute_force_metrics(expected, (1, 5, 10)))


def test_ranking_by_distance_is_ranking_by_energy():
    g = torch.Generator().manual_seed(4)
    target = torch.randn(30, 5, 8, generator=g)
    pred = target + torch.randn(30, 5, 8, generator=g)
    e = energy(target[:, None].expand(-1, 30, -1, -1).reshape(-1, 5, 8), pred.repeat(30, 1, 1)).reshape(30, 30)
    by_energy = 1 + (e < e.diagonal()[:, None]).sum(1)
    assert torch.equal(retrieval_ranks(pred, target), by_energy)


def test_ranking_rejects_bad_inputs():
    z = torch.zeros(4, 2, 3)
    with pytest.raises(ValueError, match="shapes differ"):
        ranking_metrics(z, torch.zeros(4, 3, 2))
    bad = z.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(bad, z)  # NaN would otherwise rank first
    with pytest.raises(ValueError, match="chunk_size"):
        retrieval_ranks(z, z, chunk_size=0)


def test_distinct_targets_leave_episodes_with_the_same_final_observation_out_of_each_others_candidates():
    images = torch.tensor([[[1, 2]], [[1, 2]], [[3, 4]], [[1, 2]], [[5, 6]]], dtype=torch.uint8)  # episodes 0, 1, 3 end alike
    ids = identical_rows(images)
    assert ids[0] == ids[1] == ids[3] and len({int(ids[0]), int(ids[2]), int(ids[4])}) == 3
    target = torch.tensor([[0.0], [0.0], [5.0], [0.0], [10.0]])
    pred = torch.tensor([[0.3], [0.0], [5.0], [0.1], [9.0]])  # 1 and 3 are closer to 0's target than 0 is
    assert retrieval_ranks(pred, target).tolist() == [3, 1, 1, 2, 1]  # the release's ranking
    assert retrieval_ranks(pred, target, target_ids=ids).tolist() == [1, 1, 1, 1, 1]
    assert retrieval_ranks(pred, target, chunk_size=2, target_ids=ids).tolist() == [1, 1, 1, 1, 1]
    wrong = torch.tensor([[0.0], [0.0], [0.4], [0.0], [10.0]])  # a different final observation still counts as wrong
    assert retrieval_ranks(pred, wrong, target_ids=ids).tolist() == [1, 1, 4, 1, 1]
    # both rankings from one pass over the distances, as evaluate() asks for them
    plain, distinct = ranks_with_and_without_ids(pred, target, ids, chunk_size=2)
    assert plain.tolist() == [3, 1, 1, 2, 1] and distinct.tolist() == [1, 1, 1, 1, 1]
    assert ranks_with_and_without_ids(pred, target, None)[1] is None
    assert ranking_metrics(pred, target, ks=(1,), target_ids=ids)["hits@1"] == 100.0
    with pytest.raises(ValueError, match="target_ids"):
        retrieval_ranks(pred, target, target_ids=ids[:3])


def test_metrics_from_ranks():
    m = metrics_from_ranks(torch.tensor([1, 2, 4, 10]), ks=(1, 3))
    assert m == pytest.approx({"hits@1": 25.0, "hits@3": 50.0, "mrr": 100.0 * (1 + 0.5 + 0.25 + 0.1) / 4})


# ----------------------------------------------------------------------------------------------
# Hard Hits@k
# ----------------------------------------------------------------------------------------------


def test_hard_hits_negatives_farther():
    target = torch.zeros(3, 1, 2)
    pred = target + 0.1
    negatives = target[:, None] + torch.tensor([1.0, -2.0, 3.0]).reshape(1, 3, 1, 1)  # [3, 3, 1, 2]
    assert hard_hits_at_k(pred, target, negatives, k=1) == 100.0
    assert hard_ranking_metrics(pred, target, negatives)["mrr"] == 100.0


def test_hard_hits_one_negative_closer():
    target = torch.zeros(2, 1, 2)
    pred = torch.full((2, 1, 2), 1.0)  # distance^2 to target: 2
    negatives = torch.stack([torch.full((2, 1, 2), 0.9), torch.full((2, 1, 2), 5.0)], dim=1)  # d^2: 0.02, 32
    assert hard_ranks(pred, target, negatives).tolist() == [2, 2]
    assert hard_hits_at_k(pred, target, negatives, k=1) == 0.0
    assert hard_hits_at_k(pred, target, negatives, k=2) == 100.0
    assert hard_ranking_metrics(pred, target, negatives, ks=(1, 2))["mrr"] == pytest.approx(50.0)


def test_hard_hits_ties_favour_true_and_no_negatives():
    target = torch.zeros(2, 1, 2)
    pred = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    negatives = (2 * pred)[:, None]  # at the same distance 1 from the prediction
    assert hard_hits_at_k(pred, target, negatives) == 100.0
    assert hard_hits_at_k(pred, target, torch.zeros(2, 0, 1, 2)) == 100.0


def test_hard_ranks_match_brute_force():
    g = torch.Generator().manual_seed(5)
    target = torch.randn(40, 1, 3, generator=g)
    negatives = target[:, None] + 0.5 * torch.randn(40, 9, 1, 3, generator=g)
    pred = target + 0.5 * torch.randn(40, 1, 3, generator=g)
    expected = []
    for n in range(40):
        d_true = float(((pred[n] - target[n]) ** 2).sum())
        expected.append(1 + sum(float(((pred[n] - negatives[n, m]) ** 2).sum()) < d_true for m in range(9)))
    assert hard_ranks(pred, target, negatives, chunk_size=6).tolist() == expected
    assert hard_ranks(pred, target, negatives).tolist() == expected
    assert len(set(expected)) > 2
    with pytest.raises(ValueError, match="negatives must have shape"):
        hard_ranks(pred, target, negatives[:, :, 0])


# ----------------------------------------------------------------------------------------------
# Equivariance error
# ----------------------------------------------------------------------------------------------


def _grid_act(g: DihedralElement, v: torch.Tensor) -> torch.Tensor:
    return transform_grid(g, v, axes=(-2, -1))


def test_equivariant_embed_has_zero_ee_over_d4():
    x = torch.rand(5, 3, 6, 6, generator=torch.Generator().manual_seed(6))
    group = Dihedral(4, reflections=True)
    twins = {g: _grid_act(g, x) for g in group.elements()}
    # the identity embedding commutes with the pixel action used to make the twins
    assert mean_equivariance_error(lambda o: o, x, twins, _grid_act) == 0.0
    # a pointwise nonlinearity and a 1x1 channel mix are equivariant too
    mix = torch.randn(4, 3, generator=torch.Generator().manual_seed(7))

    def embed(o: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.einsum("dc,bchw->bdhw", mix, o))

    errs = equivariance_errors(embed, x, twins, _grid_act, batch_size=2)
    assert max(errs) < 1e-6


def test_ee_with_unhashable_so3_elements():
    # a list of (g, twin) pairs takes matrix elements; points in R^3 rotate with the world
    rng = np.random.default_rng(0)
    pts = torch.randn(8, 2, 3, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    rots = [SO3().sample(rng) for _ in range(5)]
    twins = [(r, pts @ torch.from_numpy(r).T) for r in rots]
    rotate = lambda r, v: v @ torch.from_numpy(r).T  # noqa: E731
    assert mean_equivariance_error(lambda o: o, pts, twins, rotate) < 1e-12
    assert mean_equivariance_error(lambda o: o.norm(dim=-1, keepdim=True), pts, twins, lambda r, v: v) < 1e-12
    assert mean_equivariance_error(lambda o: o, pts, twins, lambda r, v: v) > 0.1


def test_ee_known_value():
    # an embedding claiming invariance (act = identity) although it follows the pixels
    x1 = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # one bright corner: ||x1|| = 1, moved by any rotation
    x2 = torch.full((2, 2), 2.0)  # uniform: ||x2|| = 4, invariant
    obs = torch.stack([x1, x2])[:, None]  # [2, 1, 2, 2]
    r1 = DihedralElement(1)
    twin = _grid_act(r1, obs)
    keep = lambda g, v: v  # noqa: E731
    # errors: ||x1 - r x1|| = sqrt(2), 0; norms 1, 4 -> (sqrt(2) / 2) / (5 / 2) = sqrt(2) / 5
    assert equivariance_error(lambda o: o, obs, twin, keep, r1) == pytest.approx(math.sqrt(2) / 5)
    assert equivariance_error(lambda o: o, obs, twin, keep, r1, batch_size=1) == pytest.approx(math.sqrt(2) / 5)
    # over C4: 0 for the identity, sqrt(2)/5 for each of the three turns
    twins = [(g, _grid_act(g, obs)) for g in Dihedral(4).elements()]
    assert equivariance_errors(lambda o: o, obs, twins, keep) == pytest.approx([0.0] + [math.sqrt(2) / 5] * 3)
    assert mean_equivariance_error(lambda o: o, obs, twins, keep) == pytest.approx(3 * math.sqrt(2) / 20)


def test_ee_uses_rendered_twins_not_pixel_transforms():
    # the "renderer" of g.s draws the object one pixel lower for the rotated state: a rotation of
    # the world that is not a rotation of the image. An equivariant-by-construction pixel map fails.
    obs = torch.zeros(1, 1, 3, 3)
    obs[0, 0, 0, 1] = 1.0  # object at the top centre
    rendered = torch.zeros(1, 1, 3, 3)
    rendered[0, 0, 2, 1] = 1.0  # g = half turn of the world, drawn at the bottom centre: coincides with rot180
    g = DihedralElement(2)
    assert equivariance_error(lambda o: o, obs, rendered, _grid_act, g) == 0.0
    rendered_off = torch.zeros(1, 1, 3, 3)
    rendered_off[0, 0, 2, 2] = 1.0  # a perspective-like renderer puts it elsewhere
    assert equivariance_error(lambda o: o, obs, rendered_off, _grid_act, g) == pytest.approx(math.sqrt(2))


def test_ee_checks_inputs():
    obs = torch.rand(3, 1, 2, 2)
    with pytest.raises(ValueError, match="samples"):
        equivariance_error(lambda o: o, obs, obs[:2], _grid_act, DihedralElement(1))
    with pytest.raises(ValueError, match="no group elements"):
        mean_equivariance_error(lambda o: o, obs, {}, _grid_act)
    zeros = torch.zeros(3, 1, 2, 2)
    assert math.isnan(equivariance_error(lambda o: o, zeros, zeros, _grid_act, DihedralElement(1)))


# ----------------------------------------------------------------------------------------------
# Distance invariance error
# ----------------------------------------------------------------------------------------------


def test_random_pairs():
    i, j = random_pairs(7, torch.Generator().manual_seed(0))
    assert i.tolist() == list(range(7)) and bool((i != j).all()) and int(j.min()) >= 0 and int(j.max()) < 7
    i2, j2 = random_pairs(7, torch.Generator().manual_seed(0))
    assert torch.equal(j, j2)  # deterministic given the generator
    a, b = random_pairs(2, torch.Generator().manual_seed(1), num_pairs=500)
    assert a.shape == (500,) and bool((a != b).all()) and set(a.tolist()) == {0, 1}
    a, b = random_pairs(5, torch.Generator().manual_seed(2), num_pairs=5000)
    counts = torch.bincount(a * 5 + b, minlength=25).reshape(5, 5)
    assert bool((counts.diagonal() == 0).all()) and int(counts.sum()) == 5000
    assert int(counts[~torch.eye(5, dtype=torch.bool)].min()) > 150  # ~250 each: all 20 ordered pairs occur
    with pytest.raises(ValueError):
        random_pairs(1, torch.Generator())


def test_die_zero_for_isometry_equivariant_features():
    g = torch.Generator().manual_seed(8)
    f = torch.randn(32, 2, 3, generator=g)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    f_g = (f.double() @ q.T).float()  # an orthogonal map on every object's features
    assert batch_distance_invariance_error(f, f_g, torch.Generator().manual_seed(0)) < 1e-6
    # a permutation of objects is an isometry as well
    assert batch_distance_invariance_error(f, f[:, [1, 0]], torch.Generator().manual_seed(0)) < 1e-12


def test_die_known_distortion():
    f_x = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    f_x2 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    # the twin features are scaled by 2: |d - 2d| = d; distances 5, 1; norms 5, 1
    assert distance_invariance_error(f_x, f_x2, 2 * f_x, 2 * f_x2) == pytest.approx((5 + 1) / 2 / ((5 + 1) / 2))
    # scaling a whole batch by s: DIE = |1 - s| * mean d / mean ||f||
    f = torch.randn(20, 4, 2, generator=torch.Generator().manual_seed(9))
    i, j = random_pairs(20, torch.Generator().manual_seed(3))
    mean_d = (f[i] - f[j]).flatten(1).norm(dim=1).mean()
    expected = 0.5 * float(mean_d / f.flatten(1).norm(dim=1).mean())
    assert batch_distance_invariance_error(f, 1.5 * f, torch.Generator().manual_seed(3)) == pytest.approx(expected)


def test_die_checks_inputs():
    z = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="one shape"):
        distance_invariance_error(z, z, z, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="shapes differ"):
        batch_distance_invariance_error(z, torch.zeros(4, 3), torch.Generator())
    assert math.isnan(distance_invariance_error(z, z, z, z))


def test_ranking_many_blocks():
    # N = 1000 with a small block: the chunked path runs 11 blocks and agrees with one big block
    n = 1000
    g = torch.Generator().manual_seed(10)
    target = torch.randn(n, 5, 8, generator=g)
    pred = target + 1.5 * torch.randn(n, 5, 8, generator=g)
    assert torch.equal(retrieval_ranks(pred, target, chunk_size=97), retrieval_ranks(pred, target, chunk_size=n))


def test_slot_usage_finds_an_unused_slot():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 4, 3, generator=g)
    assert 0.8 < slot_usage(z) <= 1.0  # every slot varies about as much
    z[:, 2] = 0.01 * torch.randn(500, 3, generator=g)  # slot 2 encodes (almost) nothing
    assert slot_usage(z) == pytest.approx(0.01, rel=0.2)
    z[:, 2] = 7.0
    assert slot_usage(z) == 0.0
    with pytest.raises(ValueError, match="slot_usage"):
        slot_usage(z[:1])


def test_pose_error_aligns_a_constant_right_factor_and_measures_the_rest():
    from symwm.envs.groups import rotation_from_vector

    rng = np.random.default_rng(0)
    r = np.stack([SO3().sample(rng) for _ in range(200)])
    c = SO3().sample(rng)
    exact = pose_error(torch.tensor(r @ c, dtype=torch.float32), torch.tensor(r))
    assert exact["pose_error_deg"] < 0.01 and exact["pose_error_median_deg"] < 0.01
    axes = rng.standard_normal((200, 3))
    off = np.stack([rotation_from_vector(a / np.linalg.norm(a) * np.radians(4.0)) for a in axes])
    noisy = pose_error(torch.tensor(off @ r @ c), torch.tensor(r))  # every estimate 4 degrees off
    assert noisy["pose_error_deg"] == pytest.approx(4.0, abs=0.2)
    with pytest.raises(ValueError, match=r"\[N, 3, 3\]"):
        pose_error(torch.zeros(4, 9), torch.zeros(4, 9))
    with pytest.raises(ValueError, match="NaN"):
        pose_error(torch.full((2, 3, 3), float("nan")), torch.tensor(r[:2]))


def test_linear_pose_fit_finds_equivariant_outputs_and_their_rank():
    rng = np.random.default_rng(1)
    r = np.stack([SO3().sample(rng) for _ in range(300)])
    full = linear_pose_fit(torch.tensor(r @ SO3().sample(rng)), torch.tensor(r))  # the whole pose
    assert full["fit_residual"] < 1e-12 and min(full["singular_values"]) == pytest.approx(1.0)
    axis = np.array([[0.0, 1.0], [0.0, 0.0], [2.0, 0.0]])  # two columns: 2 e_z and e_x, a rank-2 C of shape [3, 2]
    two = linear_pose_fit(torch.tensor(r @ axis), torch.tensor(r))
    assert two["fit_residual"] < 1e-12 and two["singular_values"] == pytest.approx([2.0, 1.0])
    one = linear_pose_fit(torch.tensor(r @ np.outer([1.0, 0.0, 0.0], [1.0, 1.0, 1.0])), torch.tensor(r))  # one body axis only
    assert one["singular_values"][1] < 1e-12
    unrelated = linear_pose_fit(torch.tensor(rng.standard_normal((300, 3, 3))), torch.tensor(r))
    assert unrelated["fit_residual"] > 0.9
    with pytest.raises(ValueError, match=r"\[N, 3, k\]"):
        linear_pose_fit(torch.zeros(4, 9), torch.tensor(r[:4]))
