"""The method's value on environments written outside symwm: trained without one action, evaluated on all.

For each example of ``examples/`` and each seed: one-step training episodes from random start
states with a held-out action excluded (the release's recipe for limited-action sets), ten-step
evaluation episodes with every action (other seeds, with the quarter-turn twin of each), ``ours``
and ``none`` of the family symwm picks for the env, trained with the same budget; 10-step Hits@1
and MRR ranked among all evaluation episodes, and the SEN's EE.

* ``hex``: examples/hex_env.py (C6, six moves), trained without move 3; C6 maps move 3 onto
  every other move, so the held-out move's effect follows from the others only for an
  equivariant model.
* ``puck``: examples/puck_env.py (D4, 2-d forces), trained with forces pointing right only
  (``0>=0``); the quarter turns map them onto every direction.
* ``hex-tokens``: examples/hex_tokens_env.py (C6 x S3, three tokens, six moves each; the
  ``planar-objects`` family), trained without move 3 of every token; ``hex-tokens-temporal`` the
  same with temporal negatives (``TrainConfig.temporal_negatives``), which ask a slot that lost
  its token to take it back (``slot_usage`` near 0 marks such a slot).

    .venv/bin/python benchmarks/example_generalisation.py --restarts 4 --examples hex,puck,hex-tokens   # committed: 53 min
    .venv/bin/python benchmarks/example_generalisation.py --examples hex-tokens-temporal   # committed: 12 min (2-core Xeon)
    .venv/bin/python benchmarks/example_generalisation.py                # one initialisation per run: about 35 minutes
    .venv/bin/python benchmarks/example_generalisation.py --quick    # smoke run

Writes ``benchmarks/results/examples/generalisation.csv`` (one row per example, variant and seed)
and ``generalisation.md`` (mean, std, min and max over seeds).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "examples"))
from machine import cpu_model  # noqa: E402
from train_speed import write_atomic, write_csv  # noqa: E402

EXAMPLES = {
    "hex": dict(env_id="hex_env:HexToken-v0", held_out="no-3", title="C6 hexagonal board, trained without move 3"),
    "puck": dict(env_id="puck_env:Puck-v0", held_out="0>=0", title="D4 puck, trained with rightward forces only"),
    "hex-tokens": dict(env_id="hex_tokens_env:HexTokens-v0", held_out="no-3,no-9,no-15",
                       title="C6 x S3, three tokens on a hexagonal board, trained without move 3 of any token"),
    "hex-tokens-temporal": dict(env_id="hex_tokens_env:HexTokens-v0", held_out="no-3,no-9,no-15", data="hex-tokens",
                                temporal_negatives=True, title="the same, with temporal negatives (not the release's loss)"),
}
INTEGER = ("seed", "distinct_final_obs", "train_transitions", "eval_episodes", "epochs", "restarts")
NUMERIC = ("hits@1", "mrr", "distinct_hits@1", "distinct_mrr", "held_in_distinct_hits@1", "ee", "ee_latent", "slot_usage",
           "train_seconds")
COLUMNS = ("example", "variant", "seed", "hits@1", "mrr", "distinct_hits@1", "distinct_mrr", "held_in_distinct_hits@1",
           "distinct_final_obs", "ee", "ee_latent", "slot_usage", "train_transitions", "eval_episodes", "epochs", "restarts", "chosen_val_loss",
           "other_val_losses", "train_seconds")


def run(job: dict) -> dict:
    """Train one variant on one seed's data and evaluate it (a worker process, one thread)."""
    import torch

    torch.set_num_threads(1)  # the examples are importable: spawn re-runs this module's top level, which puts them on sys.path
    from symwm.world_models.checkpoint import load_model
    from symwm.world_models.evaluate import evaluate
    from symwm.world_models.model import ModelSpec
    from symwm.world_models.train import TrainConfig, train

    out = Path(job["work"]) / job["example"] / job["variant"] / f"seed{job['seed']}"
    if not job["eval_only"]:
        cfg = TrainConfig(dataset=job["train"], out_dir=str(out), epochs=job["epochs"], batch_size=256, lr=1e-3, seed=job["seed"],
                          progress=False, tensorboard=False, val_fraction=0.02, overwrite=True, restarts=job["restarts"],
                          restart_epochs=job["restart_epochs"], temporal_negatives=job["temporal_negatives"])
        train(ModelSpec(job["env_id"], job["variant"]), cfg)
    model = load_model(out / "best.pt")
    m = evaluate(model, job["eval"], 10, seed=job["seed"], distinct_targets=True)
    held_in = evaluate(model, job["held_in"], 10, seed=job["seed"], distinct_targets=True)
    train_seconds = _log_seconds(out)
    chosen, others = "", ""
    if (out / "restarts.json").exists():  # every candidate's seconds count; the chosen one's first epochs are in the log above
        picked = json.loads((out / "restarts.json").read_text())
        train_seconds += sum(_log_seconds(out / "restarts" / str(c["candidate"])) for c in picked["candidates"]
                             if c["candidate"] != picked["chosen"])
        chosen = round(picked["candidates"][picked["chosen"]]["val_loss"], 4)
        others = " ".join(f"{c['val_loss']:.4f}" for c in picked["candidates"] if c["candidate"] != picked["chosen"])
    return {"example": job["example"], "variant": job["variant"], "seed": job["seed"], "hits@1": round(m["hits@1"], 2),
            "mrr": round(m["mrr"], 2), "distinct_hits@1": round(m["distinct_hits@1"], 2), "distinct_mrr": round(m["distinct_mrr"], 2),
            "held_in_distinct_hits@1": round(held_in["distinct_hits@1"], 2), "distinct_final_obs": int(m["distinct_final_obs"]),
            "ee": round(m["ee"], 4), "ee_latent": round(m["ee_latent"], 4) if "ee_latent" in m else "",
            "slot_usage": round(m["slot_usage"], 3) if "slot_usage" in m else "",
            "train_transitions": job["n_train"], "eval_episodes": job["n_eval"], "epochs": job["epochs"],
            "restarts": job["restarts"], "chosen_val_loss": chosen, "other_val_losses": others, "train_seconds": round(train_seconds, 1)}


