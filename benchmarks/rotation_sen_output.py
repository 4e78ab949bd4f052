"""Why the rotating object's SEN does not learn the pose: the same contrastive training with three SEN outputs.

Issue 12's decisive test: ``matmul`` (``z' = A(a) z``, no transition parameters) on continuous
actions stays at 85-118 degrees of pose error however it is trained (``rotation_pose.py``). This
trains the same SEN body on table 4's continuous data with the same loss, Adam and batch, and the
same matrix-multiplication transition applied to several kinds of output:

* ``gram-schmidt``: the family's, two 3-vectors made a rotation matrix (a map onto SO(3));
* ``sphere``: nine numbers scaled to the Frobenius norm of a rotation, ``sqrt(3)`` (a point of S^8;
  ``A`` multiplies it as a 3x3 matrix);
* ``two-axes``: two unit 3-vectors (two points of S^2, each rotated by ``A``) with a penalty
  ``mean((u . w)^2)`` that asks them to be perpendicular, so that Gram-Schmidt of the pair could be a pose;
* ``sphere-spread``: ``sphere`` with a penalty ``|| mean_batch(M^T M) - I ||^2`` that asks the three
  columns to be used alike. It needs no pose: for an equivariant output ``M = R C`` it is
  ``|| C^T C - I ||^2``, zero exactly when ``C`` is orthogonal, i.e. when ``M`` carries the whole pose;
* ``sphere-axis-negatives`` and ``gram-schmidt-axis-negatives``: the same outputs with one more
  negative per transition that a single body axis cannot tell apart: the true next state turned by
  ``g``, a rotation of 45-180 degrees about the axis the SEN itself reports for it (the top left
  singular vector of ``M(x')``, or its first column for Gram-Schmidt; so ``g M(x') ~ M(x')`` while the
  output has rank one), rendered from the ground-truth state like the evaluation twins, and pushed
  away from ``M(x')`` by the same hinge.
  Not the paper's method (it needs the simulator in the training loop): a test of the reading that
  one axis survives because random negatives almost never share it.

After every epoch, on the first transitions of the 1000 evaluation episodes: the pose error (the
output made a rotation: as is, nearest rotation, Gram-Schmidt of the pair), how much of the output
is an equivariant function ``R C`` of the true pose (``metrics.linear_pose_fit``: the unexplained
share and the singular values of ``C``) and the 1-step Hits@1 among the 1000.

    .venv/bin/python benchmarks/rotation_sen_output.py                      # every output, seeds 0 1, 15 epochs
    .venv/bin/python benchmarks/rotation_sen_output.py --quick              # smoke run into runs/bench/quick
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402
from paper_tables import ROOT, _log, collect_all, seeds_data  # noqa: E402
from rotation_pose import setting  # noqa: E402
from train_speed import write_atomic, write_csv  # noqa: E402

OUTPUTS = ("gram-schmidt", "sphere", "two-axes", "sphere-spread", "sphere-axis-negatives", "gram-schmidt-axis-negatives")
FIELDS = ("output", "seed", "epoch", "loss", "pose_error_deg", "fit_residual", "sv1", "sv2", "sv3", "hits@1", "hard_hits@1", "seconds")
#: hard negatives per evaluation episode for Hard Hits@1 after the last epoch (table 4's number)
HARD_NEGATIVES = 10


def run(output: str, seed: int, epochs: int, train_path: Path, eval_path: Path, lr: float, batch_size: int) -> list[dict[str, Any]]:
    """Train one SEN output on one seed; a row per epoch."""
    import gymnasium as gym
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from symwm.envs.groups import nearest_rotation
    from symwm.world_models.build import build_model
    from symwm.world_models.datasets import PathDataset, TransitionDataset, open_dataset
    from symwm.world_models.evaluate import hard_negative_observations
    from symwm.world_models.loss import HINGE, contrastive_loss
    from symwm.world_models.metrics import hard_ranking_metrics, linear_pose_fit, pose_error, ranking_metrics
    from symwm.world_models.model import SIGMA, ModelSpec, energy
    from symwm.world_models.models.rotation import RotationLatentSymmetry, gram_schmidt, rotation_matrices, to_sphere

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    with open_dataset(train_path) as f:
        spec = ModelSpec(f.env_id, "matmul", "cpu", f.env_kwargs)
    model = build_model(spec)
    sen, transition = model.sen, model.transition
    axis_negatives = output.endswith("-axis-negatives")
    output = output.removesuffix("-axis-negatives")
    env = gym.make(spec.env_id, **spec.env_kwargs).unwrapped  # renders the axis negatives and the hard negatives
    rng = np.random.default_rng(seed)
    if output != "gram-schmidt":
        sen.head[-1] = nn.Linear(sen.head[-1].in_features, 6 if output == "two-axes" else 9)

    def outputs(obs: torch.Tensor) -> torch.Tensor:  # [B, 3, k]
        raw = sen.head(sen.conv(model.preprocess(obs)))
        if output == "gram-schmidt":
            return gram_schmidt(raw[:, :3], raw[:, 3:])
        if output in ("sphere", "sphere-spread"):
            return to_sphere(raw.reshape(-1, 3, 3))
        u, w = raw[:, :3], raw[:, 3:]
        return torch.stack([u / u.norm(dim=1, keepdim=True).clamp(min=1e-8), w / w.norm(dim=1, keepdim=True).clamp(min=1e-8)], dim=2)

    def as_pose(m: torch.Tensor) -> torch.Tensor:
        if output == "gram-schmidt":
            return m
        if output == "two-axes":
            return gram_schmidt(m[:, :, 0], m[:, :, 1])
        return torch.from_numpy(np.stack([nearest_rotation(x) for x in m.double().numpy()]))

    def step(obs, actions):
        return rotation_matrices(transition.rotation_vectors(actions)) @ obs  # A(a) M: [B, 3, 3] @ [B, 3, k]

    stabiliser = RotationLatentSymmetry("sphere" if output == "sphere" else "gram-schmidt")  # the family's elements

    def turned_about_own_axis(m_next: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """Frames of the true next poses turned 45-180 degrees about the SEN's reported axis: uint8 [B, H, W, 1]."""
        elements = stabiliser.stabiliser_elements(m_next.reshape(len(m_next), 1, 9), rng)
        frames = [env.render_orientation(g @ r) for g, r in zip(elements, poses.double().numpy())]
        return torch.from_numpy(np.stack(frames))

    data = TransitionDataset(train_path, states=axis_negatives)
    paths = PathDataset(eval_path, 1, states=True)
    ev = next(iter(DataLoader(paths, batch_size=len(paths))))  # every evaluation episode in one batch
    optimizer = torch.optim.Adam(sen.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        start, total, n = time.perf_counter(), 0.0, 0
        sen.train()
        for batch in DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator):
            m, m_next = outputs(batch["obs"]), outputs(batch["next_obs"])
            b = len(m)
            loss, _ = contrastive_loss(m.reshape(b, 1, -1), step(m, batch["action"]).reshape(b, 1, -1), m_next.reshape(b, 1, -1), generator)
            if output == "two-axes":
                loss = loss + ((m[:, :, 0] * m[:, :, 1]).sum(1) ** 2).mean()
            if output == "sphere-spread":
                loss = loss + ((m.transpose(1, 2) @ m).mean(0) - torch.eye(3)).pow(2).sum()
            if axis_negatives:  # one more hinge term: M(x') against M(g x') with g about M(x')'s own axis
                m_turned = outputs(turned_about_own_axis(m_next, batch["next_states"]["orientation"]))
                loss = loss + torch.clamp(HINGE - energy(m_next.reshape(b, 1, -1), m_turned.reshape(b, 1, -1), SIGMA), min=0.0).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, n = total + float(loss.detach()) * b, n + b
        sen.eval()
        with torch.no_grad():
            m = torch.cat([outputs(o) for o in ev["obs"].split(250)])
            m_next = torch.cat([outputs(o) for o in ev["next_obs"].split(250)])
            pred = step(m, ev["actions"][:, 0])
            hard = float("nan")
            if epoch == epochs:  # table 4's Hard Hits@1: the same renderings near the true next pose as `symwm eval` draws
                states = {k: v.numpy() for k, v in ev["next_states"].items()}
                neg_obs = hard_negative_observations(env, states, HARD_NEGATIVES, np.random.default_rng(seed))  # [N, M, H, W, 1]
                neg = torch.cat([outputs(o) for o in neg_obs.flatten(0, 1).split(250)]).reshape(len(m), HARD_NEGATIVES, -1)
                hard = hard_ranking_metrics(pred.flatten(1), m_next.flatten(1), neg)["hits@1"]
        true = ev["states"]["orientation"]
        fit = linear_pose_fit(m, true)
        sv = fit["singular_values"] + [0.0] * (3 - len(fit["singular_values"]))
        rows.append({"output": output + ("-axis-negatives" if axis_negatives else ""), "seed": seed, "epoch": epoch, "loss": round(total / n, 4),
                     "pose_error_deg": round(pose_error(as_pose(m).float(), true.float())["pose_error_deg"], 2),
                     "fit_residual": round(fit["fit_residual"], 4), "sv1": round(sv[0], 3), "sv2": round(sv[1], 3), "sv3": round(sv[2], 3),
                     "hits@1": round(ranking_metrics(pred.flatten(1), m_next.flatten(1))["hits@1"], 2), "hard_hits@1": round(hard, 2),
                     "seconds": round(time.perf_counter() - start, 1)})
        _log(f"{rows[-1]['output']} seed {seed} epoch {epoch}: " + ", ".join(f"{k} {rows[-1][k]}" for k in FIELDS[3:-1]))
    return rows


