"""Table 3 of the reproduction: 2D Shapes trained on "up" only, 1-step prediction on all actions.

The release's recipe (table 1's): 100,000 one-step "up" episodes from random states; 10,000
evaluation episodes with their quarter-turn twins (EE). Beside the paper's metric, the same runs
ranked on episodes of held-out actions only (right, down, left) at 1 and 10 steps, and on all
actions at 10 steps: at one step a model that ignores an unseen action still ranks well (a blocked
move changes nothing, one cell changes little). ``cnn`` is the paper's baseline of this table, a
plain CNN encoder to one latent vector; ``none`` is the object-factored C-SWM model.

    .venv/bin/python benchmarks/table3_shapes.py                 # cpu scale
    .venv/bin/python benchmarks/table3_shapes.py --scale paper --device cuda --jobs 3
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_tables import main  # noqa: E402
from paper_tables import ExtraEval  # noqa: E402
from table1_blocks import cells_setting, grid_setting  # noqa: E402

PAPER = {"cnn": {"hits@10": "2.8"}, "full": {"hits@10": "100"}, "ours": {"hits@10": "100"}}
EXTRA = (
    ExtraEval("heldout1", "held-out actions, 1 step", 1, "no-up"),
    ExtraEval("steps10", "all actions, 10 steps", 10),
    ExtraEval("heldout10", "held-out actions, 10 steps", 10, "no-up"),
)


def build(scale: str, quick: bool):
    """Shapes2D, one-step training episodes in which an object moves up; then the same with V at the grid's resolution."""
    s = grid_setting(scale, quick, "shapes-up-only", "2D Shapes trained on 'up' only, 1 step, all actions", env_id="symwm/Shapes2D-v0",
                     train_actions="up", horizon=1, variants=("cnn", "none", "full", "ours"), extra_evals=EXTRA,
                     metrics=("hits@10", "mrr", "heldout1:hits@1", "heldout1:hits@10", "steps10:hits@1", "heldout10:hits@1", "ee", "ee_latent"),
                     paper=PAPER)
    return [s, cells_setting(s, variants=("ours", "none"))]  # V at the grid's resolution; none: the control


INTRO = [
    "2D Shapes draws flat shapes from straight above, so a quarter turn of the grid is (up to the",
    "triangle's orientation) a quarter turn of the image. Trained on 'up' alone, only the",
    "equivariant models can predict right, down and left, which are rotations of 'up'.",
]

if __name__ == "__main__":
    main("table3_shapes", "2D Shapes trained on 'up' only", INTRO, build, lambda s: "hits@10")
