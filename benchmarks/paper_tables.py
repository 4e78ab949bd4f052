"""Shared machinery of the paper-table scripts (``table1_blocks.py`` ... ``table5_beyond.py``).

A table is a list of :class:`Setting` (one dataset recipe, one evaluation protocol, several model
variants). For every setting and seed the runner

1. collects the training and evaluation rollouts (cached in ``<work>/data``; a file is reused only
   if it was made with exactly the same settings: :func:`symwm.world_models.collect.ensure_collected`),
2. trains every variant and evaluates its best checkpoint in a pool of ``--jobs`` worker processes
   with ``--threads`` threads each (one job = train, then evaluate; finished jobs are skipped and
   interrupted ones resume from ``last.pt``, so a killed run continues where it stopped),
3. writes ``<out>/<table>_<scale>.md`` (mean +- std over seeds, the paper's figure beside each cell),
   ``.csv`` (one row per setting, variant and seed) and ``.png``. The report covers every setting
   of the table, not only those run now (``--only``, ``--variants``, ``--seeds``): a row whose run is
   not in the work directory is carried over from the previous ``.csv`` (or a sibling table's, for a
   shared setting) if its setting is unchanged (the ``config`` column, :func:`setting_digest`), so a
   table can grow by one setting or seed on another day or machine without retraining the rest.

Seeds: seed ``s`` trains on rollouts with seed ``1000 s + 1``, evaluates on rollouts with seed
``1000 s + 2`` (never seen in training) and initialises and shuffles with ``s``. Seed 0 therefore
uses the same files as ``make demo``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCALES = ("cpu", "paper")
#: how the metrics are shown: label, scale factor, decimals
METRICS = {
    "hits@1": ("Hits@1 %", 1.0, 1),
    "hits@5": ("Hits@5 %", 1.0, 1),
    "hits@10": ("Hits@10 %", 1.0, 1),
    "mrr": ("MRR %", 1.0, 1),
    "hard_hits@1": ("Hard Hits@1 %", 1.0, 1),
    "hard_mrr": ("Hard MRR %", 1.0, 1),
    "ee": ("EE", 1.0, 3),
    "ee_mean_g": ("EE mean over g", 1.0, 3),
    "ee_latent": ("EE of the latent E(S(.))", 1.0, 3),
    "die_sen": ("DIE(S) x1e-3", 1e3, 1),
    "die_model": ("DIE(model) x1e-3", 1e3, 1),
    "slot_usage": ("slot usage", 1.0, 3),
    "pose_error_deg": ("SEN pose error (deg)", 1.0, 1),
}


@dataclass(frozen=True)
class Data:
    """A rollout recipe: random-policy episodes of ``steps`` recorded steps after ``warmup`` unrecorded ones."""

    episodes: int
    steps: int = 10
    warmup: int = 0


@dataclass(frozen=True)
class ExtraEval:
    """A further evaluation of every run of a setting: ``horizon``-step prediction on the setting's evaluation episodes or on others.

    Its metrics are stored as ``<name>:<metric>`` (``heldout10:hits@1``); a setting's ``metrics`` may list them.
    """

    name: str
    """column prefix, file-name safe"""
    label: str
    """what the table's column headers say after the metric"""
    horizon: int
    actions: str | None = None
    """evaluate on episodes collected with only these actions (``symwm collect --actions``; same seeds, no twins); None: the setting's evaluation episodes"""