def report(rows: list[dict[str, Any]], out: Path, epochs: int, command: str, name: str = "rotation_sen_output") -> Path:
    """``<name>.md`` (last epoch per output and seed) and ``.csv`` (every epoch; runs of other outputs or seeds kept)."""
    import csv

    path = out / f"{name}.csv"
    done = {(r["output"], r["seed"]) for r in rows}
    if path.exists():
        with open(path, newline="") as fh:
            kept = [{"hard_hits@1": float("nan"),  # files from before the column
                     **{k: (v if k == "output" else int(v) if k in ("seed", "epoch") else float(v)) for k, v in r.items()}}
                    for r in csv.DictReader(fh) if (r["output"], int(r["seed"])) not in done]
        rows = sorted(kept + rows, key=lambda r: (r["seed"], OUTPUTS.index(r["output"]), r["epoch"]))
    write_csv(path, rows, FIELDS)
    last = [r for r in rows if r["epoch"] == max(x["epoch"] for x in rows if (x["output"], x["seed"]) == (r["output"], r["seed"]))]
    lines = ["# The rotating object: what the contrastive loss teaches the SEN, by output", "",
             *"\n\n".join(__doc__.split("\n\n")[1:4]).splitlines(), "",
             f"Table 4's continuous data (1000 x 10 training transitions, actions up to 36 degrees), `cpu` SEN body, Adam lr 1e-3, "
             f"batch 256, {epochs} epochs, one thread, {cpu_model()}. Columns after the last epoch; every epoch in the CSV.", "",
             "| output | seed | loss | pose error (deg) | unexplained by R C | singular values of C | Hits@1 % (1 step, among 1000) | "
             f"Hard Hits@1 % ({HARD_NEGATIVES} negatives) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in last:
        hard = "-" if r["hard_hits@1"] != r["hard_hits@1"] else f"{r['hard_hits@1']:.1f}"  # NaN: not measured
        lines.append(f"| {r['output']} | {r['seed']} | {r['loss']:.3f} | {r['pose_error_deg']:.1f} | {r['fit_residual']:.3f} | "
                     f"{r['sv1']:.2f}, {r['sv2']:.2f}, {r['sv3']:.2f} | {r['hits@1']:.1f} | {hard} |")
    lines += ["", f"Made by `{command}` (Python {platform.python_version()}).", ""]
    path = out / f"{name}.md"
    write_atomic(path, "\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outputs", nargs="+", default=list(OUTPUTS), choices=OUTPUTS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--work", default=None, help="rollouts (default: runs/bench/cpu)")
    p.add_argument("--out", default=None, help="report folder (default: benchmarks/results/tables; --quick: <work>/results)")
    p.add_argument("--name", default="rotation_sen_output", help="file name of the report, without suffix (runs of other lengths apart)")
    p.add_argument("--quick", action="store_true", help="smoke run: table 4's quick data, 1 epoch, seed 0")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = args.seeds[:1], 1
    s = setting("continuous", ["matmul"], args.epochs, args.quick)
    work = Path(args.work or ROOT / "runs" / "bench" / ("quick" if args.quick else "cpu"))
    out = Path(args.out) if args.out else work / "results" if args.quick else ROOT / "benchmarks" / "results" / "tables"
    collect_all([s], args.seeds, work, n_envs=1)
    rows = []
    for seed in args.seeds:
        train_path, eval_path = seeds_data(s, seed, work)
        for output in args.outputs:
            rows += run(output, seed, args.epochs, train_path, eval_path, s.lr, s.batch_size)
    command = "python benchmarks/rotation_sen_output.py " + " ".join(argv if argv is not None else sys.argv[1:])
    path = report(rows, out, args.epochs, command.strip(), args.name)
    _log(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
