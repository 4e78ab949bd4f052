"""Where one training step's time goes, per model preset: SEN, encoder, transition, loss, backward, optimiser.

A step of our trainer (``symwm/world_models/train.py``: ``model(obs, act, next_obs)``, the contrastive
loss, backward, Adam) is cut into its phases, each ended by a barrier and timed on its own; the median
over ``--steps`` steps is reported with the slowest and fastest. Backward is split by differencing:
the same step with the SEN's output detached (no SEN backward) and with the encoder's output detached
(only the transition's and the loss's backward), so

    SEN backward = backward - backward without SEN;  encoder backward = backward without SEN - backward of transition and loss.

escnn's filter expansion (every equivariant layer rebuilds its filter from its basis coefficients on
every training-mode call) is timed on its own line; it is part of the forward phases above it.
Beside the phases: the step's FLOPs (matrix products and convolutions, forward and backward, torch's
``FlopCounterMode``), the achieved GFLOP/s and its share of the machine's float32 peak measured in the
same run (``train_speed.matmul_peak_gflops``), and the five operators with the most self time
(``torch.profiler``, one step).

    .venv/bin/python benchmarks/train_profile.py                          # cpu-size presets, batch 256, 2 threads
    .venv/bin/python benchmarks/train_profile.py --size paper --presets grid/ours,grid/none --batch 256
    .venv/bin/python benchmarks/train_profile.py --quick                  # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import torch  # noqa: E402
from train_speed import (  # noqa: E402
    LR,
    PRESETS,
    check_device,
    device_description,
    fmt,
    matmul_peak_gflops,
    median,
    random_batch,
    selected,
    software_line,
    spec_for,
    step_flops,
    sync,
    write_atomic,
    write_csv,
)

#: the phases of one step, in order, with what the report calls them
PHASES = {
    "preprocess": "uint8 -> float, NHWC -> NCHW",
    "sen": "SEN forward",
    "encoder": "encoder forward",
    "transition": "transition forward",
    "loss": "loss forward",
    "backward": "backward (all)",
    "optimizer": "Adam step (zero_grad + step; the trainer's, fused)",
}
#: Reacher's frame size at the `cpu` scale (table 2's); train_speed's presets use the paper's 128
CPU_REACHER_RESOLUTION = 64
FIELDS = ("preset", "size", "batch", "threads", "phase", "ms", "ms_min", "ms_max", "share")


def _timed(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def step_phases(model, optimizer, batch, i: int, detach: str | None = None) -> dict[str, float]:
    """One training step of ``model`` cut into timed phases (seconds); ``detach``: 'sen' or 'encoder' cuts the backward there."""
    from symwm.world_models.loss import contrastive_loss

    obs, act, nxt = batch
    device = obs.device
    t: dict[str, float] = {}
    x, t["preprocess"] = _timed(device, lambda: model.preprocess(torch.cat([obs, nxt], dim=0)))  # [2B, C, H, W]
    v, t["sen"] = _timed(device, lambda: model.sen(x))
    if detach == "sen":
        v = v.detach()
    both, t["encoder"] = _timed(device, lambda: model.encoder(v))  # [2B, K, D]
    if detach == "encoder":
        both = both.detach()
    z, z_next = both.chunk(2, dim=0)
    z_pred, t["transition"] = _timed(device, lambda: model.transition(z, act))
    generator = torch.Generator().manual_seed(i)
    (loss, _), t["loss"] = _timed(device, lambda: contrastive_loss(z, z_pred, z_next, generator))
    optimizer.zero_grad(set_to_none=True)
    if loss.requires_grad:
        _, t["backward"] = _timed(device, loss.backward)
    else:  # everything before the cut is detached and nothing after it has parameters (matmul): no backward at all
        t["backward"] = 0.0
    _, t["optimizer"] = _timed(device, lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True)))
    return t


def filter_expansion_seconds(model) -> float:
    """Seconds to rebuild every escnn layer's filter from its basis (as each training-mode call does), with autograd on."""
    layers = [m for m in model.modules() if hasattr(m, "expand_parameters") and type(m).__module__.startswith("escnn")]
    device = next(model.parameters()).device
    sync(device)
    start = time.perf_counter()
    for m in layers:
        m.expand_parameters()
    sync(device)
    return time.perf_counter() - start