@dataclass
class Setting:
    """One block of a table: a training set, an evaluation protocol and the variants compared on it."""

    key: str
    """file-name-safe id, unique within the work directory"""
    title: str
    env_id: str
    train: Data
    eval: Data
    variants: tuple[str, ...]
    metrics: tuple[str, ...]
    epochs: int
    batch_size: int
    lr: float
    size: str
    horizon: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    train_actions: str | None = None
    """action subset of the training data (``symwm collect --actions``); evaluation uses all actions"""
    twins: int | str | None = None
    """transformed twins of the evaluation episodes (needed for EE and DIE)"""
    hard_negatives: int = 0
    hinge_on: str = "state"
    """the negative term's hinge: on the whole state (the release's) or on each object (``TrainConfig.hinge_on``)"""
    temporal_negatives: bool = False
    """ask the latent to change wherever a transition's frames change (``TrainConfig.temporal_negatives``; not the release's)"""
    stabiliser_negatives: bool = False
    """push each next state away from itself turned where a collapsed latent cannot see (``TrainConfig.stabiliser_negatives``; not the release's)"""
    overrides: dict[str, Any] = field(default_factory=dict)
    """preset fields changed for every variant (``ModelSpec.overrides``, ``symwm train --set``)"""
    val_fraction: float = 0.02
    """share of the training episodes held out to choose the best checkpoint (0: lowest training loss, the paper's choice)"""
    paper: dict[str, dict[str, str]] = field(default_factory=dict)
    """the paper's figure per variant and metric, as printed there"""
    sweep: tuple[str, float] | None = None
    """(sweep name, x value) for settings that form a curve (data efficiency)"""
    extra_evals: tuple[ExtraEval, ...] = ()
    """further evaluations of every run (other horizons, held-out actions only)"""


def metric_info(s: Setting, metric: str) -> tuple[str, float, int]:
    """(label, display factor, decimals) of one of a setting's metrics, ``<extra eval>:<metric>`` included."""
    name, _, base = metric.rpartition(":")
    label, factor, digits = METRICS[base]
    if name:
        extra = next(e for e in s.extra_evals if e.name == name)
        label = f"{label}, {extra.label}"
    return label, factor, digits


# -------------------------------------------------------------------------------------------------
# Files
# -------------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    """File-name-safe text; the comparisons of action subsets keep their sense (``1>=0`` -> ``1-ge-0``, ``1<=0`` -> ``1-le-0``)."""
    for op, word in ((">=", "-ge-"), ("<=", "-le-")):
        text = text.replace(op, word)
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "all"


def data_path(work: Path, env_id: str, data: Data, seed: int, actions: str | None, twins: Any, env_kwargs: dict) -> Path:
    """Where a rollout file with these settings lives (distinct settings -> distinct names)."""
    kw = "_".join(f"{k}-{_slug(str(v))}" for k, v in sorted(env_kwargs.items()))
    name = f"{env_id.split('/')[-1]}_{_slug(actions or 'all')}_{data.episodes}x{data.steps}w{data.warmup}_tw{twins or 0}_s{seed}"
    return work / "data" / (name + (f"_{kw}" if kw else "") + ".h5")


#: fields of a Setting that do not change what its runs compute
_PRESENTATION = ("title", "variants", "metrics", "paper", "sweep")


