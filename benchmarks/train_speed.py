"""Training throughput and peak memory of every model preset, ours beside an emulation of the authors' release.

One full training step (SEN, encoder, transition, contrastive loss, backward, Adam) is timed on random
uint8 observations of the environment's shape and valid random actions, generated on the device
(data loading is not timed). Models are built with ``initialize=False`` (escnn's weight
initialisation is slow and irrelevant to speed): the output says ``init=skipped``. The authors'
release (github jypark0/sen) is emulated by :mod:`authors_release` at the same widths; the 2x target
is ours against it, per transition, on the same machine. The rotating object was not released.

On CPU every (preset, implementation) runs in a fresh subprocess so that its peak resident memory
(``ru_maxrss``) can be read; peak memory is reported above the RSS after building the model and its
input batch. On CUDA it is ``torch.cuda.max_memory_allocated`` above the memory allocated then.

A shared machine's speed drifts, so each (preset, implementation) is measured in ``--rounds``
segments, the implementations interleaved (release, ours, release, ours, ...): a row gives the
median transitions per second over its rounds with the slowest and fastest round, and the speedup
is the ratio of the medians (with the range of the per-round ratios).

**Roofline.** The matrix products and convolutions of one step (forward and backward, as torch's
``FlopCounterMode`` counts them; elementwise work is not counted) over the median step time give
the achieved FLOP/s, shown beside the machine's peak: a large float32 matrix product timed in the
same run, before and after the rows, with the same threads.

Prints one line per (preset, implementation); writes ``train_speed_<device>.md`` and ``.csv`` to
``--out`` (default ``benchmarks/results``; with ``--quick``: ``runs/speed_quick``).

    .venv/bin/python benchmarks/train_speed.py                         # CPU, 2 threads, all presets
    .venv/bin/python benchmarks/train_speed.py --presets grid/ours,grid/none --steps 3
    .venv/bin/python benchmarks/train_speed.py --device cuda --amp     # as our trainer runs on GPUs
    .venv/bin/python benchmarks/train_speed.py --quick                 # smoke run: tiny batch, 1 step

At paper size a Reacher step on 256 transitions takes minutes on 2 CPU threads (its D4 encoder's
3x3 layers on 181 regular fields are ~6 GMAC per image): the CPU run takes one warm-up step and at
least one timed step per preset, about half an hour in all.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import subprocess
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
from machine import cpu_model  # noqa: E402

#: preset label -> (env id, variant, env kwargs, batch size of the paper)
PRESETS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "grid/ours": ("symwm/Cubes3D-v0", "ours", {}, 1024),
    "grid/none": ("symwm/Cubes3D-v0", "none", {}, 1024),
    "grid/full": ("symwm/Cubes3D-v0", "full", {}, 1024),
    "reacher/ours": ("symwm/Reacher-v0", "ours", {"resolution": 128}, 256),
    "reacher/none": ("symwm/Reacher-v0", "none", {"resolution": 128}, 256),
    "reacher/full": ("symwm/Reacher-v0", "full", {"resolution": 128}, 256),
    "rotation/ours": ("symwm/RotatingObject-v0", "ours", {}, 256),
    "rotation/matmul": ("symwm/RotatingObject-v0", "matmul", {}, 256),
    "rotation/none": ("symwm/RotatingObject-v0", "none", {}, 256),
}
IMPLS = ("authors", "symwm")
TARGET = 2.0
LR = 5e-4
QUICK_BATCH = 4
FIELDS = ("preset", "impl", "device", "threads", "batch", "params", "transitions_per_s", "tps_min", "tps_max", "rounds", "step_ms",
          "peak_mem_mb", "steps", "amp", "init", "gflop_per_step", "gflops", "peak_share", "speedup", "speedup_min", "speedup_max")
#: side of the square float32 matrices whose product measures the machine's peak FLOP/s
PEAK_N = 2048


# ------------------------------------------------------------------------------------------------
# Shared helpers (also used by inference_speed.py)
# ------------------------------------------------------------------------------------------------


def spec_for(label: str, size: str = "paper"):
    """The ModelSpec of a preset label such as ``grid/ours``."""
    from symwm.world_models.model import ModelSpec

    if label not in PRESETS:
        raise ValueError(f"unknown preset {label!r}; known: {', '.join(PRESETS)}")
    env_id, variant, env_kwargs, _ = PRESETS[label]
    return ModelSpec(env_id, variant, size, env_kwargs=dict(env_kwargs))


def random_batch(spec, batch: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random uint8 ``obs``/``next_obs`` ``[B, H, W, C]`` and valid random actions, on ``device``."""
    from gymnasium import spaces

    from symwm.world_models.build import make_env

    env = make_env(spec)
    shape = env.observation_space.shape
    space = env.action_space
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=g)
    nxt = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=g)
    if isinstance(space, spaces.Discrete):
        act = torch.randint(int(space.start), int(space.start + space.n), (batch,), generator=g)
    elif isinstance(space, spaces.Box):
        low = torch.as_tensor(space.low, dtype=torch.float32)
        high = torch.as_tensor(space.high, dtype=torch.float32)
        act = low + (high - low) * torch.rand(batch, *space.shape, generator=g)
    else:
        raise TypeError(f"no random actions for the action space {space}")
    env.close()
    return obs.to(device), act.to(device), nxt.to(device)


