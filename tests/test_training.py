"""Training: the loss, exact resume, checkpoint errors, and DistributedDataParallel on 2 CPU processes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from symwm.world_models.build import build_model
from symwm.world_models.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from symwm.world_models.collect import collect
from symwm.world_models.loss import contrastive_loss, frames_differ
from symwm.world_models.model import ModelSpec, energy
from symwm.world_models.train import RunDirectoryError, TrainConfig, scheduled_lr, train

ENV = "symwm/RotatingObject-v0"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.h5"
    return collect(path, ENV, n_episodes=24, episode_length=5, seed=3, progress=False)


def spec(variant="none"):
    return ModelSpec(env_id=ENV, variant=variant, size="cpu")


def config(dataset, out, **kw):
    base = dict(dataset=str(dataset), out_dir=str(out), epochs=2, batch_size=24, lr=1e-3, progress=False, tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_terms_by_hand():
    z = torch.zeros(4, 2, 3)
    z_next = torch.ones(4, 2, 3)
    loss, stats = contrastive_loss(z, z_next.clone(), z_next, torch.Generator().manual_seed(0))
    # positive energy 0; all z equal so every negative energy is 0 and costs the full hinge
    assert stats["positive"] == 0.0 and stats["negative"] == 1.0 and float(loss) == 1.0
    # energy: sum over D, mean over K, / (2 sigma^2) with sigma = 0.5
    assert torch.allclose(energy(z, z_next), torch.full((4,), 3 / 0.5))
    with pytest.raises(ValueError, match="shape"):
        contrastive_loss(z, z[:, :1], z_next)


def test_object_hinge_asks_every_slot_to_separate_states():
    # two objects; slot 0 tells the four samples far apart, slot 1 is the same for all (an unused slot)
    z = torch.zeros(4, 2, 3)
    z[:, 0, 0] = torch.tensor([0.0, 10.0, 20.0, 30.0])
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    perm = torch.randperm(4, generator=g())
    moved = (perm != torch.arange(4)).float()  # a sample paired with itself costs the hinge in both slots
    _, state = contrastive_loss(z, z, z, g())
    _, obj = contrastive_loss(z, z, z, g(), hinge_on="object")
    # whole state: mean energy over slots >= 100 / 2 / 0.5 = 100 for moved pairs: only self-pairs cost
    assert state["negative"] == pytest.approx(float((1 - moved).mean()))
    # per object: slot 1 costs the full hinge for every pair, slot 0 only for self-pairs
    assert obj["negative"] == pytest.approx(float(((1 - moved) + 1).mean() / 2))
    # one object: both hinges are the same loss
    one = torch.randn(6, 1, 4)
    a, _ = contrastive_loss(one, one + 0.1, one, g())
    b, _ = contrastive_loss(one, one + 0.1, one, g(), hinge_on="object")
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="hinge_on"):
        contrastive_loss(z, z, z, hinge_on="objects")


def test_temporal_negatives_ask_a_moved_object_to_change_the_latent():
    # two objects; sample 0: nothing moved, sample 1: object 0 moved but its slot stayed (a lost object),
    # sample 2: object 0 moved and its slot moved by more than the hinge
    obs = torch.zeros(3, 3, 4, 4)
    next_obs = obs.clone()
    next_obs[1, 0, 0, 0] = 1.0
    next_obs[2, 1, 2, 3] = 0.5
    moved = frames_differ(obs, next_obs)
    assert moved.tolist() == [False, True, True]
    z = torch.zeros(3, 2, 3)
    z_next = z.clone()
    z_next[2, 0, 0] = 2.0  # object energy 4 / (2 * 0.25) = 8 >= hinge; state energy 8 / 2 = 4 >= hinge / K
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    plain, base = contrastive_loss(z, z_next, z_next, g())
    loss, stats = contrastive_loss(z, z_next, z_next, g(), moved=moved)
    assert "temporal" not in base and base["negative"] == stats["negative"]
    # only sample 1 costs: hinge / K = 0.5, averaged over the two moving samples
    assert stats["temporal"] == pytest.approx(0.25)
    assert float(loss) == pytest.approx(float(plain) + 0.25)
    # one slot moving by the full hinge pays the term: the moved object alone has to change its slot
    half = z.clone()
    half[:, 1, 0] = 0.75 ** 0.5  # object energy 0.75 / 0.5 = 1.5 >= hinge: paid
    _, paid = contrastive_loss(z, half, half, g(), moved=torch.tensor([False, True, True]))
    assert paid["temporal"] == pytest.approx(0.0)
    # no moving sample in the batch: the term is zero, not NaN
    _, still = contrastive_loss(z, z, z, g(), moved=torch.zeros(3, dtype=torch.bool))
    assert still["temporal"] == 0.0
    with pytest.raises(ValueError, match="moved"):
        contrastive_loss(z, z, z, g(), moved=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="share a shape"):
        frames_differ(obs, next_obs[:2])


def test_training_with_temporal_negatives_logs_the_term_and_resumes_only_with_it(dataset, tmp_path):
    out = tmp_path / "run"
    result = train(spec("ours"), config(dataset, out, epochs=1, temporal_negatives=True, val_fraction=0.2))
    header = (out / "train_log.csv").read_text().splitlines()[0].split(",")
    assert "temporal" in header and "val_temporal" in header
    assert json.loads((out / "config.json").read_text())["train"]["temporal_negatives"] is True
    assert result.last.exists()
    with pytest.raises(CheckpointError, match="temporal_negatives was True"):
        train(spec("ours"), config(dataset, out, epochs=2, resume=True, val_fraction=0.2))
    train(spec("ours"), config(dataset, out, epochs=2, resume=True, temporal_negatives=True, val_fraction=0.2))
    with pytest.raises(ValueError, match="temporal_negatives"):
        config(dataset, tmp_path / "bad", temporal_negatives="yes")


def test_stabiliser_term_by_hand():
    """The next state's latent against itself turned: the full hinge when they coincide, nothing once they are apart."""
    z = torch.zeros(4, 1, 9)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    base, _ = contrastive_loss(z, z, z + 5.0, g())
    same, stats = contrastive_loss(z, z, z + 5.0, g(), turned=z + 5.0)
    assert stats["stabiliser"] == 1.0 and float(same) == pytest.approx(float(base) + 1.0)
    apart, stats = contrastive_loss(z, z, z + 5.0, g(), turned=z)
    assert stats["stabiliser"] == 0.0 and float(apart) == pytest.approx(float(base))
    with pytest.raises(ValueError, match="turned latents must have the shape"):
        contrastive_loss(z, z, z, g(), turned=z[:2])