def setting_digest(s: Setting) -> str:
    """A short digest of what a setting's runs depend on (data, protocol, training); options left at their defaults do not count."""
    keep = {}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if f.name not in _PRESENTATION and value != default:
            keep[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_dir(work: Path, s: Setting, variant: str, seed: int) -> Path:
    """A training run's directory."""
    return work / "runs" / s.key / variant / f"seed{seed}"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -------------------------------------------------------------------------------------------------
# One job: train one variant on one seed, then evaluate it (runs in a worker process)
# -------------------------------------------------------------------------------------------------


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) and evaluate; writes and returns ``eval.json`` of the run."""
    import torch

    from symwm.world_models.checkpoint import load_model
    from symwm.world_models.evaluate import evaluate
    from symwm.world_models.model import ModelSpec
    from symwm.world_models.train import TrainConfig, train

    torch.set_num_threads(int(job["threads"]))
    out = Path(job["out_dir"])
    result_path = out / "eval.json"
    summary = out / "summary.json"
    done = json.loads(summary.read_text()) if summary.exists() else {}
    if not (done.get("finished") and done.get("epochs_done", job["epochs"]) >= job["epochs"]):  # more epochs: continue the run
        family, _, variant = job["variant"].rpartition("/")  # "planar/ours": the planar family's ours
        spec = ModelSpec(job["env_id"], variant, job["size"], job["env_kwargs"], family=family or None, overrides=job.get("overrides", {}))
        cfg = TrainConfig(
            dataset=job["dataset"], out_dir=str(out), epochs=job["epochs"], batch_size=job["batch_size"], lr=job["lr"],
            seed=job["seed"], device=job["device"], progress=False, tensorboard=False, resume=(out / "last.pt").exists(),
            val_fraction=job["val_fraction"], hinge_on=job.get("hinge_on", "state"),
            temporal_negatives=job.get("temporal_negatives", False), stabiliser_negatives=job.get("stabiliser_negatives", False),
        )
        train(spec, cfg)
    summary_data = json.loads(summary.read_text())
    with open(out / "train_log.csv", newline="") as fh:
        log_rows = list(csv.DictReader(fh))
    device = "cuda" if job["device"] in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    model = load_model(out / "best.pt", device=device)
    start = time.perf_counter()
    metrics = evaluate(model, job["eval_dataset"], job["horizon"], device=device, seed=0, hard_negatives=job["hard_negatives"])
    for extra in job.get("extra_evals", []):
        more = evaluate(model, extra["dataset"], extra["horizon"], device=device, seed=0)
        metrics.update({f"{extra['name']}:{k}": v for k, v in more.items()})
    result = {
        "metrics": metrics,
        "extra_evals": job.get("extra_evals", []),
        "eval_dataset": job["eval_dataset"],
        "horizon": job["horizon"],
        "hard_negatives": job["hard_negatives"],
        "train_seconds": sum(float(r["seconds"]) for r in log_rows),
        "eval_seconds": time.perf_counter() - start,
        "best_epoch": summary_data.get("best_epoch"),
        "epochs": summary_data.get("epochs_done"),
        "best_loss": summary_data.get("best_loss"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": torch.cuda.get_device_name() if device == "cuda" else cpu_model(),
        "threads": int(job["threads"]),
    }
    _write_json(result_path, result)
    return result


def _finished(job: dict[str, Any]) -> bool:
    """Whether a job's evaluation exists and matches its protocol (and its epochs: a run asked for more is continued)."""
    path = Path(job["out_dir"]) / "eval.json"
    if not path.exists():
        return False
    r = json.loads(path.read_text())
    return ((r.get("eval_dataset"), r.get("horizon"), r.get("hard_negatives"), r.get("epochs", job["epochs"]), r.get("extra_evals", []))
            == (job["eval_dataset"], job["horizon"], job["hard_negatives"], job["epochs"], job.get("extra_evals", [])))


# -------------------------------------------------------------------------------------------------
# The runner
# -------------------------------------------------------------------------------------------------


def seeds_data(s: Setting, seed: int, work: Path) -> tuple[Path, Path]:
    """Train and eval rollout paths of a setting for one seed."""
    train = data_path(work, s.env_id, s.train, 1000 * seed + 1, s.train_actions, None, s.env_kwargs)
    ev = data_path(work, s.env_id, s.eval, 1000 * seed + 2, None, s.twins, s.env_kwargs)
    return train, ev


def extra_eval_data(s: Setting, e: ExtraEval, seed: int, work: Path) -> Path:
    """The rollout file an extra evaluation ranks on: the setting's evaluation episodes, or as many with ``e.actions`` only."""
    if e.actions is None:
        return seeds_data(s, seed, work)[1]
    return data_path(work, s.env_id, s.eval, 1000 * seed + 2, e.actions, None, s.env_kwargs)


def collect_all(settings: list[Setting], seeds: list[int], work: Path, n_envs: int) -> None:
    """Collect every rollout file the table needs (cached)."""
    from symwm.world_models.collect import ensure_collected

    for s in settings:
        for seed in seeds:
            train, ev = seeds_data(s, seed, work)
            extra = [(extra_eval_data(s, e, seed, work), s.eval, e.actions, None, 1000 * seed + 2) for e in s.extra_evals if e.actions]
            for path, data, actions, twins, dseed in (
                (train, s.train, s.train_actions, None, 1000 * seed + 1),
                (ev, s.eval, None, s.twins, 1000 * seed + 2),
                *extra,
            ):
                start = time.perf_counter()
                _, made = ensure_collected(
                    path, s.env_id, data.episodes, data.steps, seed=dseed, env_kwargs=s.env_kwargs, actions=actions,
                    warmup_steps=data.warmup, twins=twins, n_envs=n_envs, progress=False,
                )
                if made:
                    _log(f"collected {path.name} in {time.perf_counter() - start:.0f} s")


