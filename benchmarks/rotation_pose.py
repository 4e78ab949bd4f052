"""Does the rotating object's SEN learn the pose? Issue 12's decisive test, with the pose error per epoch.

``matmul`` has no transition parameters: ``z' = A(a) z`` with ``A(a)`` the action's true rotation.
If its SEN reads the pose, its predictions are right and Hard Hits@1 approaches 100 % on continuous
actions (the paper: 100). This trains it longer than table 4 (table 4's `cpu` data, model and
protocol otherwise) and reports, per seed, the SEN's validation pose error after every epoch
(:func:`symwm.world_models.metrics.pose_error`: the SEN's rotation against the true pose, best
constant right factor removed), the epoch after which it stopped falling, and Hard Hits@1 and the
pose error on the evaluation episodes; beside them a supervised probe, the same SEN fitted to the
true poses directly, shows what the architecture can read when the pose is given.

    .venv/bin/python benchmarks/rotation_pose.py                         # matmul, continuous, 100 epochs, seeds 0-2
    .venv/bin/python benchmarks/rotation_pose.py --seeds 0 --epochs 50 --variants matmul ours
    .venv/bin/python benchmarks/rotation_pose.py --quick                 # smoke run into runs/bench/quick
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_tables import ROOT, Setting, _log, collect_all, make_jobs, run_dir, run_pool, seeds_data  # noqa: E402
from table4_rotation import build  # noqa: E402

#: "stopped falling": no later epoch's pose error is lower by more than this many degrees
PLATEAU_DEG = 0.5


def setting(actions: str, variants: list[str], epochs: int, quick: bool, episodes: int | None = None, steps: int | None = None,
            max_angle_deg: float | None = None) -> Setting:
    """Table 4's setting for ``actions``, trained for ``epochs`` (its own run directories).

    ``episodes`` x ``steps`` replaces table 4's training recipe (1000 x 10) and ``max_angle_deg`` the
    continuous actions' largest rotation (36 degrees); each changes the setting's key, so such runs
    and their report sit beside the table-4 recipe's.
    """
    base = next(s for s in build("cpu", quick) if s.key == f"rotation-{actions}")
    epochs = base.epochs if quick else epochs
    key, title, train, kwargs = f"{base.key}-e{epochs}", f"{base.title}, {epochs} epochs", base.train, dict(base.env_kwargs)
    if episodes or steps:
        train = dataclasses.replace(train, episodes=episodes or train.episodes, steps=steps or train.steps)
        key, title = f"{key}-{train.episodes}x{train.steps}", f"{title}, {train.episodes} x {train.steps} training transitions"
    if max_angle_deg:
        if actions != "continuous":
            raise SystemExit("--max-angle applies to continuous actions only")
        kwargs["max_angle"] = float(np.deg2rad(max_angle_deg))
        key, title = f"{key}-a{max_angle_deg:g}", f"{title}, actions up to {max_angle_deg:g} degrees"
    return dataclasses.replace(base, key=key, variants=tuple(variants), epochs=epochs, title=title, train=train, env_kwargs=kwargs)


def plateau_epoch(errors: list[float]) -> int:
    """The first epoch (1-based) after which no later epoch improves on it by more than ``PLATEAU_DEG``."""
    return next(i + 1 for i, e in enumerate(errors) if min(errors[i:]) > e - PLATEAU_DEG)


def supervised_probe(s: Setting, seed: int, work: Path, epochs: int) -> list[dict[str, float]]:
    """The same SEN fitted to the true poses directly, its pose error on the evaluation episodes after every epoch.

    Loss: mean squared Frobenius distance between the SEN's rotation and the true pose (constant
    right factor fixed to the identity), Adam at the setting's learning rate and batch size, one
    thread. What the architecture and data can read when the pose is given: if this reaches a few
    degrees and the contrastive runs do not, the contrastive objective is what fails, not the SEN.
    Cached in ``<work>/runs/<key>/probe/seed<seed>.json``.
    """
    import torch
    from torch.utils.data import DataLoader

    from symwm.envs.symmetry import pose_key
    from symwm.world_models.build import build_model
    from symwm.world_models.datasets import PathDataset, TransitionDataset, open_dataset
    from symwm.world_models.metrics import pose_error
    from symwm.world_models.model import ModelSpec

    cache = work / "runs" / s.key / "probe" / f"seed{seed}.json"
    if cache.exists() and len(json.loads(cache.read_text())) >= epochs:
        return json.loads(cache.read_text())[:epochs]
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    train_path, eval_path = seeds_data(s, seed, work)
    model = build_model(ModelSpec(s.env_id, "matmul", s.size, s.env_kwargs))
    data = TransitionDataset(train_path, states=True)
    with open_dataset(train_path) as f:
        key = pose_key(f.make_env())
    ev = next(iter(DataLoader(PathDataset(eval_path, 1, states=True), batch_size=s.eval.episodes)))
    optimizer = torch.optim.Adam(model.sen.parameters(), lr=s.lr)
    generator = torch.Generator().manual_seed(seed)
    rows: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        start, total, n = time.perf_counter(), 0.0, 0
        model.train()
        for batch in DataLoader(data, batch_size=s.batch_size, shuffle=True, generator=generator):
            estimate = model.embed(batch["obs"])  # [B, 3, 3]
            loss = ((estimate - batch["states"][key].to(estimate.dtype)) ** 2).sum((1, 2)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, n = total + float(loss.detach()) * len(estimate), n + len(estimate)
        model.eval()
        with torch.no_grad():
            estimate = torch.cat([model.embed(o) for o in ev["obs"].split(256)])
        rows.append({"epoch": epoch, "train_loss": total / n, **pose_error(estimate, ev["states"][key]),
                     "seconds": time.perf_counter() - start})
        _log(f"probe seed {seed} epoch {epoch}: pose error {rows[-1]['pose_error_deg']:.1f} deg")
    cache.parent.mkdir(parents=True, exist_ok=True)
    _write(cache, json.dumps(rows, indent=1))
    return rows


def run_rows(s: Setting, seeds: list[int], work: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one summary row per finished run, one row per run and epoch)."""
    summary, curve = [], []
    for v in s.variants:
        for seed in seeds:
            d = run_dir(work, s, v, seed)
            if not (d / "eval.json").exists():
                continue
            with open(d / "train_log.csv", newline="") as fh:
                log = list(csv.DictReader(fh))
            if not log or "val_pose_error_deg" not in log[0]:
                raise SystemExit(f"{d}/train_log.csv has no val_pose_error_deg column (trained before the pose error existed?)")
            errors = [float(r["val_pose_error_deg"]) for r in log]
            for r in log:
                curve.append({"variant": v, "seed": seed, "epoch": int(r["epoch"]), "val_pose_error_deg": float(r["val_pose_error_deg"]),
                              "val_loss": float(r["val_loss"]), "val_hits@1": float(r["val_hits@1"])})
            ev = json.loads((d / "eval.json").read_text())
            m = ev["metrics"]
            summary.append({
                "variant": v, "seed": seed, "epochs": len(errors), "val_pose_error_deg_epoch10": errors[min(9, len(errors) - 1)],
                "val_pose_error_deg_last": errors[-1], "val_pose_error_deg_min": min(errors), "plateau_epoch": plateau_epoch(errors),
                "pose_error_deg": m["pose_error_deg"], "hard_hits@1": m["hard_hits@1"], "hits@1": m["hits@1"],
                "best_epoch": ev["best_epoch"], "train_seconds": ev["train_seconds"], "device": ev["device"],
                # memorisation shows as a training positive term that falls while the validation one rises
                "positive_best": float(log[ev["best_epoch"] - 1]["positive"]), "positive_last": float(log[-1]["positive"]),
                "val_positive_best": float(log[ev["best_epoch"] - 1]["val_positive"]), "val_positive_last": float(log[-1]["val_positive"]),
            })
    return summary, curve


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def report(s: Setting, seeds: list[int], work: Path, out: Path, command: str, probes: dict[int, list[dict[str, float]]]) -> Path:
    """Write ``<stem>.md`` (per seed and mean ± std), ``<stem>.csv`` (per epoch) and ``<stem>.png`` (the curves)."""
    summary, curve = run_rows(s, seeds, work)
    for seed, rows in probes.items():
        curve += [{"variant": "supervised probe (eval)", "seed": seed, "epoch": r["epoch"], "val_pose_error_deg": r["pose_error_deg"],
                   "val_loss": r["train_loss"], "val_hits@1": float("nan")} for r in rows]
    if not summary:
        raise SystemExit(f"no finished runs of {s.key} in {work}")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"rotation_pose_{s.key.removeprefix('rotation-')}"
    _csv(stem.with_suffix(".csv"), curve)
    cols = [("epochs", "epochs", 0), ("val_pose_error_deg_epoch10", "val pose error at epoch 10 (deg)", 1),
            ("val_pose_error_deg_last", "val pose error, last epoch (deg)", 1), ("plateau_epoch", "stopped falling at epoch", 0),
            ("pose_error_deg", "eval pose error (deg)", 1), ("hard_hits@1", "Hard Hits@1 %", 1), ("hits@1", f"Hits@1 % (among {s.eval.episodes})", 1),
            ("best_epoch", "best epoch (val loss)", 0), ("positive_best", "positive term at best epoch: train", 2),
            ("val_positive_best", "val", 2), ("positive_last", "positive term, last epoch: train", 2), ("val_positive_last", "val", 2),
            ("train_seconds", "train s", 0)]
    lines = [f"# {s.title}: does the SEN learn the pose?", "",
             "Pose error: the SEN's rotation against the true pose after the best constant right factor is taken out",
             f"(`symwm.world_models.metrics.pose_error`); validation on {s.val_fraction:.0%} of the training episodes after every",
             f"epoch, evaluation on the first observations of {s.eval.episodes} evaluation episodes. \"Stopped falling\": the first epoch",
             f"after which no later epoch is lower by more than {PLATEAU_DEG} degrees. Hard Hits@1 as in table 4",
             f"({s.hard_negatives} renderings within one small action of the true pose). Machine: {summary[0]['device']}.", "",
             "| variant | seed | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for r in summary:
        lines.append(f"| {r['variant']} | {r['seed']} | " + " | ".join(f"{r[k]:.{d}f}" for k, _, d in cols) + " |")
    for v in s.variants:
        sel = [r for r in summary if r["variant"] == v]
        if len(sel) > 1:
            cells = [f"{np.mean([r[k] for r in sel]):.{d}f} ± {np.std([r[k] for r in sel], ddof=1):.{d}f}" for k, _, d in cols]
            lines.append(f"| {v} | mean ± std ({len(sel)} seeds) | " + " | ".join(cells) + " |")
    if probes:
        lines += ["", "**Supervised probe**: the same SEN (`matmul`'s, untrained) fitted to the true poses directly",
                  "(mean squared Frobenius distance to the pose, same data, learning rate and batch size; pose error on the",
                  "evaluation episodes after each epoch; `supervised_probe`). What the architecture can read when the pose is given.", "",
                  "| seed | " + " | ".join(f"epoch {r['epoch']}" for r in next(iter(probes.values()))) + " |",
                  "|---" * (1 + len(next(iter(probes.values())))) + "|"]
        for seed, rows in probes.items():
            lines.append(f"| {seed} | " + " | ".join(f"{r['pose_error_deg']:.1f}" for r in rows) + " |")
    lines += ["", f"![pose error per epoch]({stem.name}.png)", "", f"Made by `{command}` (Python {platform.python_version()}).", ""]
    _write(stem.with_suffix(".md"), "\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in summary:
        pts = [(c["epoch"], c["val_pose_error_deg"]) for c in curve if c["variant"] == r["variant"] and c["seed"] == r["seed"]]
        ax.plot(*zip(*pts), label=f"{r['variant']} seed {r['seed']} (validation)")
    for seed, rows in probes.items():
        ax.plot([r["epoch"] for r in rows], [r["pose_error_deg"] for r in rows], "--", label=f"supervised probe seed {seed} (eval)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("pose error (deg)")
    ax.set_yscale("log")
    ax.set_title(s.title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    plt.close(fig)
    return stem.with_suffix(".md")


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--actions", choices=("continuous", "small"), default="continuous")
    p.add_argument("--variants", nargs="+", default=["matmul"], choices=("matmul", "ours", "none"))
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="runs trained at the same time (default: 2)")
    p.add_argument("--work", default=None, help="runs and rollouts (default: runs/bench/cpu)")
    p.add_argument("--out", default=None, help="where the report goes (default: benchmarks/results/tables; --quick: <work>/results)")
    p.add_argument("--episodes", type=int, default=None, help="training episodes (default: table 4's 1000)")
    p.add_argument("--steps", type=int, default=None, help="steps per training episode (default: table 4's 10)")
    p.add_argument("--max-angle", type=float, default=None, help="continuous actions' largest rotation in degrees (default: the env's 36)")
    p.add_argument("--probe-epochs", type=int, default=10, help="epochs of the supervised probe per seed (0: none)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data, table 4's quick epochs, seed 0")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
    s = setting(args.actions, args.variants, args.epochs, args.quick, args.episodes, args.steps, args.max_angle)
    work = Path(args.work or ROOT / "runs" / "bench" / ("quick" if args.quick else "cpu"))
    out = Path(args.out) if args.out else work / "results" if args.quick else ROOT / "benchmarks" / "results" / "tables"
    if not args.report_only:
        start = time.perf_counter()
        collect_all([s], args.seeds, work, n_envs=args.jobs)
        run_pool(make_jobs([s], args.seeds, work, "cpu", 1), args.jobs)
        _log(f"trained and evaluated in {(time.perf_counter() - start) / 60:.1f} min")
    probe_epochs = min(args.probe_epochs, 1) if args.quick else args.probe_epochs
    probes = {seed: supervised_probe(s, seed, work, probe_epochs) for seed in args.seeds} if probe_epochs else {}
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]  # the command that made the runs
    command = "python benchmarks/rotation_pose.py " + " ".join(given)
    md = report(s, args.seeds, work, out, command.strip(), probes)
    _log(f"wrote {md}")
    return md


if __name__ == "__main__":
    main()