def _log_seconds(run: Path) -> float:
    """Training seconds a run's ``train_log.csv`` records (the sum over its epochs)."""
    with open(run / "train_log.csv") as fh:
        return sum(float(r["seconds"]) for r in csv.DictReader(fh))


def _stat(sub: list[dict], key: str) -> str:
    """``mean ± std (min)`` of one column over seeds."""
    v = np.array([r[key] for r in sub], dtype=float)
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():.1f} ± {sd:.1f} ({v.min():.1f})"


def markdown(rows: list[dict]) -> str:
    lines = [
        "# ours against none on environments written outside symwm",
        "",
        f"`benchmarks/example_generalisation.py` on {cpu_model()}, 2 cores. Trained on one-step episodes from random",
        f"starts without part of the actions ({rows[0]['train_transitions']:,} transitions, {rows[0]['epochs']} epochs, "
        f"`cpu` presets of the family symwm picks), 10-step predictions on all actions ranked among "
        f"{rows[0]['eval_episodes']:,} evaluation episodes; EE of the SEN at the quarter turn. Per-seed rows: "
        "[generalisation.csv](generalisation.csv).",
        "",
        "Hits@1 is ranked the release's way. Distinct Hits@1 leaves episodes that end in the same observation out of",
        "each other's candidates (`symwm eval --distinct-targets`): on a board with few cells many episodes end alike,",
        "and ranked the release's way a perfect model then scores about 1 / (episodes per final observation).",
        "",
        "Held-in: 10-step distinct Hits@1 on other episodes restricted to the training actions. `ee_latent`: the",
        "EE of the whole encoder `E(S(.))` against the latent's group action (`ours` only; not the release's EE, which is",
        "the SEN's).",
        "",
        "Slot usage (object-factored latents): the least-varying object slot's spread over the true latents relative to",
        "the median slot's; near 0 a slot encodes nothing, its token is lost to the model.",
        "",
        "Restarts: initialisations tried per run (`TrainConfig.restarts`, the same for both variants); each trains 10 epochs",
        "(`--restart-epochs`) on the same data and batches, and the one with the lowest validation loss trains on to the epochs above",
        "(the chosen and the others' validation losses are in the CSV; training seconds count every candidate).",
        "",
        "| example | variant | Hits@1 % mean ± std (min) | distinct Hits@1 % mean ± std (min) | per seed | "
        "held-in distinct Hits@1 % | EE | ee_latent | slot usage | different final observations | seeds | restarts |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ex in EXAMPLES:
        for variant in ("ours", "none"):
            sub = [r for r in rows if r["example"] == ex and r["variant"] == variant]
            if not sub:
                continue
            per_seed = ", ".join(f"{r['distinct_hits@1']:.1f}" for r in sub)
            ee_latent = [r["ee_latent"] for r in sub if r["ee_latent"] != ""]
            usage = [r["slot_usage"] for r in sub if r.get("slot_usage", "") != ""]
            lines.append(f"| {EXAMPLES[ex]['title']} | {variant} | {_stat(sub, 'hits@1')} | {_stat(sub, 'distinct_hits@1')} | "
                         f"{per_seed} | {_stat(sub, 'held_in_distinct_hits@1')} | {np.mean([r['ee'] for r in sub]):.3f} | "
                         f"{', '.join(f'{e:.3f}' for e in ee_latent) or '-'} | "
                         f"{', '.join(f'{u:.2f}' for u in usage) or '-'} | "
                         f"{np.mean([r['distinct_final_obs'] for r in sub]):.0f} | {len(sub)} | "
                         f"{', '.join(str(r['restarts']) for r in sub)} |")
    return "\n".join(lines) + "\n"


def carried_over(path: Path, rows: list[dict]) -> list[dict]:
    """Rows of the committed CSV for (example, variant, seed) not run now: a run of one example keeps the others'."""
    if not path.exists():
        return []
    ran = {(r["example"], r["variant"], int(r["seed"])) for r in rows}
    kept = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["example"] in EXAMPLES and (r["example"], r["variant"], int(r["seed"])) not in ran:
                row = {k: (int(v) if k in INTEGER else float(v) if k in NUMERIC and v != "" else v) for k, v in r.items()}
                kept.append({"restarts": 1, "chosen_val_loss": "", "other_val_losses": "", "slot_usage": "", **row})  # rows from before restarts
    return kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--examples", default=",".join(EXAMPLES))
    p.add_argument("--work", default=str(ROOT / "runs" / "examples"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "examples"))
    p.add_argument("--epochs", type=int, default=50, help="training epochs of every run (default: %(default)s)")
    p.add_argument("--restarts", type=int, default=1, help="initialisations tried per run, the lowest validation loss kept "
                   "(TrainConfig.restarts; both variants alike; default: %(default)s)")
    p.add_argument("--restart-epochs", type=int, default=10, help="epochs of each candidate before the choice (default: %(default)s)")
    p.add_argument("--eval-only", action="store_true", help="evaluate the runs' best checkpoints again, without training")
    p.add_argument("--quick", action="store_true", help="tiny data and one epoch (a smoke run; results not meaningful)")
    args = p.parse_args()
    from symwm.world_models.collect import ensure_collected

    n_train, n_eval, epochs = (300, 40, 2 if args.restarts > 1 else 1) if args.quick else (20_000, 1_000, args.epochs)
    work = Path(args.work) / "quick" if args.quick else Path(args.work)  # a smoke run never overwrites the real runs
    jobs = []
    for ex in args.examples.split(","):
        spec = EXAMPLES[ex]
        name = spec.get("data", ex)  # settings that differ only in training share their rollouts
        for seed in (int(s) for s in args.seeds.split(",")):
            train_h5, _ = ensure_collected(work / "data" / f"{name}_train_s{seed}_{n_train}.h5", spec["env_id"], n_train, 1,
                                           seed=1000 * seed + 1, actions=spec["held_out"], progress=False)
            eval_h5, _ = ensure_collected(work / "data" / f"{name}_eval_s{seed}_{n_eval}.h5", spec["env_id"], n_eval, 10,
                                          seed=1000 * seed + 2, twins="quarter-turn", progress=False)
            held_in_h5, _ = ensure_collected(work / "data" / f"{name}_heldin_s{seed}_{n_eval}.h5", spec["env_id"], n_eval, 10,
                                             seed=1000 * seed + 3, actions=spec["held_out"], progress=False)
            for variant in ("ours", "none"):
                jobs.append(dict(example=ex, env_id=spec["env_id"], variant=variant, seed=seed, train=str(train_h5),
                                 eval=str(eval_h5), held_in=str(held_in_h5), epochs=epochs, work=str(work), n_train=n_train,
                                 n_eval=n_eval, eval_only=args.eval_only, restarts=args.restarts,
                                 temporal_negatives=spec.get("temporal_negatives", False),
                                 restart_epochs=max(1, min(args.restart_epochs, epochs - 1))))
    import multiprocessing

    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(run, jobs))
    for r in rows:
        print(r, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = carried_over(out / "generalisation.csv", rows) + rows
    rows.sort(key=lambda r: (list(EXAMPLES).index(r["example"]), ("ours", "none").index(r["variant"]), int(r["seed"])))
    write_csv(out / "generalisation.csv", rows, COLUMNS)
    write_atomic(out / "generalisation.md", markdown(rows))
    print((out / "generalisation.md").read_text())


if __name__ == "__main__":
    main()