def make_jobs(settings: list[Setting], seeds: list[int], work: Path, device: str, threads: int) -> list[dict[str, Any]]:
    """One job per setting, variant and seed."""
    jobs = []
    for s in settings:
        for seed in seeds:
            train, ev = seeds_data(s, seed, work)
            for v in s.variants:
                jobs.append({
                    "setting": s.key, "variant": v, "seed": seed, "env_id": s.env_id, "env_kwargs": s.env_kwargs,
                    "size": s.size, "dataset": str(train), "eval_dataset": str(ev), "out_dir": str(run_dir(work, s, v, seed)),
                    "epochs": s.epochs, "batch_size": s.batch_size, "lr": s.lr, "device": device, "threads": threads,
                    "horizon": s.horizon, "hard_negatives": s.hard_negatives, "val_fraction": s.val_fraction, "hinge_on": s.hinge_on,
                    "temporal_negatives": s.temporal_negatives, "stabiliser_negatives": s.stabiliser_negatives,
                    "overrides": s.overrides,
                    "extra_evals": [{"name": e.name, "horizon": e.horizon, "dataset": str(extra_eval_data(s, e, seed, work))}
                                    for e in s.extra_evals],
                })
    return jobs


def run_pool(jobs: list[dict[str, Any]], parallel: int) -> None:
    """Run unfinished jobs in ``parallel`` worker processes (``python paper_tables.py --job <file>``, :func:`symwm.runner.run_tasks`)."""
    from symwm.runner import Phase, Task, run_tasks

    todo = [j for j in jobs if not _finished(j)]
    _log(f"{len(jobs) - len(todo)} of {len(jobs)} runs already done; {len(todo)} to go, {parallel} at a time")

    def argv(job: dict[str, Any]) -> list[str]:
        spec = Path(job["out_dir"]) / "job.json"
        spec.parent.mkdir(parents=True, exist_ok=True)
        _write_json(spec, job)
        return [sys.executable, str(Path(__file__).resolve()), "--job", str(spec)]

    tasks = [Task(f"{job['setting']}/{job['variant']}/seed{job['seed']}", [Phase(lambda job=job: argv(job), threads=int(job["threads"]))],
                  Path(job["out_dir"]) / "job.log") for job in todo]

    def done(task: Task, queued: int) -> None:
        m = json.loads((task.log.parent / "eval.json").read_text())["metrics"]  # the log sits in the run's directory
        main = next(iter(k for k in ("hard_hits@1", "hits@1") if k in m))
        _log(f"done {task.name} in {time.perf_counter() - task.started:.0f} s: {main} {m[main]:.1f}; {queued} queued")

    failed = run_tasks(tasks, parallel, on_done=done, log=_log)
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {', '.join(failed)}")


# -------------------------------------------------------------------------------------------------
# Reporting
# -------------------------------------------------------------------------------------------------


def collect_results(settings: list[Setting], seeds: list[int], work: Path) -> list[dict[str, Any]]:
    """One row per setting, variant and seed that has an evaluation."""
    rows = []
    for s in settings:
        config = setting_digest(s)
        for v in s.variants:
            for seed in seeds:
                path = run_dir(work, s, v, seed) / "eval.json"
                if path.exists():
                    r = json.loads(path.read_text())
                    rows.append({"setting": s.key, "variant": v, "seed": seed, **r["metrics"],
                                 "train_seconds": r["train_seconds"], "best_epoch": r["best_epoch"], "parameters": r["parameters"],
                                 "device": r["device"], "config": config})
    return rows


