"""Does the SEN still see every cube? Per-object responses of the trained and the initial SEN of table 1's runs.

A run in which one object slot stays constant (``slot_usage`` well below 1) can fail in two ways:
the SEN never saw that object (initialisation, capacity), or it saw it and training removed it.
This script tells them apart. For each cube alone on each of the 25 cells of the board, it measures
how much the SEN's activations change against the empty board:

- **hidden**: per channel of the last hidden layer (after BatchNorm and ReLU), the largest change
  over pixels, averaged over the 25 cells; the strongest channel per cube;
- **map**: the same for the K object maps before the sigmoid (logits); the strongest map per cube.

Each run is measured twice: at initialisation (the model rebuilt with the run's seed exactly as
``train`` builds it, BatchNorm statistics taken from 256 evaluation frames) and after training
(``best.pt``). Writes ``benchmarks/results/tables/sen_object_response.md``.

    .venv/bin/python benchmarks/sen_object_response.py --settings cubes-no-left cubes-no-left-temporal --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def single_cube_frames(env, cube: int) -> np.ndarray:
    """``[G*G, H, W, 3]`` uint8: cube ``cube`` alone on every cell of the board."""
    g = env.grid_size
    return np.stack([env.renderer.render(np.array([[r, c]]), colour_ids=[cube]) for r in range(g) for c in range(g)])


@torch.no_grad()
def responses(sen: torch.nn.Sequential, frames: torch.Tensor, empty: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: mean over frames of the largest |change| over pixels, for the last hidden layer and the map logits."""
    from symwm.world_models.model import WorldModel

    layers = list(sen)
    hidden_net, head = torch.nn.Sequential(*layers[:-2]), layers[-2]  # [..., ReLU] and the 3x3 conv to K maps (then a sigmoid)
    x, x0 = WorldModel.preprocess(frames), WorldModel.preprocess(empty)
    h, h0 = hidden_net(x), hidden_net(x0)  # [N, C, H, W], [1, C, H, W]
    m, m0 = head(h), head(h0)  # [N, K, H, W]
    peak = lambda a, b: (a - b).abs().flatten(2).amax(-1).mean(0).numpy()  # noqa: E731  [channels]
    return peak(h, h0), peak(m, m0)


def bn_statistics_from(model: torch.nn.Module, frames: torch.Tensor) -> None:
    """Set BatchNorm running statistics to those of ``frames`` (an untrained model has none yet)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch gives that batch's statistics
    model.train()
    with torch.no_grad():
        model.embed(frames)
    model.eval()


def measure(run: Path, eval_frames: torch.Tensor) -> dict[str, list[float]]:
    """Hidden and map responses per cube at initialisation and after training of one run."""
    from symwm.world_models.build import build_model, make_env
    from symwm.world_models.checkpoint import load_model
    from symwm.world_models.model import ModelSpec

    cfg = json.loads((run / "config.json").read_text())
    spec = ModelSpec.from_dict(cfg["spec"])
    trained = load_model(run / "best.pt")
    torch.manual_seed(cfg["train"]["seed"])  # as train() does before it builds the model
    init = build_model(spec, initialize=True)
    bn_statistics_from(init, eval_frames)
    env = make_env(spec)
    empty = torch.from_numpy(env.renderer.render(np.zeros((0, 2), dtype=int)))[None]
    out: dict[str, list[float]] = {"init_hidden": [], "init_map": [], "hidden": [], "map": []}
    for cube in range(env.n_objects):
        frames = torch.from_numpy(single_cube_frames(env, cube))
        for prefix, model in (("init_", init), ("", trained)):
            hid, maps = responses(model.sen, frames, empty)
            out[prefix + "hidden"].append(float(hid.max()))
            out[prefix + "map"].append(float(maps.max()))
    return out


def main(argv: list[str] | None = None) -> Path:
    """Measure every run asked for and write the markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="+", default=["cubes-no-left", "cubes-no-left-temporal"], help="table-1 setting keys")
    p.add_argument("--variant", default="ours")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--work", default=str(ROOT / "runs" / "bench" / "cpu"), help="the tables' work directory")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tables" / "sen_object_response.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from symwm.world_models.datasets import open_dataset

    work = Path(args.work)
    lines = ["# Does the SEN still see every cube?", "",
             "Made by `python benchmarks/sen_object_response.py` (see its docstring for the measure); "
             f"`{args.variant}` runs of table 1 (`cpu` scale); hardware: {cpu_model()}. Each cell: the strongest response "
             "to each cube alone on the board, cubes 0-4, at initialisation -> after training. Slot usage and Hits@1 "
             "from the run's evaluation.", "",
             "| setting | seed | Hits@1 % | slot usage | hidden channels: init -> trained | object maps (logits): init -> trained |",
             "|---|---|---|---|---|---|"]
    for key in args.settings:
        for seed in args.seeds:
            run = work / "runs" / key / args.variant / f"seed{seed}"
            if not (run / "best.pt").exists() or not (run / "eval.json").exists():
                print(f"skipping {run}: no finished run", file=sys.stderr)
                continue
            job = json.loads((run / "job.json").read_text())
            with open_dataset(job["eval_dataset"]) as ds:
                frames = torch.from_numpy(np.asarray(ds["obs"][:256, 0]))  # [256, H, W, 3]
            r = measure(run, frames)
            metrics = json.loads((run / "eval.json").read_text())["metrics"]
            fmt = lambda a, b: " ".join(f"{x:.2f}->{y:.2f}" for x, y in zip(a, b))  # noqa: E731
            lines.append(f"| {key} | {seed} | {metrics['hits@1']:.1f} | {metrics['slot_usage']:.2f} | "
                         f"{fmt(r['init_hidden'], r['hidden'])} | {fmt(r['init_map'], r['map'])} |")
            print(lines[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out


if __name__ == "__main__":
    main()