def sync(device: torch.device) -> None:
    """Wait for queued device work (CUDA) so that wall-clock timings are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (``ru_maxrss``)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB on Linux


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU model."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), host CPU {cpu_model()}"
    return cpu_model()


def software_line() -> str:
    """Python, torch and escnn versions."""
    try:
        import escnn

        version = getattr(escnn, "__version__", "?")
    except ImportError:  # escnn is a dependency; without it only this line of context is lost
        version = "?"
    return f"Python {platform.python_version()}, torch {torch.__version__}, escnn {version}"


def check_device(name: str) -> torch.device:
    """``cpu`` or ``cuda[:i]``, with a clear error where CUDA is missing."""
    device = torch.device(name)
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be cpu or cuda[:i], got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    return device


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
    """CSV of ``rows`` (missing fields left empty), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    os.replace(tmp, path)


def step_flops(step: Callable[[int], float], i: int = 0) -> int:
    """FLOPs of one call of ``step``: matrix products and convolutions, forward and backward (torch's ``FlopCounterMode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(i)
    return int(counter.get_total_flops())


def matmul_peak_gflops(device: torch.device, n: int = PEAK_N, reps: int = 7) -> float:
    """The machine's float32 peak in GFLOP/s as this run sees it: the median of ``reps`` timed ``n x n`` matrix products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up (thread pool, caches)
    sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


def median(values: list[float]) -> float:
    """The median (the mean of the middle two for an even count)."""
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def fmt(value: Any, digits: int = 1) -> str:
    """Numbers for the one-line output and tables (``na`` for missing)."""
    if value is None:
        return "na"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# One measurement
# ------------------------------------------------------------------------------------------------