def test_stabiliser_negatives_render_the_next_state_turned_train_and_resume_bit_for_bit(dataset, tmp_path):
    """Each negative is the true next state turned by the element offered for its latent; the run logs the term and resumes exactly."""
    import numpy as np

    from symwm.world_models.datasets import TransitionDataset
    from symwm.world_models.stabiliser import StabiliserNegatives

    sphere = ModelSpec(env_id=ENV, variant="matmul", size="cpu", overrides={"sen_output": "sphere"})
    model = build_model(sphere)
    negatives = StabiliserNegatives(model, str(dataset))
    items = [TransitionDataset(dataset, states=True)[i] for i in range(3)]
    next_states = {k: torch.stack([it["next_states"][k] for it in items]) for k in items[0]["next_states"]}
    with torch.no_grad():
        z = model.encode(torch.stack([it["next_obs"] for it in items]))
    frames = negatives.observations(z, next_states, np.random.default_rng(1))
    elements = model.symmetry.stabiliser_elements(z, np.random.default_rng(1))
    env = negatives.env
    for frame, g, pose in zip(frames, elements, next_states["orientation"].numpy()):
        assert torch.equal(frame, torch.from_numpy(env.render_orientation(g @ pose)))  # g acts on the pose from the left
    negatives.close()

    full = train(sphere, config(dataset, tmp_path / "full", epochs=2, batch_size=8, stabiliser_negatives=True))
    assert all(row["stabiliser"] > 0 for row in full.history)
    assert json.loads((tmp_path / "full" / "config.json").read_text())["train"]["stabiliser_negatives"] is True
    part = config(dataset, tmp_path / "part", epochs=2, batch_size=8, max_steps=20, stabiliser_negatives=True)
    assert not train(sphere, part).finished
    part.resume, part.max_steps = True, None
    resumed = train(sphere, part)
    a, b = _weights(full.last), _weights(resumed.last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError, match="stabiliser_negatives was True"):
        train(sphere, config(dataset, tmp_path / "part", epochs=3, batch_size=8, resume=True))


