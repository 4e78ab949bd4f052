"""Safe and strict handling of untrusted or mistaken input (issue: checkpoints that cannot run code)."""

import os

import numpy as np

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


@pytest.mark.filterwarnings("ignore:checkpoint .* was written with other versions")
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


# -------------------------------------------------------------------------------------------------
# Runs that cannot clobber each other; data that cannot change under a resume; NaN caught
# -------------------------------------------------------------------------------------------------

import json  # noqa: E402

import h5py  # noqa: E402

from symwm.cli import main  # noqa: E402
from symwm.world_models import train as train_module  # noqa: E402
from symwm.world_models.collect import collect  # noqa: E402
from symwm.world_models.datasets import DatasetError, open_dataset  # noqa: E402
from symwm.world_models.model import ModelSpec  # noqa: E402
from symwm.world_models.train import RunDirectoryError, TrainConfig, train  # noqa: E402

ROT = "symwm/RotatingObject-v0"


@pytest.fixture(scope="module")
def rot_data(tmp_path_factory):
    return collect(tmp_path_factory.mktemp("d") / "rot.h5", ROT, 12, 4, seed=1, env_kwargs={"actions": "continuous"}, progress=False)


def _cfg(data, out, **kw):
    base = dict(dataset=str(data), out_dir=str(out), epochs=1, batch_size=12, progress=False, tensorboard=False, val_fraction=0.0)
    base.update(kw)
    return TrainConfig(**base)


SPEC = ModelSpec(ROT, "none", "cpu", env_kwargs={"actions": "continuous"})


def test_a_finished_run_is_refused_without_resume_or_overwrite(rot_data, tmp_path):
    run = tmp_path / "run"
    train(SPEC, _cfg(rot_data, run))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(RunDirectoryError, match="already holds a finished run.*--resume.*--overwrite"):
        train(SPEC, _cfg(rot_data, run, seed=1))
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing touched
    train(SPEC, _cfg(rot_data, run, seed=1, overwrite=True))
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 1
    assert not (run / ".lock").exists()