def _symwm_step(model, optimizer, scaler, batch, amp: bool) -> Callable[[int], float]:
    """Our trainer's step (symwm/world_models/train.py), data already on the device."""
    from symwm.world_models.loss import contrastive_loss

    obs, act, nxt = batch
    device_type = obs.device.type

    def step(i: int) -> float:
        generator = torch.Generator().manual_seed(i)
        with torch.autocast(device_type, enabled=amp):
            z, z_pred, z_next = model(obs, act, nxt)
        loss, stats = contrastive_loss(z.float(), z_pred.float(), z_next.float(), generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return stats["loss"]

    return step


def _authors_step(model, optimizer, scaler, batch, amp: bool) -> Callable[[int], float]:
    from authors_release import authors_step

    obs, act, nxt = batch

    def step(i: int) -> float:
        return authors_step(model, optimizer, scaler, obs, act, nxt, amp)

    return step


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Build one (preset, implementation), warm up, time training steps; a result row."""
    from authors_release import build_authors_model, num_parameters

    from symwm.world_models.build import build_model

    device = torch.device(job["device"])
    torch.manual_seed(job.get("seed", 0))
    spec = spec_for(job["preset"], job.get("size", "paper"))
    if job["impl"] == "symwm":
        model = build_model(spec, initialize=False)
    elif job["impl"] == "authors":
        model = build_authors_model(spec, initialize=False)
    else:
        raise ValueError(f"unknown implementation {job['impl']!r}")
    model.to(device).train()
    params = num_parameters(model)
    if job["impl"] == "symwm":
        from symwm.world_models.train import make_optimizer

        optimizer = make_optimizer(model, LR)  # our trainer's (fused Adam)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)  # the release's
    scaler = torch.amp.GradScaler(device.type, enabled=job["amp"])
    batch = random_batch(spec, job["batch"], device, job.get("seed", 0))
    make = _symwm_step if job["impl"] == "symwm" else _authors_step
    step = make(model, optimizer, scaler, batch, job["amp"])

    sync(device)
    gc.collect()
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = rss_mb()
    for i in range(job["warmup"]):
        step(i)
    sync(device)
    n, start = 0, time.perf_counter()
    while True:
        step(job["warmup"] + n)
        sync(device)
        n += 1
        elapsed = time.perf_counter() - start
        if job["steps"]:
            if n >= job["steps"]:
                break
        elif elapsed >= job["seconds"] or n >= job["max_steps"]:
            break
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        peak = peak_rss_mb() - base if job.get("isolated") else None
    flops = step_flops(step, job["warmup"] + n) if job.get("count_flops") else None
    return {
        "preset": job["preset"], "impl": job["impl"], "device": device.type, "threads": torch.get_num_threads(),
        "batch": job["batch"], "params": params, "transitions_per_s": round(job["batch"] * n / elapsed, 2),
        "step_ms": round(1000 * elapsed / n, 2), "peak_mem_mb": None if peak is None else round(peak, 1), "steps": n,
        "amp": int(bool(job["amp"])), "init": "skipped", "gflop_per_step": None if flops is None else round(flops / 1e9, 3),
    }


def summarise_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a (preset, implementation)'s rounds: median throughput and step time, slowest and fastest round, all steps."""
    tps = [r["transitions_per_s"] for r in rounds]
    mem = [r["peak_mem_mb"] for r in rounds if r["peak_mem_mb"] is not None]
    flops = next((r["gflop_per_step"] for r in rounds if r.get("gflop_per_step") is not None), None)
    return {**rounds[0], "transitions_per_s": round(median(tps), 2), "tps_min": min(tps), "tps_max": max(tps), "rounds": len(rounds),
            "step_ms": round(median([r["step_ms"] for r in rounds]), 2), "steps": sum(r["steps"] for r in rounds),
            "peak_mem_mb": max(mem) if mem else None, "gflop_per_step": flops}


def run_isolated(job: dict[str, Any], threads: int) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process (its own peak RSS, its own thread settings)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    job = dict(job, isolated=True)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job), "--threads", str(threads)],
        capture_output=True, text=True, env=env, cwd=str(ROOT), check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker for {job['preset']} / {job['impl']} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def line_of(row: dict[str, Any]) -> str:
    """The one-line, run-comparable form of a result row."""
    parts = [
        f"preset={row['preset']}", f"impl={row['impl']}", f"device={row['device']}", f"threads={row['threads']}",
        f"batch={row['batch']}", f"params={row['params']}", f"transitions_per_s={fmt(row['transitions_per_s'])}",
        f"step_ms={fmt(row['step_ms'])}", f"peak_mem_mb={fmt(row['peak_mem_mb'])}", f"steps={row['steps']}",
        f"amp={row['amp']}", f"init={row['init']}", f"rounds={row.get('rounds', 1)}",
        f"tps_range={fmt(row.get('tps_min'))}-{fmt(row.get('tps_max'))}", f"gflop_per_step={fmt(row.get('gflop_per_step'), 3)}",
    ]
    if row.get("speedup") is not None:
        parts.append(f"speedup={row['speedup']:.2f}")
    return "train_speed " + " ".join(parts)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def _bf16_line() -> str:
    from symwm.world_models.train import cpu_bf16_support

    support = cpu_bf16_support()
    return f"native ({support})" if support else "emulated (no AVX512-BF16 or AMX flag)"