def earlier_rows(paths: list[Path], settings: list[Setting], have: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows of earlier reports' CSVs for runs not in ``have`` whose setting is unchanged (first file wins); and how many were stale.

    Tables share settings (table 5's 100,000-transition point is table 1's setting, same key, same
    runs), so a table reads its own CSV first and then its siblings'.
    """
    by_key = {s.key: s for s in settings}
    digest = {s.key: setting_digest(s) for s in settings}
    done = {(r["setting"], r["variant"], r["seed"]) for r in have}
    kept, stale = [], 0
    for path in paths:
        if not path.exists():
            continue
        with open(path, newline="") as fh:
            for raw in csv.DictReader(fh):
                s = by_key.get(raw.get("setting", ""))
                if s is None or raw.get("variant") not in s.variants:
                    continue
                if raw.get("config") != digest[s.key]:
                    stale += 1
                    continue
                key = (s.key, raw["variant"], int(raw["seed"]))
                if key in done:
                    continue
                row: dict[str, Any] = {"setting": s.key, "variant": raw["variant"], "seed": key[2], "device": raw["device"],
                                       "config": raw["config"], "carried": True}
                for k in (*METRICS, *extra_columns([s]), "train_seconds"):
                    row[k] = float(raw[k]) if raw.get(k) not in (None, "") else None
                for k in ("best_epoch", "parameters"):
                    row[k] = int(float(raw[k])) if raw.get(k) not in (None, "") else None
                kept.append(row)
                done.add(key)
    return kept, stale


#: the metrics an extra evaluation's CSV columns keep (its EE and DIE would repeat the main evaluation's or need twins)
EXTRA_METRICS = ("hits@1", "hits@5", "hits@10", "mrr")


def extra_columns(settings: list[Setting]) -> list[str]:
    """The CSV columns of the settings' extra evaluations: the ranking metrics under each extra evaluation's name."""
    return list(dict.fromkeys(f"{e.name}:{m}" for s in settings for e in s.extra_evals for m in EXTRA_METRICS))


def summarise(rows: list[dict[str, Any]], setting: str, variant: str, metric: str) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n - 1) and count of a metric over seeds."""
    vals = [r[metric] for r in rows if r["setting"] == setting and r["variant"] == variant and r.get(metric) not in (None, "")]
    if not vals:
        return math.nan, math.nan, 0
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals)


def cell(rows: list[dict[str, Any]], s: Setting, variant: str, metric: str, n_seeds: int | None = None) -> str:
    """``mean +- std`` in the metric's display units, with the paper's figure in brackets; says so when seeds are missing."""
    _, factor, digits = metric_info(s, metric)
    mean, std, n = summarise(rows, s.key, variant, metric)
    text = "n/a" if n == 0 else f"{mean * factor:.{digits}f} ± {std * factor:.{digits}f}"
    if 0 < n < (n_seeds or 0):
        text += f" ({n} of {n_seeds} seeds)"
    paper = s.paper.get(variant, {}).get(metric)
    return text + (f" [{paper}]" if paper else "")


def markdown(title: str, intro: list[str], settings: list[Setting], rows: list[dict[str, Any]], seeds: list[int], scale: str, plot: str | None) -> str:
    """The table file: one markdown table per setting."""
    devices = sorted({r["device"] for r in rows})
    lines = [f"# {title} ({scale} scale)", "", *intro, "",
             f"Seeds {', '.join(map(str, seeds))}; cells are mean ± standard deviation over seeds (n - 1), the paper's "
             "figure in [brackets] where it reports one (Park et al., earlier full version, arXiv 2204.11371). "
             f"Hardware: {'; '.join(devices) or 'n/a'}.", ""]
    carried = sum(1 for r in rows if r.get("carried"))
    if carried:
        lines += [f"{carried} of {len(rows)} runs are carried over from earlier reports' CSVs (this table's, or another "
                  "table's for a setting both share), matched by the `config` column: same data, protocol and training"
                  f"{'; the rest were read from their runs' if carried < len(rows) else ''}.", ""]
    for s in settings:
        variants = list(s.variants)
        acts = f"trained on `{s.train_actions}`" if s.train_actions else "trained on all actions"
        lines += [f"## {s.title}", "",
                  f"`{s.env_id}` {json.dumps(s.env_kwargs) if s.env_kwargs else ''} {acts}; {s.train.episodes} x {s.train.steps} training "
                  f"transitions{f' after {s.train.warmup} warm-up steps' if s.train.warmup else ''}; evaluation on "
                  f"{s.eval.episodes} episodes with all actions, other seeds, {s.horizon}-step prediction"
                  f"{f', {s.twins} twins' if s.twins else ''}{f', {s.hard_negatives} hard negatives' if s.hard_negatives else ''}. "
                  f"`{s.size}` models, {s.epochs} epochs, batch {s.batch_size}, Adam lr {s.lr}"
                  f"{', one hinge per object' if s.hinge_on == 'object' else ''}"
                  f"{', temporal negatives' if s.temporal_negatives else ''}"
                  f"{', stabiliser negatives' if s.stabiliser_negatives else ''}"
                  f"{''.join(f', `{k}={v}`' for k, v in s.overrides.items())}.", ""]
        if s.extra_evals:
            lines += ["Further evaluations of the same runs: " + "; ".join(
                f"{e.label}: {e.horizon}-step prediction on "
                + (f"{s.eval.episodes} other episodes with only `{e.actions}` (same seeds, no twins)" if e.actions else "the same episodes")
                for e in s.extra_evals) + ".", ""]
        lines.append("| model | " + " | ".join(metric_info(s, m)[0] for m in s.metrics) + " | params | train s |")
        lines.append("|---" * (len(s.metrics) + 3) + "|")
        for v in variants:
            sel = [r for r in rows if r["setting"] == s.key and r["variant"] == v]
            params = f"{int(sel[0]['parameters']):,}" if sel else ""
            secs = f"{np.mean([r['train_seconds'] for r in sel]):.0f}" if sel else ""
            lines.append(f"| {v} | " + " | ".join(cell(rows, s, v, m, len(seeds)) for m in s.metrics) + f" | {params} | {secs} |")
        lines.append("")
    if plot:
        lines += [f"![{title}]({plot})", ""]
    return "\n".join(lines)


