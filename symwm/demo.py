"""The main job, end to end on CPU: ``symwm demo`` (``make demo``).

On Cubes3D (the paper's 3D Blocks), with the authors' release's protocol: collect a training set of
one-step episodes from random start states *without the "left" action*, an evaluation set of
10,000 ten-step episodes with all actions (other seeds, with the quarter-turn twin of every
episode) and one of 10,000 episodes without "left"; train ``ours`` (SEN + equivariant encoder and
transition) and ``none`` (the non-equivariant C-SWM-like baseline) at the ``cpu`` size, keep each
model's best checkpoint on a validation split of the training data, rank every 10-step prediction
among all 10,000, and write ``report.md`` with the tables (Hits@1, MRR, EE, DIE) and PNG plots.

Data are collected in two processes; ``none`` and the first half of ``ours`` train side by side with
one thread each, then ``ours`` finishes with two threads (``ours_shared``); the models are evaluated
in two processes. Every step is skipped when its output is already complete, so an interrupted demo
continues where it stopped (training resumes from ``last.pt``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: the paper's figures for this experiment (earlier full version, 3D Blocks trained without "left")
PAPER = {"none": {"hits@1": 52.3, "mrr": 61.8, "die_model": 0.181}, "ours": {"hits@1": 99.9, "mrr": 100.0, "die_model": 0.005}}


@dataclass
class DemoConfig:
    """What the demo runs (defaults: about 15 minutes on an idle 2-core CPU; see benchmarks/results/demo/seeds.md)."""

    out: str = "runs/demo"
    """output directory"""
    env_id: str = "symwm/Cubes3D-v0"
    """grid-world environment"""
    held_out: str = "left"
    """motion never seen in training"""
    train_transitions: int = 100_000
    """training transitions: one-step episodes from random start states (the release's recipe for limited-action sets)"""
    eval_episodes: int = 10_000
    """evaluation episodes (all actions, other seeds); each prediction is ranked among all of them (the release: 10,000)"""
    steps: int = 10
    """steps per evaluation episode"""
    twins: str = "quarter-turn"
    """transformed twins of the evaluation episodes for EE and DIE ('quarter-turn': the release's one element)"""
    epochs: int = 8
    """training epochs per model"""
    batch_size: int = 256
    """training batch size"""
    lr: float = 1e-3
    """Adam learning rate"""
    lr_schedule: str = "constant"
    """learning-rate schedule ('constant' or 'cosine', see TrainConfig)"""
    val_fraction: float = 0.02
    """share of the training episodes held out to choose the best checkpoint"""
    temporal_negatives: bool = False
    """train both models with temporal negatives (not the release's loss; TrainConfig.temporal_negatives)"""
    amp: bool = False
    """train with bfloat16 autocast on CPU (TrainConfig.amp; native only with AVX512-BF16 or AMX; see benchmarks/results/demo/seeds_bf16.md)"""
    ours_shared: float = 0.5
    """share of ours' optimiser steps trained with one thread while none trains beside it; the rest use both threads"""
    horizon: int = 10
    """prediction steps of the main table"""
    seed: int = 0
    """seed of data, initialisation and training"""


#: seconds between progress lines while models train
STATUS_EVERY = 15.0


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _dataset(path: Path, env_id: str, episodes: int, steps: int, seed: int, actions: str | None, twins: str | int | None) -> tuple[Path, bool]:
    """Collect unless a complete file with the same settings exists (runs in a worker process)."""
    from symwm.world_models.collect import ensure_collected

    return ensure_collected(path, env_id, episodes, steps, seed=seed, actions=actions, twins=twins, progress=False)


def _collect_all(cfg: DemoConfig, out: Path) -> tuple[Path, Path, Path]:
    """Training, evaluation and held-in evaluation files, collected in two worker processes."""
    from symwm.world_models.collect import parse_twins

    jobs = {  # the longest first: eval (twins) and train run side by side, the held-in set follows eval
        "eval": (out / "eval.h5", cfg.env_id, cfg.eval_episodes, cfg.steps, cfg.seed + 2, None, parse_twins(cfg.twins)),
        "train": (out / "train.h5", cfg.env_id, cfg.train_transitions, 1, cfg.seed + 1, f"no-{cfg.held_out}", None),
        "seen": (out / "eval_seen.h5", cfg.env_id, cfg.eval_episodes, cfg.steps, cfg.seed + 3, f"no-{cfg.held_out}", None),
    }
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(_dataset, *args) for name, args in jobs.items()}
        paths = {}
        for name, fut in futures.items():
            path, collected = fut.result()
            _, env_id, n, steps, _, actions, _ = jobs[name]
            _log(f"{'collected' if collected else 'reusing'} {path} ({n} episodes of {steps} step(s), {actions or 'all actions'})")
            paths[name] = path
    return paths["train"], paths["eval"], paths["seen"]