def test_a_directory_in_use_is_refused_and_a_stale_lock_is_taken_over(rot_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(RunDirectoryError, match=f"in use by another process \\(pid {os.getppid()}\\)"):
        train(SPEC, _cfg(rot_data, run))
    (run / ".lock").write_text("2147483646")  # no such process: stale
    train(SPEC, _cfg(rot_data, run))
    assert (run / "summary.json").exists() and not (run / ".lock").exists()


def test_resume_refuses_changed_training_data(rot_data, tmp_path):
    data = tmp_path / "data.h5"
    data.write_bytes(rot_data.read_bytes())
    run = tmp_path / "run"
    train(SPEC, _cfg(data, run, epochs=2, max_steps=1))
    collect(data, ROT, 12, 4, seed=2, env_kwargs={"actions": "continuous"}, progress=False)  # replaced at the same path
    with pytest.raises(train_module.CheckpointError, match="training data changed"):
        train(SPEC, _cfg(data, run, epochs=2, resume=True))


@pytest.mark.parametrize("bad", [float("nan"), 1e30])
def test_non_finite_or_out_of_range_actions_are_refused_on_open(rot_data, tmp_path, bad):
    data = tmp_path / "bad.h5"
    data.write_bytes(rot_data.read_bytes())
    with h5py.File(data, "r+") as f:
        f["actions"][3, 1, 0] = bad
    with pytest.raises(DatasetError, match=r"'actions' at index \(3, 1\)|non-finite value nan in 'actions' at index \(3, 1, 0\)"):
        open_dataset(data)


def test_training_stops_at_the_first_non_finite_loss(rot_data, tmp_path, monkeypatch):
    real = train_module.contrastive_loss
    calls = {"n": 0}

    def poisoned(*args, **kw):
        loss, stats = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 5:  # 4 steps per epoch: the first step of epoch 2
            loss, stats = loss * float("nan"), {**stats, "loss": float("nan")}
        return loss, stats

    monkeypatch.setattr(train_module, "contrastive_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="non-finite loss .* epoch 2, step 1"):
        train(SPEC, _cfg(rot_data, run, epochs=3))
    # epoch 1 finished and was saved with finite weights; nothing claims a file that does not exist
    assert (run / "last.pt").exists()


def test_summary_is_valid_json_and_names_only_written_files(rot_data, tmp_path):
    run = tmp_path / "run"
    train(SPEC, _cfg(rot_data, run, epochs=2, max_steps=1))  # stopped inside epoch 1: no best.pt yet
    summary = json.loads((run / "summary.json").read_text())  # strict JSON: no Infinity / NaN
    assert summary["best_checkpoint"] is None and summary["best_loss"] is None and not (run / "best.pt").exists()


def test_amp_is_a_switch_with_an_auto_default_and_checked_in_python():
    """``--amp`` / ``--no-amp`` on the command line (unset: auto); a non-boolean from Python is refused by name."""
    from symwm.cli import _train_config, build_parser

    base = ["train", "--env", ROT, "--variant", "none", "--dataset", "d.h5", "--out-dir", "r"]
    assert [_train_config(build_parser().parse_args(base + extra)).amp for extra in ([], ["--amp"], ["--no-amp"])] == [None, True, False]
    with pytest.raises(ValueError, match="amp must be true, false or unset"):
        TrainConfig(dataset="d.h5", out_dir="r", amp="garbage")


@pytest.mark.parametrize("args, problem", [
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--batch-size", "-5"], "batch_size must be an integer >= 1"),
    (["--epochs", "0"], "epochs must be an integer >= 1"),
    (["--max-steps", "abc"], "max_steps must be an integer"),
])
def test_bad_training_options_give_one_line(rot_data, tmp_path, capsys, args, problem):
    code = main(["train", "--env", ROT, "--env-kwarg", "actions=continuous", "--variant", "none", "--dataset", str(rot_data),
                 "--out-dir", str(tmp_path / "run"), "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == f"symwm: error: {err[len('symwm: error: '):]}" and problem in err and "\n" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


# -------------------------------------------------------------------------------------------------
# Model, data and env compared in full
# -------------------------------------------------------------------------------------------------

import gymnasium as gym  # noqa: E402

from symwm.agents.planning import make_agent  # noqa: E402
from symwm.agents.sb3 import LatentObservation  # noqa: E402
from symwm.world_models.build import build_model  # noqa: E402
from symwm.world_models.evaluate import evaluate  # noqa: E402

SHAPES = "symwm/Shapes2D-v0"


@pytest.fixture(scope="module")
def three_objects(tmp_path_factory):
    return collect(tmp_path_factory.mktemp("d3") / "k3.h5", SHAPES, 8, 2, seed=1, env_kwargs={"n_objects": 3}, progress=False)


def test_a_model_for_five_objects_refuses_three_object_data_and_envs(three_objects, tmp_path):
    five = ModelSpec(SHAPES, "none", "cpu")  # the default: 5 objects
    with pytest.raises(ValueError, match="training data .* does not match the model .*action space: model Discrete\\(20"):
        train(five, TrainConfig(dataset=str(three_objects), out_dir=str(tmp_path / "r"), epochs=1, batch_size=4,
                                progress=False, tensorboard=False, val_fraction=0.0))
    model = build_model(five)
    with pytest.raises(ValueError, match="evaluation data .* does not match the model"):
        evaluate(model, three_objects, 1)
    with pytest.raises(ValueError, match="does not match the model .*n_objects"):
        make_agent(gym.make(SHAPES, n_objects=3), "beam", model=model)
    # the same kwargs, or ones that only restrict actions, are accepted
    make_agent(gym.make(SHAPES, allowed_actions=["up"]), "beam", model=model)


def test_latent_observation_refuses_another_envs_checkpoint():
    shapes_model = build_model(ModelSpec(SHAPES, "none", "cpu"))
    with pytest.raises(ValueError, match="Cubes3D-v0, but the model was built for symwm/Shapes2D-v0"):
        LatentObservation(gym.make("symwm/Cubes3D-v0"), shapes_model)


def test_recorded_versions_are_compared_on_load(tmp_path):
    from symwm.world_models.checkpoint import environment_versions, save_checkpoint

    model = build_model(ModelSpec(SHAPES, "none", "cpu"))
    path = save_checkpoint(tmp_path / "m.pt", model)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_checkpoint(path)  # same versions: silent
    payload = torch.load(path, weights_only=True)
    payload["versions"] = {**environment_versions(), "escnn": "0.9", "py3nj": not environment_versions()["py3nj"]}
    torch.save(payload, path)
    with pytest.warns(UserWarning, match="escnn '0.9'.*py3nj.*results may differ"):
        load_model(path)


# -------------------------------------------------------------------------------------------------
# Collection: its output checked first, no race, no leftovers
# -------------------------------------------------------------------------------------------------

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def test_collection_checks_its_output_before_it_starts(tmp_path, monkeypatch):
    from symwm.world_models import collect as collect_module

    ran = []
    monkeypatch.setattr(collect_module, "_run", lambda *a, **k: ran.append(1))
    with pytest.raises(ValueError, match="is a directory"):
        collect(tmp_path, SHAPES, 3, 2, progress=False)
    with pytest.raises(ValueError, match="empty"):
        collect("", SHAPES, 3, 2, progress=False)
    assert not ran


def test_two_collections_to_one_file_are_refused(tmp_path):
    out = tmp_path / "d.h5"
    (tmp_path / ".d.h5.lock").write_text(str(os.getppid()))  # another live writer
    with pytest.raises(ValueError, match="in use by another process"):
        collect(out, SHAPES, 3, 2, progress=False)
    assert not out.exists()


@pytest.mark.slow
def test_sigterm_during_collection_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "big.h5"
    code = f"from symwm.world_models.collect import collect; collect({str(out)!r}, {SHAPES!r}, 100000, 10, progress=False)"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".big.h5.*.tmp")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".big.h5.*.tmp")), "collection never started writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert proc.returncode != 0 and left == [], (proc.returncode, left, err.decode()[-2000:])  # no temporary file, lock or output


# -------------------------------------------------------------------------------------------------
# Environment options bounded, named in the error
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id, kwargs, option", [
    ("symwm/Cubes3D-v0", {"goal_moves": 10**5}, "goal_moves"),
    ("symwm/RotatingObject-v0", {"resolution": 10**6}, "resolution"),
    ("symwm/Reacher-v0", {"gear": 1e308}, "gear"),
    ("symwm/Reacher-v0", {"damping": 1e9}, "damping"),
    ("symwm/Reacher-v0", {"ctrl_cost": float("inf")}, "ctrl_cost"),
])
def test_env_options_out_of_bounds_are_named(env_id, kwargs, option):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"^{option} must be"):
        gym.make(env_id, **kwargs)
    assert time.perf_counter() - start < 5.0