def plot(path: Path, settings: list[Setting], rows: list[dict[str, Any]], metric_of: Callable[[Setting], str]) -> None:
    """Bars (mean, std, every seed as a dot) per setting and variant, the paper's figure as a black tick; sweeps as curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = [s for s in settings if s.sweep is None]
    sweeps: dict[str, list[Setting]] = {}
    for s in settings:
        if s.sweep is not None:
            sweeps.setdefault(s.sweep[0], []).append(s)
    panels = len(blocks) + len(sweeps)
    colour = {v: f"C{i}" for i, v in enumerate(dict.fromkeys(v for s in settings for v in s.variants))}  # one colour per variant
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels + 0.4, 3.4), squeeze=False)
    for ax, s in zip(axes[0], blocks):
        m = metric_of(s)
        label, factor, _ = metric_info(s, m)
        for i, v in enumerate(s.variants):
            mean, std, n = summarise(rows, s.key, v, m)
            ax.bar(i, mean * factor, yerr=std * factor, color=colour[v], alpha=0.75, capsize=3)
            vals = [r[m] * factor for r in rows if r["setting"] == s.key and r["variant"] == v]
            ax.plot([i] * len(vals), vals, "k.", ms=4)
            paper = s.paper.get(v, {}).get(m)
            if paper:
                ax.plot([i - 0.4, i + 0.4], [float(paper.split()[0])] * 2, "k-", lw=2)
        long = any(len(v) > 6 for v in s.variants)  # "planar/ours": slanted so that labels do not overlap
        ax.set_xticks(range(len(s.variants)), s.variants, rotation=30 if long else 0, ha="right" if long else "center", fontsize=8)
        if not any(r["setting"] == s.key for r in rows):
            ax.text(0.5, 0.5, "not run at this protocol", transform=ax.transAxes, ha="center", va="center", fontsize=9)
            ax.set_yticks([])
        ax.set_ylabel(label)
        ax.set_title(s.title, fontsize=8)
    for ax, (name, group) in zip(axes[0][len(blocks):], sweeps.items()):
        group = sorted(group, key=lambda s: s.sweep[1])
        m = metric_of(group[0])
        label, factor, _ = metric_info(group[0], m)
        for i, v in enumerate(group[0].variants):
            xs = [s.sweep[1] for s in group]
            stats = [summarise(rows, s.key, v, m) for s in group]
            ax.errorbar(xs, [st[0] * factor for st in stats], yerr=[st[1] * factor for st in stats], marker="o", capsize=3, label=v, color=colour[v])
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(xs, [f"{x:,.0f}" for x in xs])
        ax.set_xlabel("training transitions")
        ax.set_ylabel(label)
        ax.set_title(name, fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle("black ticks: the paper's figure; dots: seeds", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(name: str, title: str, intro: list[str], settings: list[Setting], seeds: list[int], work: Path, out: Path, scale: str,
                 metric_of: Callable[[Setting], str]) -> Path:
    """Write ``<out>/<name>_<scale>.{md,csv,png}`` from the runs' evaluations and the earlier report's rows of runs not here."""
    stem = f"{name}_{scale}"
    rows = collect_results(settings, seeds, work)
    siblings = sorted(p for p in out.glob(f"*_{scale}.csv") if p.name != f"{stem}.csv")
    kept, stale = earlier_rows([out / f"{stem}.csv", *siblings], settings, rows)
    if kept or stale:
        _log(f"{len(kept)} row(s) carried over from earlier reports in {out} (runs not in {work}); {stale} dropped (setting changed)")
    order = {(s.key, v): (i, j) for i, s in enumerate(settings) for j, v in enumerate(s.variants)}
    rows = sorted(rows + kept, key=lambda r: (order[r["setting"], r["variant"]], r["seed"]))
    seeds = sorted(set(seeds) | {r["seed"] for r in rows})
    out.mkdir(parents=True, exist_ok=True)
    keys = ["setting", "variant", "seed", *METRICS, *extra_columns(settings), "train_seconds", "best_epoch", "parameters", "device", "config"]
    tmp = out / f".{stem}.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out / f"{stem}.csv")
    plot(out / f"{stem}.png", settings, rows, metric_of)
    md = out / f"{stem}.md"
    tmp = out / f".{stem}.md.tmp"
    tmp.write_text(markdown(title, intro, settings, rows, seeds, scale, f"{stem}.png"))
    os.replace(tmp, md)
    return md


# -------------------------------------------------------------------------------------------------
# Command line shared by the table scripts
# -------------------------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    """The options every table script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scale", choices=SCALES, default="cpu", help="cpu: minutes per run on a CPU; paper: the paper's sizes and 100 epochs (GPU)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds (default: 0 1 2 3 4)")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at the same time (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--work", default=None, help="runs and rollouts (default: runs/bench/<scale>)")
    p.add_argument("--out", default=None, help="where the tables go (default: benchmarks/results/tables; --quick: <work>/results)")
    p.add_argument("--only", nargs="+", default=None, help="only these setting keys")
    p.add_argument("--variants", nargs="+", default=None, help="only these model variants")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from finished runs")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data, 1 epoch, 1 seed (into runs/bench/quick)")
    return p


