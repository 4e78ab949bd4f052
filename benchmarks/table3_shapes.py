"""Table 3 of the reproduction: 2D Shapes trained on "up" only, 1-step prediction on all actions.

    .venv/bin/python benchmarks/table3_shapes.py                 # cpu scale
    .venv/bin/python benchmarks/table3_shapes.py --scale paper --device cuda --jobs 3
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_tables import main  # noqa: E402
from table1_blocks import grid_setting  # noqa: E402

PAPER = {"none": {"hits@10": "2.8"}, "full": {"hits@10": "100"}, "ours": {"hits@10": "100"}}


def build(scale: str, quick: bool):
    """One setting: Shapes2D, training data with every object moving up only."""
    s = grid_setting(scale, quick, "shapes-up-only", "2D Shapes trained on 'up' only, 1 step, all actions", env_id="symwm/Shapes2D-v0",
                     train_actions="up", horizon=1, twins=None, metrics=("hits@1", "hits@10", "mrr"), paper=PAPER)
    return [s]


INTRO = [
    "2D Shapes draws flat shapes from straight above, so a quarter turn of the grid is (up to the",
    "triangle's orientation) a quarter turn of the image. Trained on 'up' alone, only the",
    "equivariant models can predict right, down and left, which are rotations of 'up'.",
]

if __name__ == "__main__":
    main("table3_shapes", "2D Shapes trained on 'up' only", INTRO, build, lambda s: "hits@10")