def test_stabiliser_negatives_name_what_they_need(dataset, tmp_path):
    """A family without stabiliser elements, or data without ground-truth states, is refused before training."""
    import h5py

    grid = ModelSpec(env_id="symwm/Shapes2D-v0", variant="ours", size="cpu")
    shapes = collect(tmp_path / "shapes.h5", "symwm/Shapes2D-v0", n_episodes=4, episode_length=2, seed=0, progress=False)
    with pytest.raises(ValueError, match="offers no stabiliser elements"):
        train(grid, config(shapes, tmp_path / "grid", batch_size=4, val_fraction=0.0, stabiliser_negatives=True))
    stateless = tmp_path / "stateless.h5"
    stateless.write_bytes(open(dataset, "rb").read())
    with h5py.File(stateless, "a") as f:
        del f["states"]
        f.attrs["states"] = "none"
    with pytest.raises(ValueError, match="has no ground-truth states.*stabiliser negatives do"):
        train(spec("matmul"), config(stateless, tmp_path / "rot", stabiliser_negatives=True))
    with pytest.raises(ValueError, match="stabiliser_negatives must be True or False"):
        config(dataset, tmp_path / "bad", stabiliser_negatives="yes")


def test_training_lowers_the_loss_and_writes_the_run(dataset, tmp_path):
    result = train(spec(), config(dataset, tmp_path / "run", epochs=4, tensorboard=True))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0]
    for name in ("best.pt", "last.pt", "config.json", "train_log.csv", "summary.json"):
        assert (tmp_path / "run" / name).exists(), name
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["spec"] == spec().to_dict() and cfg["train"]["lr"] == 1e-3
    payload = read_checkpoint(tmp_path / "run" / "best.pt")
    assert payload["versions"]["py3nj"] in (True, False) and payload["group"] == "SO(3)"
    model = load_model(tmp_path / "run" / "last.pt")
    assert not model.training


def _weights(path):
    return read_checkpoint(path)["state_dict"]