def top_operators(step: Callable[[int], Any], n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` operators with the most self CPU time in one step, with their share of the step's self time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(0)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / total) for e in events[:n]]


def profile_preset(label: str, size: str, batch: int, steps: int, device: torch.device, seed: int = 0) -> dict[str, Any]:
    """Phases (median, min, max over ``steps``), filter expansion, FLOPs and top operators of one preset's training step."""
    from symwm.world_models.build import build_model
    from symwm.world_models.train import make_optimizer

    torch.manual_seed(seed)
    spec = spec_for(label, size)
    if size == "cpu" and spec.env_id == "symwm/Reacher-v0":  # the cpu tables' frames (table 2), not the paper's 128x128
        spec = dataclasses.replace(spec, env_kwargs={**spec.env_kwargs, "resolution": CPU_REACHER_RESOLUTION})
    model = build_model(spec, initialize=False).to(device).train()
    optimizer = make_optimizer(model, LR)
    data = random_batch(spec, batch, device, seed)
    step_phases(model, optimizer, data, 0)  # warm-up
    runs: dict[str | None, list[dict[str, float]]] = {None: [], "sen": [], "encoder": []}
    expansion = []
    for i in range(steps):  # the three cuts interleaved, step after step
        for cut in runs:
            runs[cut].append(step_phases(model, optimizer, data, i, cut))
        expansion.append(filter_expansion_seconds(model))
    phases = {p: [r[p] for r in runs[None]] for p in PHASES}
    no_sen = [r["backward"] for r in runs["sen"]]
    only_transition = [r["backward"] for r in runs["encoder"]]
    phases["backward: SEN"] = [a - b for a, b in zip(phases["backward"], no_sen)]
    phases["backward: encoder"] = [a - b for a, b in zip(no_sen, only_transition)]
    phases["backward: transition and loss"] = only_transition
    phases["escnn filter expansion (within the forwards)"] = expansion
    totals = [sum(r[p] for p in PHASES) for r in runs[None]]
    whole = lambda i: step_phases(model, optimizer, data, i)  # noqa: E731
    flops = step_flops(whole)
    ops = top_operators(whole)
    return {"preset": label, "size": size, "batch": batch, "params": sum(p.numel() for p in model.parameters()), "phases": phases,
            "step": totals, "flops": flops, "top_ops": ops}


def rows_of(result: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """CSV rows: one per phase (ms: median, min, max; share of the median step)."""
    step = median(result["step"])
    out = []
    for phase, values in [*result["phases"].items(), ("step", result["step"])]:
        out.append({"preset": result["preset"], "size": result["size"], "batch": result["batch"], "threads": threads, "phase": phase,
                    "ms": round(1000 * median(values), 2), "ms_min": round(1000 * min(values), 2),
                    "ms_max": round(1000 * max(values), 2), "share": round(median(values) / step, 4)})
    return out


def report(out: Path, results: list[dict[str, Any]], args: argparse.Namespace, device: torch.device, peaks: list[float]) -> Path:
    """``train_profile_<device>.md`` and ``.csv``; returns the markdown path."""
    stem = f"train_profile_{device.type}" + (f"_{args.size}" if args.size != "cpu" else "")
    rows = [r for res in results for r in rows_of(res, args.threads)]
    write_csv(out / f"{stem}.csv", rows, FIELDS)
    peak = median(peaks)
    lines = [
        f"# Where a training step's time goes ({device.type}, `{args.size}` presets)", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `benchmarks/train_profile.py` on {device_description(device)};",
        f"{software_line()}; {args.threads} threads; batch {args.batch} transitions (both frames of each through the SEN and",
        "encoder)" + (f"; Reacher at {CPU_REACHER_RESOLUTION}x{CPU_REACHER_RESOLUTION} as in table 2's `cpu` scale" if args.size == "cpu" else "")
        + f"; float32; random uint8 frames and valid random actions; models built with `initialize=False`. Each phase",
        "ends with a barrier and is timed alone; cells are the median over "
        f"{args.steps} steps [fastest, slowest]. Backward per part by differencing (the same step with the SEN's, then the",
        "encoder's output detached); a difference can come out slightly negative where a part's backward is tiny.",
        f"Peak: a {args.peak_n}x{args.peak_n} float32 matrix product in the same run, " + ", ".join(f"{p:.1f}" for p in peaks)
        + " GFLOP/s (before, after).", "",
    ]
    lines += ["| preset | params | step ms | " + " | ".join(PHASES.values()) + " | backward: SEN / encoder / transition+loss "
              "| of which escnn filter expansion | GFLOP/step | GFLOP/s | share of peak |",
              "|---" * (len(PHASES) + 8) + "|"]
    for res in results:
        ph = res["phases"]
        step = median(res["step"])
        cell = lambda p: f"{1000 * median(ph[p]):.1f} ({100 * median(ph[p]) / step:.0f} %)"  # noqa: E731
        back = " / ".join(f"{1000 * median(ph[p]):.1f}" for p in ("backward: SEN", "backward: encoder", "backward: transition and loss"))
        gflop = res["flops"] / 1e9
        lines.append(f"| {res['preset']} | {res['params']:,} | {1000 * step:.1f} [{1000 * min(res['step']):.1f}, {1000 * max(res['step']):.1f}] | "
                     + " | ".join(cell(p) for p in PHASES) + f" | {back} | {cell('escnn filter expansion (within the forwards)')} | "
                     f"{gflop:.2f} | {gflop / step:.1f} | {100 * gflop / step / peak:.1f} % |")
    lines += ["", "## Operators with the most self time (one step, `torch.profiler`)", "", "| preset | operators (share of the step's self CPU time) |",
              "|---|---|"]
    for res in results:
        lines.append(f"| {res['preset']} | " + "; ".join(f"`{name}` {100 * share:.0f} %" for name, share in res["top_ops"]) + " |")
    lines += ["", f"Made by `python benchmarks/train_profile.py {' '.join(args.argv)}` (Python {platform.python_version()}).", ""]
    path = out / f"{stem}.md"
    write_atomic(path, "\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Profile the presets; returns one result per preset."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--presets", default="", help=f"comma-separated subset of: {', '.join(PRESETS)} (default all)")
    p.add_argument("--size", default="cpu", choices=("paper", "cpu"), help="model size preset (default cpu: what the tables train)")
    p.add_argument("--batch", type=int, default=256, help="transitions per step (default 256)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per cut (default 5)")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 4, 1 step, small peak matrix")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results; --quick: runs/speed_quick)")
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.batch, args.steps = 4, 1
    args.peak_n = 256 if args.quick else 2048
    torch.set_num_threads(args.threads)
    device = check_device(args.device)
    out = Path(args.out or ROOT / ("runs/speed_quick" if args.quick else "benchmarks/results"))
    presets = selected(args.presets, tuple(PRESETS), "preset(s)")
    peaks = [matmul_peak_gflops(device, args.peak_n)]
    results = []
    for label in presets:
        res = profile_preset(label, args.size, args.batch, args.steps, device)
        results.append(res)
        step = median(res["step"])
        print(f"train_profile preset={label} size={args.size} batch={args.batch} step_ms={1000 * step:.1f} "
              + " ".join(f"{k}_ms={1000 * median(v):.1f}" for k, v in res["phases"].items() if k in PHASES)
              + f" gflop={res['flops'] / 1e9:.3f}", flush=True)
    peaks.append(matmul_peak_gflops(device, args.peak_n))
    path = report(out, results, args, device, peaks)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
