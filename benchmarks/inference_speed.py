"""Inference latency: a model's escnn modules in eval mode beside its ``export()``ed plain-torch copy.

For each family's ``ours`` (and Reacher's ``full``) at the ``paper`` and ``cpu`` sizes: the median
wall-clock latency of ``model.encode`` on 1 observation and on a batch of 256, and of one
``model.predict`` step on their latents, under ``torch.inference_mode``. ``eval`` is the model in
eval mode (escnn caches its expanded filters there but still wraps every call in
``GeometricTensor`` s); ``export`` is ``WorldModel.export()``. Models are built with
``initialize=False`` (weights uninitialised: speed only).

Prints one line per row; writes ``inference_speed_<device>.md`` and ``.csv`` to ``--out`` (default
``benchmarks/results``; with ``--quick``: ``runs/speed_quick``).

    .venv/bin/python benchmarks/inference_speed.py                  # CPU, 2 threads
    .venv/bin/python benchmarks/inference_speed.py --device cuda
    .venv/bin/python benchmarks/inference_speed.py --quick          # smoke run: cpu size, few repeats
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import torch  # noqa: E402
from train_speed import (  # noqa: E402
    check_device,
    device_description,
    fmt,
    random_batch,
    selected,
    software_line,
    spec_for,
    sync,
    write_atomic,
    write_csv,
)

#: the presets timed (labels of train_speed.PRESETS)
MODELS = ("grid/ours", "reacher/ours", "reacher/full", "rotation/ours")
SIZES = ("paper", "cpu")
BATCHES = (1, 256)
OPS = ("encode", "predict")
FIELDS = ("preset", "size", "mode", "op", "batch", "device", "threads", "median_ms", "per_obs_us", "repeats", "speedup")


def median_ms(fn: Callable[[], Any], device: torch.device, seconds: float, min_repeats: int, max_repeats: int) -> tuple[float, int]:
    """Median wall-clock milliseconds of ``fn()`` over repeats (each synchronised), and the repeat count."""
    fn()  # warm-up (lazy allocations, cuDNN algorithm choice)
    fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < seconds):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times), len(times)


def time_model(preset: str, size: str, device: torch.device, batches: tuple[int, ...], seconds: float, min_repeats: int, max_repeats: int) -> list[dict[str, Any]]:
    """Rows for one (preset, size): every mode x op x batch."""
    from symwm.world_models.build import build_model

    spec = spec_for(preset, size)
    model = build_model(spec, initialize=False).to(device).eval()
    exported = model.export().to(device).eval()
    data = {b: random_batch(spec, b, device, seed=b) for b in batches}
    rows = []
    for b in batches:
        obs, act, _ = data[b]
        for op in OPS:
            medians = {}
            for mode, m in (("eval", model), ("export", exported)):
                with torch.inference_mode():
                    z = m.encode(obs)
                    if op == "encode":
                        fn = functools.partial(m.encode, obs)
                    else:
                        fn = functools.partial(m.predict, z, act)
                    ms, n = median_ms(fn, device, seconds, min_repeats, max_repeats)
                medians[mode] = ms
                rows.append({
                    "preset": preset, "size": size, "mode": mode, "op": op, "batch": b, "device": device.type,
                    "threads": torch.get_num_threads(), "median_ms": round(ms, 4), "per_obs_us": round(1000 * ms / b, 2),
                    "repeats": n, "speedup": round(medians["eval"] / ms, 3) if mode == "export" else None,
                })
    return rows


def line_of(row: dict[str, Any]) -> str:
    """The one-line form of a row."""
    parts = [f"{k}={fmt(row[k], 3)}" for k in FIELDS[:-1]]
    if row.get("speedup") is not None:
        parts.append(f"speedup={row['speedup']:.2f}")
    return "inference_speed " + " ".join(parts)


def write_report(out: Path, rows: list[dict[str, Any]], args: argparse.Namespace, device: torch.device) -> Path:
    """``inference_speed_<device>.md`` and ``.csv``; returns the markdown path."""
    stem = f"inference_speed_{device.type}"
    write_csv(out / f"{stem}.csv", rows, FIELDS)
    lines = [
        f"# Inference latency ({device.type})",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `benchmarks/inference_speed.py` on {device_description(device)};",
        f"{software_line()}; {torch.get_num_threads()} CPU threads.",
        "",
        "Median wall-clock latency under `torch.inference_mode()` after two warm-up calls, each call synchronised;",
        f"at least {args.min_repeats} repeats and {args.seconds:g} s per row. `eval`: the model in eval mode (escnn modules",
        "with cached filters); `export`: `WorldModel.export()` (plain torch). `encode`: uint8 observations to",
        "latents (SEN + encoder); `predict`: one transition step on those latents. Random observations and",
        "actions; models built with `initialize=False` (speed only). Speedup = eval / export.",
        "",
        "| preset | size | op | batch | eval ms | export ms | export us / obs | speedup |",
        "|---|---|---|---|---|---|---|---|",
    ]
    index = {(r["preset"], r["size"], r["op"], r["batch"], r["mode"]): r for r in rows}
    for (preset, size, op, b, mode), r in index.items():
        if mode != "export":
            continue
        ev = index[(preset, size, op, b, "eval")]
        lines.append(
            f"| {preset} | {size} | {op} | {b} | {ev['median_ms']:.3f} | {r['median_ms']:.3f} | {r['per_obs_us']:.1f} | {r['speedup']:.2f}x |"
        )
    lines.append("")
    path = out / f"{stem}.md"
    write_atomic(path, "\n".join(lines))
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--presets", default="", help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: paper, cpu")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing budget per row")
    parser.add_argument("--min-repeats", type=int, default=10)
    parser.add_argument("--max-repeats", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="smoke run: grid/ours at the cpu size, batches 1 and 4, 3 repeats")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results; --quick: runs/speed_quick)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    args.batches = BATCHES
    if args.quick:
        args.presets = args.presets or "grid/ours"
        args.sizes = "cpu" if args.sizes == ",".join(SIZES) else args.sizes
        args.batches, args.seconds, args.min_repeats, args.max_repeats = (1, 4), 0.0, 3, 3
    if args.out is None:
        args.out = str(ROOT / ("runs/speed_quick" if args.quick else "benchmarks/results"))
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; returns the rows."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = check_device(args.device)
    rows: list[dict[str, Any]] = []
    for preset in selected(args.presets, MODELS, "preset(s)"):
        for size in selected(args.sizes, SIZES, "size(s)"):
            for row in time_model(preset, size, device, args.batches, args.seconds, args.min_repeats, args.max_repeats):
                rows.append(row)
                print(line_of(row), flush=True)
    path = write_report(Path(args.out), rows, args, device)
    print(f"wrote {path} and {path.with_suffix('.csv').name}")
    return rows


if __name__ == "__main__":
    main()
