"""Evaluation speed: table 1's evaluation (10,000 3D Blocks episodes, 10 steps, quarter-turn twins) per model.

Times :func:`symwm.world_models.evaluate.evaluate` as the table runner calls it (Hits@k and MRR
among all 10,000 predictions, slot usage, EE and DIE from the twins), reading the rollout file
included, for `cpu`-size models (what the tables train) in eval mode and ``export()``ed, in
``--rounds`` interleaved rounds; reports the median and the range. Speed does not depend on the
weights, so the models are freshly initialised. The rollout file is table 1's for seed 0
(``runs/bench/cpu/data``, collected if missing).

    .venv/bin/python benchmarks/eval_speed.py                  # ours and none, 3 rounds, 2 threads
    .venv/bin/python benchmarks/eval_speed.py --quick          # 40 episodes, 1 round
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_tables import ROOT, _log, collect_all, seeds_data  # noqa: E402
from table1_blocks import build  # noqa: E402
from train_speed import median, software_line, write_atomic, write_csv  # noqa: E402
from machine import cpu_model  # noqa: E402

#: the issue's target: seconds per model
TARGET_S = 60.0
FIELDS = ("variant", "mode", "threads", "episodes", "seconds", "seconds_min", "seconds_max", "rounds")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["ours", "none"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", default=None, help="rollouts (default: runs/bench/cpu; --quick: runs/bench/quick)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results; --quick: <work>/results)")
    p.add_argument("--quick", action="store_true", help="smoke run: table 1's quick data (40 episodes), 1 round")
    args = p.parse_args(argv)
    import torch

    from symwm.world_models.build import build_model
    from symwm.world_models.evaluate import evaluate
    from symwm.world_models.model import ModelSpec

    if args.quick:
        args.rounds = 1
    torch.set_num_threads(args.threads)
    s = build("cpu", args.quick)[0]
    work = Path(args.work or ROOT / "runs" / "bench" / ("quick" if args.quick else "cpu"))
    out = Path(args.out) if args.out else work / "results" if args.quick else ROOT / "benchmarks" / "results"
    collect_all([s], [0], work, n_envs=args.threads)
    eval_path = seeds_data(s, 0, work)[1]
    torch.manual_seed(0)
    models = {}
    for v in args.variants:
        model = build_model(ModelSpec(s.env_id, v, s.size, s.env_kwargs)).eval()
        models[(v, "eval mode")] = model
        models[(v, "exported")] = model.export()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        for key, model in models.items():
            start = time.perf_counter()
            evaluate(model, eval_path, s.horizon)
            times[key].append(time.perf_counter() - start)
            _log(f"round {r + 1}: {key[0]} {key[1]}: {times[key][-1]:.1f} s")
    rows = [{"variant": v, "mode": mode, "threads": args.threads, "episodes": s.eval.episodes, "seconds": round(median(t), 2),
             "seconds_min": round(min(t), 2), "seconds_max": round(max(t), 2), "rounds": len(t)} for (v, mode), t in times.items()]
    write_csv(out / "eval_speed_cpu.csv", rows, FIELDS)
    lines = [f"# Evaluation speed (cpu): table 1's evaluation per model", "",
             f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `benchmarks/eval_speed.py` on {cpu_model()}; {software_line()};",
             f"{args.threads} threads. `evaluate()` on {s.eval.episodes} 3D Blocks episodes of {s.horizon} steps with their quarter-turn",
             "twins (reading the file, the SEN and encoder on first and last frames and twins, the rollouts, the ranking among all",
             f"episodes, slot usage, EE, DIE), `{s.size}`-size models; median over {args.rounds} interleaved rounds [fastest, slowest].",
             f"Target: under {TARGET_S:.0f} s per model.", "",
             "| model | mode | seconds | target |", "|---|---|---|---|"]
    for r in rows:
        verdict = "met" if r["seconds"] < TARGET_S else "MISSED"
        lines.append(f"| {r['variant']} | {r['mode']} | {r['seconds']:.1f} [{r['seconds_min']:.1f}, {r['seconds_max']:.1f}] | {verdict} |")
    lines += ["", f"Made by `python benchmarks/eval_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
              f"(Python {platform.python_version()}).", ""]
    write_atomic(out / "eval_speed_cpu.md", "\n".join(lines))
    _log(f"wrote {out / 'eval_speed_cpu.md'}")
    return rows


if __name__ == "__main__":
    main()