# -------------------------------------------------------------------------------------------------
# Datasets larger than memory stream from disk
# -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_file_declaring_gigabytes_streams_instead_of_loading(three_objects, tmp_path, monkeypatch):
    from symwm.world_models.datasets import TransitionDataset

    big = tmp_path / "declares_16GB.h5"
    n, steps = 200_000, 3  # obs declared [200000, 3, 50, 50, 3] uint8: 4.2 GB, almost nothing written
    with h5py.File(three_objects) as src, h5py.File(big, "w") as dst:
        dst.attrs.update(dict(src.attrs))
        dst.attrs["n_episodes"], dst.attrs["episode_length"] = n, steps - 1
        for name in ("obs", "actions", "rewards") + tuple(f"states/{k}" for k in src["states"]):
            ds = src[name]
            length = steps - 1 if name in ("actions", "rewards") else steps
            shape = (n, length) + ds.shape[2:]
            chunk = 1 if name == "obs" else 20_000  # obs chunked per episode, as collect writes long episodes
            dst.create_dataset(name, shape=shape, dtype=ds.dtype, chunks=(chunk,) + shape[1:], compression="gzip")
        dst.create_dataset("episode_seeds", shape=(n,), dtype=np.int64)
    assert big.stat().st_size < 1_000_000
    from symwm.world_models import datasets as ds_module

    # a machine with 6 GiB free (on a larger one the 4.2 GB of zeros would be loaded, slowly but rightly)
    monkeypatch.setattr(ds_module, "available_memory", lambda: 6 * 2**30)
    ds = TransitionDataset(big)
    assert ds.nbytes > 4e9 and ds.in_memory is False
    assert ds[5]["obs"].shape == (50, 50, 3)  # streamed from disk
    with pytest.raises(DatasetError, match="GiB.*read it lazily"):
        TransitionDataset(big, in_memory=True)