def test_resume_continues_bit_for_bit(dataset, tmp_path):
    full = train(spec("ours"), config(dataset, tmp_path / "full", epochs=3, batch_size=8))
    steps_per_epoch = 120 // 8
    # interrupted mid-epoch twice, then resumed to the end
    part = config(dataset, tmp_path / "part", epochs=3, batch_size=8, max_steps=steps_per_epoch + 4)
    assert not train(spec("ours"), part).finished
    part.resume, part.max_steps = True, 11
    assert not train(spec("ours"), part).finished
    part.max_steps = None
    part.dataset = os.path.relpath(part.dataset)  # the same file, written another way
    resumed = train(spec("ours"), part)
    assert resumed.finished
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    a, b = _weights(full.last), _weights(resumed.last)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cosine_schedule_stops_at_an_epoch_end_and_resumes_bit_for_bit(dataset, tmp_path):
    assert scheduled_lr(2e-3, "constant", 7, 10) == 2e-3
    assert [scheduled_lr(1.0, "cosine", s, 10) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    kw = dict(epochs=2, batch_size=8, lr_schedule="cosine", num_threads=1)
    full = train(spec("ours"), config(dataset, tmp_path / "full", **kw))
    per_epoch = json.loads((tmp_path / "full" / "summary.json").read_text())["global_step"] // 2
    part = config(dataset, tmp_path / "part", max_steps=per_epoch, **kw)
    assert not train(spec("ours"), part).finished
    summary = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert summary["global_step"] == per_epoch and summary["epochs_done"] == 1  # no step past the epoch's end
    part.resume, part.max_steps, part.epochs = True, None, 3
    with pytest.raises(CheckpointError, match="epochs"):  # a cosine schedule's length is part of it
        train(spec("ours"), part)
    part.epochs = 2
    resumed = train(spec("ours"), part)
    a, b = _weights(full.last), _weights(resumed.last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="lr_schedule"):
        config(dataset, tmp_path / "bad", lr_schedule="linear")


def test_restarts_continue_the_candidate_with_the_lowest_validation_loss(dataset, tmp_path):
    kw = dict(epochs=3, batch_size=8, num_threads=1, seed=4)
    run = tmp_path / "run"
    result = train(spec("ours"), config(dataset, run, restarts=3, restart_epochs=1, **kw))
    chosen = json.loads((run / "restarts.json").read_text())
    assert [c["candidate"] for c in chosen["candidates"]] == [0, 1, 2] and chosen["chosen_by"] == "val_loss"
    seeds = [c["init_seed"] for c in chosen["candidates"]]
    assert seeds[0] == 4 and len(set(seeds)) == 3  # candidate 0 is the plain run's initialisation
    losses = [c["val_loss"] for c in chosen["candidates"]]
    assert len(set(losses)) == 3 and chosen["chosen"] == losses.index(min(losses))
    for i in range(3):
        assert read_checkpoint(run / "restarts" / str(i) / "last.pt")["trainer_state"]["epoch"] == 1
    # the continuation is the chosen initialisation trained from scratch, bit for bit
    plain = train(spec("ours"), config(dataset, tmp_path / "plain", init_seed=seeds[chosen["chosen"]], **kw))
    assert result.finished and [r["loss"] for r in result.history] == [r["loss"] for r in plain.history]
    a, b = _weights(result.last), _weights(plain.last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((run / "config.json").read_text())["train"]["restarts"] == 3
    # interrupted after the candidates, before the choice: resumed, nothing is trained twice
    for name in ("last.pt", "best.pt", "summary.json", "restarts.json"):
        (run / name).unlink()
    with pytest.raises(RunDirectoryError, match="restart candidate"):
        train(spec("ours"), config(dataset, run, restarts=3, restart_epochs=1, **kw))
    resumed = train(spec("ours"), config(dataset, run, restarts=3, restart_epochs=1, resume=True, **kw))
    b = _weights(resumed.last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # overwrite without restarts clears the candidates
    train(spec("ours"), config(dataset, run, overwrite=True, **{**kw, "epochs": 1}))
    assert not (run / "restarts").exists() and not (run / "restarts.json").exists()
    with pytest.raises(ValueError, match="restart_epochs"):
        config(dataset, run, restarts=2, restart_epochs=3, **kw)
    with pytest.raises(ValueError, match="max_steps"):
        config(dataset, run, restarts=2, restart_epochs=1, max_steps=5, **kw)
    with pytest.raises(ValueError, match="ModelSpec"):
        train(build_model(spec("ours")), config(dataset, tmp_path / "given", restarts=2, restart_epochs=1, **kw))


def test_resume_and_load_errors_name_the_problem(dataset, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="does not exist"):
        train(spec(), config(dataset, out, resume=True))
    with pytest.raises(CheckpointError, match="nor does any restart candidate"):  # nothing trained yet: as without restarts
        train(spec(), config(dataset, out, resume=True, restarts=2, restart_epochs=1, epochs=2))
    train(spec(), config(dataset, out, epochs=1))
    with pytest.raises(CheckpointError, match="lr was 0.001"):
        train(spec(), config(dataset, out, resume=True, lr=0.01))
    with pytest.raises(CheckpointError, match="model spec"):
        train(spec("matmul"), config(dataset, out, resume=True))
    with pytest.raises(CheckpointError, match="hinge_on was 'state'"):
        train(spec(), config(dataset, out, resume=True, hinge_on="object"))
    with pytest.raises(ValueError, match="hinge_on"):
        config(dataset, tmp_path / "bad", hinge_on="slot")
    # a checkpoint loaded into a different model
    other = build_model(spec("ours"), initialize=False)
    from symwm.world_models.checkpoint import load_weights

    with pytest.raises(CheckpointError, match="different model"):
        load_weights(other, read_checkpoint(out / "last.pt"))
    # truncated and foreign files
    broken = tmp_path / "broken.pt"
    broken.write_bytes((out / "last.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not readable"):
        load_model(broken)
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a symwm checkpoint"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(spec(), config(dataset, tmp_path / "x", batch_size=4096))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = build_model(spec(), initialize=True)
    path = save_checkpoint(tmp_path / "c.pt", model)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_bf16_support_is_read_from_the_cpu_flags():
    from symwm.world_models.train import cpu_bf16_support

    assert cpu_bf16_support("flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16\n") == "amx"
    assert cpu_bf16_support("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n") == "avx512_bf16"
    assert cpu_bf16_support("flags : fpu avx2\n") is None
    assert cpu_bf16_support("") is None


def test_a_checkpoint_keeps_loading_after_its_preset_changes(tmp_path, monkeypatch):
    from symwm.world_models.models import rotation  # the family of ENV

    model = build_model(spec(), initialize=True)
    assert model.params["hidden"] == rotation.PRESETS["cpu"][spec().variant]["hidden"]
    path = save_checkpoint(tmp_path / "c.pt", model)
    changed = {size: {v: dict(p) for v, p in variants.items()} for size, variants in rotation.PRESETS.items()}
    changed["cpu"][spec().variant]["hidden"] *= 2  # a later release widens the preset
    monkeypatch.setattr(rotation, "PRESETS", changed)
    loaded = load_model(path)  # built from the recorded hyper-parameters, not today's preset
    assert loaded.params == model.params
    for name, tensor in model.eval().state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert build_model(spec(), initialize=False).params["hidden"] == 2 * model.params["hidden"]
    del changed["cpu"][spec().variant]["hidden"]  # a field the family no longer has
    with pytest.raises(CheckpointError, match=r"hidden.*not fields"):
        load_model(path)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["rotation", "grid", "reacher"])
def test_distributed_training_on_two_cpu_processes(dataset, tmp_path, family):
    out = tmp_path / "ddp"
    env_id, data = ENV, dataset
    if family != "rotation":  # families with BatchNorm: running statistics must agree across ranks
        env_id = {"grid": "symwm/Cubes3D-v0", "reacher": "symwm/Reacher-v0"}[family]
        data = collect(tmp_path / "d.h5", env_id, n_episodes=24, episode_length=5, seed=3, progress=False)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "symwm.cli", "train", "--env", env_id, "--variant", "none", "--dataset", str(data),
        "--out-dir", str(out), "--epochs", "4", "--batch-size", "24", "--lr", "0.001", "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"]
    assert summary["ranks_in_sync"] and len(summary["parameter_digests"]) == 2
    rows = (out / "train_log.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert len(losses) == 4 and losses[-1] < losses[0]
    # only rank 0 logs: one TensorBoard event file, no temporary files left behind
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt", "summary.json", "tb", "train_log.csv"]


_GROUP_LIFETIME = """
import os, torch, torch.distributed as dist
from symwm.world_models.train import _distributed
_distributed()
torch.optim.Adam(torch.nn.Linear(2, 2).parameters())  # its first import of torch._dynamo used to pin the group
dist.destroy_process_group()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print("threads:", ",".join(sorted(names)))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_destroying_the_group_stops_gloo_threads(tmp_path):
    """After destroy_process_group no gloo thread may run into interpreter exit (they aborted ranks)."""
    script = tmp_path / "group.py"
    script.write_text(_GROUP_LIFETIME)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("threads:")]
    assert len(lines) == 2
    assert not any("gloo" in line for line in lines), lines