def write_report(out: Path, rows: list[dict[str, Any]], args: argparse.Namespace, device: torch.device) -> Path:
    """``train_speed_<device>.md`` and ``.csv`` in ``out``; returns the markdown path."""
    stem = f"train_speed_{device.type}" + ("_bf16" if args.amp and device.type == "cpu" else "")
    write_csv(out / f"{stem}.csv", rows, FIELDS)
    by = {(r["preset"], r["impl"]): r for r in rows}
    lines = [
        f"# Training speed ({device.type})",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} by `benchmarks/train_speed.py` on {device_description(device)};",
        f"{software_line()}; {rows[0]['threads'] if rows else args.threads} CPU threads"
        + (f"; this CPU's bfloat16: {_bf16_line()}." if args.amp and device.type == "cpu" else "."),
        "",
        "Settings: one full training step = SEN, encoder, transition, contrastive loss (hinge 1, sigma 0.5, one",
        f"negative by permutation), backward, Adam (lr {LR}); random uint8 observations and valid random actions",
        "generated on the device (data loading not timed); models at the `"
        + args.size + "` size built with `initialize=False` (weights",
        f"uninitialised: speed only); per round a fresh process, warm-up {args.warmup} step(s), then "
        + (f"{args.steps} timed step(s)" if args.steps else f"timed steps for at least {args.seconds:g} s (at least one)")
        + f"; {args.rounds} round(s) per row, the implementations interleaved"
        + f"; mixed precision {('on (autocast, as our trainer on CUDA)' if device.type == 'cuda' else 'bf16 autocast for both implementations (our trainer with --amp on CPU)') if args.amp else 'off (float32)'}"
        + ("; cuDNN autotuning off (torch's default, as in our trainer)." if device.type == "cuda" else "."),
        "Batch sizes are the paper's (3D Blocks 1024, Reacher 256 at 128x128; the rotating object, not given, 256)"
        + (f", except `--quick`: {QUICK_BATCH}." if args.quick else "."),
        "Peak memory: above the model and its input batch (activations, gradients, optimiser state, workspace); "
        + ("`torch.cuda.max_memory_allocated`." if device.type == "cuda" else "peak RSS of a fresh process per row (`na`: not isolated)."),
        "",
        "Transitions/s: the median over the rounds [slowest, fastest round]; speedup: ratio of the medians [range of the",
        "per-round ratios]. GFLOP/s: the step's matrix products and convolutions (forward and backward, torch's",
        "`FlopCounterMode`; elementwise work not counted) over the median step time; share of peak: against a",
        f"{PEAK_N}x{PEAK_N} float32 matrix product timed in the same run with the same threads ("
        + ", ".join(f"{p:.1f}" for p in getattr(args, "peak_gflops", [])) + " GFLOP/s before and after the rows).",
        "",
        "| preset | implementation | batch | parameters | transitions/s | step ms | peak MB | GFLOP/step | GFLOP/s | share of peak | speedup | target >= 2x |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = ""
        if r["impl"] == "symwm":
            verdict = "n/a (not released)" if r.get("speedup") is None else ("met" if r["speedup"] >= TARGET else "MISSED")
        speedup = "" if r.get("speedup") is None else f"{r['speedup']:.2f}x"
        if r.get("speedup_min") is not None and r.get("rounds", 1) > 1:
            speedup += f" [{r['speedup_min']:.2f}, {r['speedup_max']:.2f}]"
        tps = fmt(r["transitions_per_s"]) + (f" [{fmt(r['tps_min'])}, {fmt(r['tps_max'])}]" if r.get("rounds", 1) > 1 else "")
        share = "" if r.get("peak_share") is None else f"{100 * r['peak_share']:.1f} %"
        lines.append(
            f"| {r['preset']} | {r['impl']} | {r['batch']} | {r['params']:,} | {tps} | {fmt(r['step_ms'])} | "
            f"{fmt(r['peak_mem_mb'])} | {fmt(r.get('gflop_per_step'), 2)} | {fmt(r.get('gflops'))} | {share} | {speedup} | {verdict} |"
        )
    compared = [r for r in rows if r.get("speedup") is not None]
    met = [r["preset"] for r in compared if r["speedup"] >= TARGET]
    lines += [
        "",
        f"Target: ours at least {TARGET:g}x the emulated release's transitions per second, same machine and settings."
        + (f" Met for {len(met)} of {len(compared)} released presets" + (f" ({', '.join(met)})." if met else ".") if compared else ""),
    ]
    lines += ["", "## Parameter counts, ours beside the emulated release", "", "| preset | symwm | emulated release | difference |", "|---|---|---|---|"]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        ours, theirs = by.get((preset, "symwm")), by.get((preset, "authors"))
        if ours and theirs:
            diff = (theirs["params"] - ours["params"]) / ours["params"] * 100
            lines.append(f"| {preset} | {ours['params']:,} | {theirs['params']:,} | {diff:+.2f} % |")
    lines += [
        "",
        "Where counts differ, the release's layer types force it: Reacher's torques enter its transition in a",
        "2-dim quotient representation (ours: a 1-dim irrep), +362 weights; the C4 encoder's centre pixel on",
        "odd-sized maps (`cpu` size only) is a 4-copy channel there, a trivial field here.",
        "",
        "## How the authors' training step is emulated",
        "",
        "The release (github jypark0/sen) pins torch 1.9 and e2cnn and no longer installs, so",
        "`benchmarks/authors_release.py` recomputes the same architectures (our preset's widths) its way:",
        "grid-world C4 linear layers whose `[4, 4, out, in]` weight is rebuilt from 4 rolled copies on every",
        "call and applied with `einsum`; an orbit stack built by a Python loop over `rot90` into a zeros tensor;",
        "C-SWM GNNs with `nonzero` edge lists and `scatter_add_` segment sums; plain SENs in NCHW layout",
        "called separately on `obs` and `next_obs`; escnn (e2cnn's API) modules for every equivariant",
        "Reacher part and for the `full` SENs, un-exported; the release's loss, Adam with zero-filling",
        "`zero_grad()`, and `loss.item()` plus the latent norm read every step. Same batch, same data, same",
        "device, same mixed-precision setting as ours.",
        "",
    ]
    path = out / f"{stem}.md"
    write_atomic(path, "\n".join(lines))
    return path


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (also OMP_NUM_THREADS of the workers)")
    parser.add_argument("--presets", default="", help=f"comma-separated subset of: {', '.join(PRESETS)} (default all)")
    parser.add_argument("--impls", default=",".join(IMPLS), help="comma-separated: authors, symwm")
    parser.add_argument("--size", default="paper", choices=("paper", "cpu"), help="model size preset")
    parser.add_argument("--batch", type=int, default=None, help="override every preset's batch size")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per row (default: as many as fit in --seconds)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget per row when --steps is 0 (at least one step)")
    parser.add_argument("--max-steps", type=int, default=1000, help="cap on timed steps when timing by --seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved measurements per row (default 3; --quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 1 on CPU, 3 on CUDA)")
    parser.add_argument("--amp", action="store_true", help="autocast for both implementations, as our trainer with --amp: float16 + GradScaler on CUDA, bfloat16 on CPU")
    parser.add_argument("--isolate", dest="isolate", action="store_true", default=None, help="fresh process per row (CPU default)")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false", help="measure in this process (no CPU peak memory)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: batch {QUICK_BATCH}, 1 step, no warm-up, in-process")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results; --quick: runs/speed_quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.quick:
        args.steps, args.warmup = 1, 0 if args.warmup is None else args.warmup
        args.batch = args.batch or QUICK_BATCH
        if args.isolate is None:
            args.isolate = False
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.warmup is None:
        args.warmup = 3 if args.device.startswith("cuda") else 1
    if args.isolate is None:
        args.isolate = not args.device.startswith("cuda")
    if args.out is None:
        args.out = str(ROOT / ("runs/speed_quick" if args.quick else "benchmarks/results"))
    return args


