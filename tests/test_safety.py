"""Safe and strict handling of untrusted or mistaken input (issue: checkpoints that cannot run code)."""

import os

import pytest
import torch

from symwm.world_models.checkpoint import CheckpointError, load_model, read_checkpoint


class _RunsCode:
    """Unpickling this calls ``os.system``: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["bare", "inside"])
def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, payload):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    evil = _RunsCode(marker)
    torch.save(evil if payload == "bare" else {"format_version": 1, "spec": evil, "state_dict": {}}, path)
    for load in (read_checkpoint, load_model):
        with pytest.raises(CheckpointError, match="refused.*Nothing in it was run"):
            load(path)
    assert not marker.exists()


def test_older_checkpoints_with_a_torch_version_object_still_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format_version": 1, "spec": {"env_id": "x"}, "state_dict": {}, "versions": {"torch": torch.__version__}}, path)
    assert read_checkpoint(path)["versions"]["torch"] == str(torch.__version__)


def test_eval_keeps_one_row_per_checkpoint_and_writes_inside_out():
    from symwm.cli import checkpoint_names
    from symwm.world_models.evaluate import write_results

    names = checkpoint_names(["runA/ours/best.pt", "runB/ours/best.pt", "runB/ours/last.pt"])
    assert len(set(names.values())) == 3 and names["runA/ours/best.pt"].endswith("runA/ours/best.pt")
    assert checkpoint_names(["a/ours/best.pt"])["a/ours/best.pt"] == "ours/best.pt"
    for stem in ("../../t", "/tmp/t", "", "a/b", ".."):
        with pytest.raises(ValueError, match="stem"):
            write_results({"m": {"hits@1": 1.0}}, "out-never-written", stem=stem)
    assert not os.path.exists("out-never-written")