def _evaluate_model(checkpoint: Path, files: tuple[Path, ...], horizon: int, seed: int) -> list[dict[str, float]]:
    """The paper's metrics of one checkpoint on each file (runs in a worker process, one thread)."""
    import torch

    from symwm.world_models.checkpoint import load_model
    from symwm.world_models.evaluate import evaluate

    torch.set_num_threads(1)
    model = load_model(checkpoint)
    return [evaluate(model, f, horizon, seed=seed) for f in files]


def _train_phases(cfg: DemoConfig, run: Path, variant: str) -> list[tuple[int | None, int]]:
    """The calls that train ``variant`` from where ``run`` stands: ``(optimiser steps of the call or None: to the end, threads)``.

    ``none`` trains with one thread beside ``ours``; ``ours`` trains its first ``cfg.ours_shared``
    share of steps with one thread and the rest with two (``none``, the cheaper model, has finished
    by then). The split is a fixed step, not a reaction to ``none`` finishing, so that every call
    has a fixed thread count and each seed stays bit-for-bit reproducible on one machine.
    """
    if variant != "ours" or cfg.ours_shared >= 1.0:
        return [(None, 1)]
    from symwm.world_models.train import validation_split

    train_idx, _ = validation_split(cfg.train_transitions, 1, cfg.val_fraction, cfg.seed)
    split = round(cfg.ours_shared * cfg.epochs * (len(train_idx) // cfg.batch_size))
    done = 0
    if (run / "last.pt").exists():
        from symwm.world_models.checkpoint import read_checkpoint

        done = int(read_checkpoint(run / "last.pt")["trainer_state"]["global_step"])
    phases: list[tuple[int | None, int]] = [(split - done, 1)] if 0 < split and done < split else []
    return phases + [(None, 2)]


def train_arguments(cfg: DemoConfig, data: Path, run: Path, variant: str, steps: int | None, threads: int) -> list[str]:
    """``symwm`` command-line arguments of one training call of the demo (resuming when ``run`` has a last checkpoint)."""
    args = [
        "train", "--env", cfg.env_id, "--variant", variant, "--size", "cpu",
        "--dataset", str(data), "--out-dir", str(run), "--epochs", str(cfg.epochs),
        "--batch-size", str(cfg.batch_size), "--lr", str(cfg.lr), "--seed", str(cfg.seed), "--no-progress",
        "--val-fraction", str(cfg.val_fraction), "--lr-schedule", cfg.lr_schedule, "--num-threads", str(threads),
    ]
    if cfg.temporal_negatives:
        args.append("--temporal-negatives")
    if cfg.amp:
        args.append("--amp")
    if (run / "last.pt").exists():
        args.append("--resume")
    if steps is not None:
        args += ["--max-steps", str(steps)]
    return args


def _train_all(cfg: DemoConfig, data: Path, out: Path, variants: tuple[str, ...]) -> list[str]:
    """Train the variants side by side in processes (:func:`_train_phases`), resuming unfinished runs; returns those trained now."""
    from symwm.runner import Phase, Task, run_tasks

    def phase(v: str, steps: int | None, threads: int) -> Phase:
        argv = lambda: [sys.executable, "-m", "symwm.cli", *train_arguments(cfg, data, out / v, v, steps, threads)]  # noqa: E731
        # the call sets its torch threads itself (--num-threads); its OpenMP / MKL environment stays at one thread
        return Phase(argv, threads=1, note=f"training {cfg.epochs} epochs with {threads} thread(s){f' for {steps} steps' if steps else ''} ({out / v})")

    tasks = []
    for v in variants:
        run = out / v
        summary = run / "summary.json"
        if summary.exists() and json.loads(summary.read_text()).get("finished"):
            _log(f"{v}: already trained ({run})")
            continue
        tasks.append(Task(v, [phase(v, steps, threads) for steps, threads in _train_phases(cfg, run, v)], run / "train.out"))

    def status(running: list[Task]) -> None:
        lines = []
        for task in running:
            rows = _history(out / task.name)
            lines.append(f"{task.name} epoch {len(rows)}/{cfg.epochs} loss {rows[-1]['loss']:.4f}" if rows else f"{task.name} starting")
        _log("; ".join(lines))

    run_tasks(tasks, parallel=max(len(tasks), 1), on_status=status, status_every=STATUS_EVERY, fail_fast=True, log=_log)
    return sorted(t.name for t in tasks)


def _history(run: Path) -> list[dict[str, float]]:
    import csv

    path = run / "train_log.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _plots(out: Path, variants: tuple[str, ...], models: dict[str, Any], eval_data: Path) -> list[str]:
    """Training curves and a PCA view of the latents of a few evaluation episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from symwm.world_models.datasets import open_dataset

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for v in variants:
        rows = _history(out / v)
        line, = ax.plot([r["epoch"] for r in rows], [r["loss"] for r in rows], label=f"{v} training")
        if rows and "val_loss" in rows[0]:
            ax.plot([r["epoch"] for r in rows], [r["val_loss"] for r in rows], "--", color=line.get_color(), label=f"{v} validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=110)
    plt.close(fig)

    with open_dataset(eval_data) as f:
        obs = torch.from_numpy(f["obs"][:4])  # [4 episodes, T+1, H, W, C]
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 4), squeeze=False)
    for ax, v in zip(axes[0], variants):
        with torch.no_grad():
            z = models[v].encode(obs.flatten(0, 1)).reshape(obs.shape[0], obs.shape[1], *models[v].latent_shape)
        flat = z.reshape(-1, z.shape[-1]).numpy()  # every object's latent, [4 * (T+1) * K, D]
        centred = flat - flat.mean(0)
        basis = np.linalg.svd(centred, full_matrices=False)[2][:2]
        xy = (centred @ basis.T).reshape(z.shape[0], z.shape[1], z.shape[2], 2)
        for k in range(z.shape[2]):
            for e in range(z.shape[0]):
                ax.plot(xy[e, :, k, 0], xy[e, :, k, 1], "-o", ms=2, lw=0.8, color=f"C{k}", alpha=0.8)
        ax.set_title(f"{v}: object latents, 4 episodes (PCA)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out / "latents.png", dpi=110)
    plt.close(fig)
    return ["training_curves.png", "latents.png"]


def run_demo(cfg: DemoConfig) -> Path:
    """Run the whole demo; returns the path of the report."""
    from symwm.gallery import save_gallery
    from symwm.world_models.checkpoint import load_model
    from symwm.world_models.evaluate import format_table, write_results

    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = ("ours", "none")
    save_gallery(out / "gallery.png", seed=cfg.seed)
    train_data, eval_data, seen_data = _collect_all(cfg, out)
    t_data = time.perf_counter() - start
    trained = _train_all(cfg, train_data, out, variants)
    t_train = time.perf_counter() - start - t_data

    _log(f"evaluating {', '.join(variants)} on {cfg.eval_episodes} + {cfg.eval_episodes} episodes")
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {v: pool.submit(_evaluate_model, out / v / "best.pt", (eval_data, seen_data), cfg.horizon, cfg.seed) for v in variants}
        results = {v: f.result() for v, f in futures.items()}
    rows = {v: r[0] for v, r in results.items()}
    seen = {v: r[1] for v, r in results.items()}
    summaries = {v: json.loads((out / v / "summary.json").read_text()) for v in variants}
    title = f"{cfg.env_id} trained without '{cfg.held_out}', {cfg.horizon}-step prediction on all actions"
    write_results(rows, out, stem="eval", title=title)
    write_results(seen, out, stem="eval_seen", title=f"{cfg.horizon}-step prediction without '{cfg.held_out}'")
    models = {v: load_model(out / v / "best.pt") for v in variants}
    plots = _plots(out, variants, models, eval_data)
    seconds = time.perf_counter() - start

    ours, none = rows["ours"]["hits@1"], rows["none"]["hits@1"]
    verdict = "reached" if ours >= 90.0 and none <= 60.0 else "NOT reached"
    best = ", ".join(f"{v} epoch {summaries[v]['best_epoch']}" for v in variants)
    lines = [
        "# symwm demo: equivariance lets a world model generalise to an action it never saw",
        "",
        f"Environment `{cfg.env_id}` (3D Blocks: cubes seen by an oblique perspective camera, so a",
        "rotation of the grid is not a rotation of the image). The authors' release's protocol: training data "
        f"{cfg.train_transitions} one-step episodes from random start states **without the '{cfg.held_out}' action**; "
        f"evaluation: {cfg.eval_episodes} episodes of {cfg.steps} steps with all actions, other seeds, each "
        f"{cfg.horizon}-step prediction ranked among all {cfg.eval_episodes}; EE and DIE at the quarter turn.",
        f"Models at the `cpu` size, {cfg.epochs} epochs, batch {cfg.batch_size}, Adam lr {cfg.lr}, seed {cfg.seed}"
        f"{', temporal negatives in the loss (not the release)' if cfg.temporal_negatives else ''}; "
        f"best checkpoint by the loss on {cfg.val_fraction:.0%} of the training episodes held out ({best}).",
        "",
        format_table(rows, title),
        f"Target: `ours` Hits@1 >= 90 % while `none` stays at or below 60 %: **{verdict}** "
        f"(ours {ours:.1f} %, none {none:.1f} %). One seed is one run: "
        "`benchmarks/results/demo/seeds.md` in the repository gives seeds 0-4.",
        "",
        "The paper (earlier full version, 3D Blocks without 'left', paper-size models, 100 epochs): "
        f"none Hits@1 {PAPER['none']['hits@1']} %, MRR {PAPER['none']['mrr']} %, DIE(model) x1e-3 181; "
        f"ours Hits@1 {PAPER['ours']['hits@1']} %, MRR {PAPER['ours']['mrr']} %, DIE(model) x1e-3 5.0.",
        "",
        format_table(seen, f"{cfg.horizon}-step prediction on new episodes without '{cfg.held_out}' (the training distribution)"),
        "The gap between this table and the first is what the held-out action costs each model.",
        "",
        "EE: equivariance error of the SEN at the quarter turn (0 = exactly equivariant). DIE: distance",
        "invariance error of the SEN outputs and of the 10-step predictions (x1e-3), as the release",
        "computes them. Hits@k and MRR rank each prediction among the encodings of all evaluation episodes.",
        "",
        "![training curves](training_curves.png)",
        "",
        "![latents](latents.png)",
        "",
        "![environments and their transformed twins](gallery.png)",
        "",
        f"Wall time of this invocation {seconds / 60:.1f} min ({t_data:.0f} s data, {t_train:.0f} s training, "
        f"{seconds - t_data - t_train:.0f} s evaluation and plots)"
        + ("." if set(trained) == set(variants) else
           f"; models {'reused' if not trained else 'partly reused'} from an earlier run in {out} "
           f"(trained now: {', '.join(trained) or 'none'}).") ,
        "",
    ]
    report = out / "report.md"
    tmp = report.with_name(".report.md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, report)
    record = {"config": dataclasses.asdict(cfg), "wall_s": seconds, "data_s": t_data, "train_s": t_train,
              "trained_now": trained, "results": rows, "results_seen": seen}
    tmp = out / ".demo_result.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / "demo_result.json")
    (out / "demo_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    print(format_table(rows, title))
    _log(f"target {verdict}; wrote {report} ({', '.join(plots)}) in {seconds / 60:.1f} min")
    return report