def selected(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    """Parse a comma-separated filter against ``known`` (empty: all)."""
    items = [t.strip() for t in text.split(",") if t.strip()] or list(known)
    unknown = [t for t in items if t not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; known: {', '.join(known)}")
    return items


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; returns the result rows."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker is not None:  # internal: one measurement in this fresh process
        print("RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return []
    device = check_device(args.device)
    presets = selected(args.presets, tuple(PRESETS), "preset(s)")
    impls = selected(args.impls, IMPLS, "implementation(s)")
    from authors_release import has_authors_model

    peaks = [matmul_peak_gflops(device)]
    rows: list[dict[str, Any]] = []
    for preset in presets:
        spec = spec_for(preset, args.size)
        todo = [i for i in impls if i != "authors" or has_authors_model(spec)]
        rounds: dict[str, list[dict[str, Any]]] = {i: [] for i in todo}
        for r in range(args.rounds):  # implementations interleaved, round after round
            for impl in todo:
                job = {
                    "preset": preset, "impl": impl, "device": str(device), "size": args.size, "amp": args.amp,
                    "batch": args.batch or PRESETS[preset][3], "steps": args.steps, "seconds": args.seconds,
                    "max_steps": args.max_steps, "warmup": args.warmup, "seed": args.seed, "count_flops": r == 0,
                }
                rounds[impl].append(run_isolated(job, args.threads) if args.isolate else measure(job))
                if device.type == "cuda":
                    gc.collect()
                    torch.cuda.empty_cache()
        summary = {impl: summarise_rounds(rs) for impl, rs in rounds.items()}
        if "authors" in summary and "symwm" in summary:
            ratios = [o["transitions_per_s"] / t["transitions_per_s"] for o, t in zip(rounds["symwm"], rounds["authors"])]
            summary["symwm"].update(speedup=round(summary["symwm"]["transitions_per_s"] / summary["authors"]["transitions_per_s"], 3),
                                    speedup_min=round(min(ratios), 3), speedup_max=round(max(ratios), 3))
        for row in summary.values():
            rows.append(row)
            print(line_of(row), flush=True)
    peaks.append(matmul_peak_gflops(device))
    for row in rows:
        if row.get("gflop_per_step") is not None:
            row["gflops"] = round(row["gflop_per_step"] / (row["step_ms"] / 1000), 2)
            row["peak_share"] = round(row["gflops"] / median(peaks), 4)
    args.peak_gflops = peaks
    if rows:
        path = write_report(Path(args.out), rows, args, device)
        print(f"wrote {path} and {path.with_suffix('.csv').name}")
    return rows


if __name__ == "__main__":
    main()