def test_memory_share_decides_loading(three_objects, monkeypatch):
    from symwm.world_models import datasets as ds_module

    monkeypatch.setattr(ds_module, "available_memory", lambda: 1000)
    lazy = ds_module.TransitionDataset(three_objects)
    assert lazy.in_memory is False and lazy[3]["obs"].shape == (50, 50, 3)
    with pytest.raises(DatasetError, match="more than 50% of the"):
        ds_module.TransitionDataset(three_objects, in_memory=True)


@pytest.mark.parametrize("shape", [(25, 50, 3), (50, 50, 4)])
def test_data_with_other_image_shapes_is_refused_by_name(three_objects, tmp_path, shape):
    bad = tmp_path / "bad.h5"
    with h5py.File(three_objects) as src, h5py.File(bad, "w") as dst:
        for name in ("actions", "rewards", "episode_seeds"):
            src.copy(src[name], dst, name)
        src.copy(src["states"], dst, "states")
        dst.attrs.update(dict(src.attrs))
        n, t = src["obs"].shape[:2]
        dst.create_dataset("obs", data=np.zeros((n, t) + shape, np.uint8))
    spec = ModelSpec(SHAPES, "none", "cpu", env_kwargs={"n_objects": 3})
    with pytest.raises(ValueError, match=rf"observations of shape \({shape[0]}, {shape[1]}, {shape[2]}\), the model reads \(50, 50, 3\)"):
        train(spec, TrainConfig(dataset=str(bad), out_dir=str(tmp_path / "r"), epochs=1, batch_size=4, progress=False,
                                tensorboard=False, val_fraction=0.0))
    with pytest.raises(ValueError, match="observations of shape"):
        evaluate(build_model(spec), bad, 1)


def test_a_full_disk_fails_in_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    from symwm.world_models import collect as collect_module

    out = collect(tmp_path / "d.h5", SHAPES, 3, 2, progress=False)
    before = out.read_bytes()

    class Usage:  # what shutil.disk_usage reports on a disk with 1 MiB left
        free = 1 << 20

    monkeypatch.setattr(collect_module.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(OSError, match=r"disk full while writing .*d.h5 \(temporary file removed; any earlier d.h5 is unchanged\): No space"):
        collect(out, SHAPES, 3, 2, seed=9, progress=False)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_temporary_files_of_killed_collections_are_removed_by_the_next(tmp_path):
    killed = tmp_path / ".d.h5.2147483646.deadbeef.tmp"  # SIGKILL cannot be caught: its file stays until then
    killed.write_bytes(b"partial")
    alive = tmp_path / f".d.h5.{os.getppid()}.cafebabe.tmp"  # a running collection's file is left alone
    alive.write_bytes(b"partial")
    collect(tmp_path / "d.h5", SHAPES, 2, 2, progress=False)
    assert not killed.exists() and alive.exists()


def test_cli_refuses_a_crafted_checkpoint_in_one_line(tmp_path, capsys):
    marker = tmp_path / "ran"
    torch.save(_RunsCode(marker), tmp_path / "evil.pt")
    data = collect(tmp_path / "e.h5", SHAPES, 4, 2, progress=False)
    assert main(["eval", str(tmp_path / "evil.pt"), "--dataset", str(data)]) == 1
    err = capsys.readouterr().err.strip()
    assert "refused" in err and "\n" not in err and not marker.exists()


def test_a_relabelled_spec_is_refused(tmp_path):
    from symwm.world_models.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "m.pt", build_model(ModelSpec(SHAPES, "none", "cpu")))
    payload = torch.load(path, weights_only=True)
    payload["spec"]["env_id"] = "symwm/Cubes3D-v0"  # same shapes: only the digest tells
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="spec was edited"):
        load_model(path)
