"""Table 5: beyond the paper, on 3D Blocks (Cubes3D), 10-step prediction on all actions.

1. another held-out action: trained without "up" instead of "left";
2. the D4 variant of the world (reflections too; ``symmetry="D4"``), trained without "left";
3. data efficiency: Hits@1 of ``ours`` and ``none`` trained without "left" on 12,500, 25,000, 50,000
   and 100,000 one-step transitions (the 100,000-transition runs are those of table 1). Smaller sets
   train for at least as many optimiser steps as half the full run, so that the curve does not only
   measure compute;
4. temporal negatives (``TrainConfig.temporal_negatives``, not the release's loss) on the two
   settings where an ``ours`` seed lost an object slot: the D4 world and 50,000 transitions.

    .venv/bin/python benchmarks/table5_beyond.py                 # cpu scale (after table1_blocks.py)
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_tables import Data, main  # noqa: E402
from table1_blocks import grid_setting  # noqa: E402

METRICS = ("hits@1", "mrr", "die_model")
SIZES = (12_500, 25_000, 50_000, 100_000)


def build(scale: str, quick: bool):
    """Held-out 'up', D4 world, the data-efficiency sweep, and temporal negatives where a slot was lost."""
    v = ("none", "ours")
    out = [
        grid_setting(scale, quick, "cubes-no-up", "3D Blocks trained without 'up'", held_out="up", variants=v, metrics=METRICS),
        grid_setting(scale, quick, "cubes-d4-no-left", "3D Blocks with reflections (D4) trained without 'left'", variants=v,
                     metrics=METRICS, env_kwargs={"symmetry": "D4"}),
    ]
    min_steps = MIN_STEPS[scale]
    for n in SIZES:
        key = "cubes-no-left" if n == SIZES[-1] else f"cubes-no-left-n{n}"
        s = grid_setting(scale, quick, key, f"without 'left', {n:,} training transitions", variants=v, metrics=METRICS, transitions=n)
        if quick:
            s.train = Data(max(80, n // 250), steps=1)
        steps_per_epoch = max(1, s.train.episodes * s.train.steps // s.batch_size)
        s.epochs = max(s.epochs, math.ceil(min_steps / steps_per_epoch)) if not quick else s.epochs
        s.sweep = ("data efficiency (trained without 'left')", s.train.episodes * s.train.steps)
        out.append(s)
    by_key = {s.key: s for s in out}
    for base, title in (("cubes-d4-no-left", "D4 world without 'left', temporal negatives in the loss"),
                        ("cubes-no-left-n50000", "without 'left', 50,000 transitions, temporal negatives in the loss")):
        out.append(dataclasses.replace(by_key[base], key=f"{base}-temporal", title=title, variants=("ours",), sweep=None,
                                       temporal_negatives=True))
    return out


#: least optimiser steps of the smaller training sets: half of what the full run takes
#: (cpu: 8 epochs of 382 steps; paper: 100 epochs of 95 steps)
MIN_STEPS = {"cpu": 1530, "paper": 4750}

INTRO = [
    "Questions the paper leaves open: does the generalisation depend on which action is held out,",
    "does it carry over to a world with reflections, and how much data does each model need?",
]

if __name__ == "__main__":
    main("table5_beyond", "Beyond the paper: 3D Blocks", INTRO, build, lambda s: "hits@1")