def main(name: str, title: str, intro: list[str], build: Callable[[str, bool], list[Setting]], metric_of: Callable[[Setting], str],
         argv: list[str] | None = None) -> Path:
    """Run a table script: collect, train and evaluate what is missing, then write the report."""
    args = parser(title).parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
    settings = build(args.scale, args.quick)
    selected = settings
    if args.only:
        unknown = set(args.only) - {s.key for s in settings}
        if unknown:
            raise SystemExit(f"unknown setting(s) {sorted(unknown)}; known: {[s.key for s in settings]}")
        selected = [s for s in settings if s.key in args.only]
    if args.variants:
        selected = [dataclasses.replace(s, variants=tuple(v for v in s.variants if v in args.variants)) for s in selected]
    work = Path(args.work or ROOT / "runs" / "bench" / ("quick" if args.quick else args.scale))
    out = Path(args.out) if args.out else work / "results" if args.quick else ROOT / "benchmarks" / "results" / "tables"
    start = time.perf_counter()
    if not args.report_only:
        _log(f"{name}: {len(selected)} setting(s), seeds {args.seeds}, work dir {work}")
        collect_all(selected, args.seeds, work, n_envs=max(1, args.jobs * args.threads))
        run_pool(make_jobs(selected, args.seeds, work, args.device, args.threads), args.jobs)
    intro = [*intro, "", f"Made by `python benchmarks/{name}.py --scale {args.scale}` (Python {platform.python_version()}); "
             f"{args.jobs} runs at a time with {args.threads} thread(s) each."]
    md = write_report(name, title, intro, settings, args.seeds, work, out, args.scale, metric_of)
    _log(f"wrote {md} ({(time.perf_counter() - start) / 60:.1f} min)")
    return md


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--job":
        run_job(json.loads(Path(sys.argv[2]).read_text()))
    else:
        raise SystemExit("run one of the table scripts (benchmarks/table*.py); this module is their shared runner")
