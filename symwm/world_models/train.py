"""Training: contrastive loss, Adam, progress bar, TensorBoard + CSV logs, atomic resumable checkpoints.

Run directory layout (only rank 0 writes)::

    out_dir/config.json        model spec + training config (also inside each checkpoint)
    out_dir/last.pt            everything needed to resume bit for bit
    out_dir/best.pt            lowest validation loss (held-out episodes of the training file), or
                               with ``val_fraction=0`` the lowest mean training loss (the paper's choice)
    out_dir/train_log.csv      one row per epoch
    out_dir/summary.json       final numbers, and whether all ranks ended with identical weights
    out_dir/tb/                TensorBoard scalars

Distributed: the same code runs under ``torchrun --nproc_per_node=N`` (DistributedDataParallel,
gloo on CPU, nccl on GPU; BatchNorm running statistics averaged over ranks before every
checkpoint, so all ranks hold the same model). Each rank reads its own shard of every epoch's shuffled index list
(``DistributedSampler``); ``batch_size`` is the global batch, split evenly across ranks.

Resuming is exact: every random choice (shuffling, the loss's negatives) is derived from
``(seed, epoch, step, rank)`` rather than from a global generator, and checkpoints store the
optimiser, the gradient scaler, batch-norm statistics and the running epoch sums, so an
interrupted run continued with ``resume=True`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Subset

from symwm.envs.symmetry import pose_key
from symwm.world_models.build import build_model
from symwm.world_models.compatibility import check_compatible
from symwm.world_models.checkpoint import CheckpointError, load_weights, read_checkpoint, rebuild, save_checkpoint
from symwm.world_models.datasets import TransitionDataset, open_dataset
from symwm.world_models.locks import acquire_lock
from symwm.world_models.loss import HINGE, HINGE_ON, contrastive_loss, frames_differ
from symwm.world_models.metrics import pose_error, ranking_metrics, slot_usage
from symwm.world_models.model import SIGMA, ModelSpec, WorldModel
from symwm.world_models.stabiliser import StabiliserNegatives

#: learning-rate schedules of ``TrainConfig.lr_schedule``
LR_SCHEDULES = ("constant", "cosine")


def scheduled_lr(lr: float, schedule: str, step: int, total_steps: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) out of ``total_steps``."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return 0.5 * lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    raise ValueError(f"unknown lr_schedule {schedule!r}; known: {list(LR_SCHEDULES)}")


@dataclass
class TrainConfig:
    """Training hyper-parameters (defaults: the paper's grid-world settings)."""

    dataset: str
    """HDF5 file written by ``symwm collect``"""
    out_dir: str
    """run directory for checkpoints and logs"""
    epochs: int = 100
    """passes over the dataset"""
    batch_size: int = 1024
    """global batch size (split across ranks); the paper uses 1024 for grid worlds, 256 for Reacher"""
    lr: float = 5e-4
    """Adam learning rate"""
    lr_schedule: str = "constant"
    """'constant' (the paper's) or 'cosine': decays the rate from lr to 0 over all epochs' steps (a function of the optimiser step, so resuming continues it)"""
    hinge: float = HINGE
    """margin of the negative term"""
    sigma: float = SIGMA
    """energy temperature"""
    hinge_on: str = "state"
    """'state' (the release's: the mean of the objects' energies to another sample must reach the hinge) or 'object' (each object's must, so no object slot can stay unused; experimental, see symwm.world_models.loss)"""
    temporal_negatives: bool = False
    """also ask the latent to change wherever the frames of a transition change (one hinge for the moved object; not in the release, see symwm.world_models.loss)"""
    stabiliser_negatives: bool = False
    """also push each next state's latent away from that state turned by a group element its latent cannot see where it has collapsed (one body axis of the rotating object), rendered by the env from the data's ground-truth states: needs states and a family that offers it; the validation loss leaves the term out; not in the release, see symwm.world_models.stabiliser"""
    seed: int = 0
    """seed of initialisation, shuffling and negatives"""
    init_seed: int | None = None
    """seed of the weights' initialisation alone (unset: seed); restarts give each candidate its own"""
    restarts: int = 1
    """initialisations tried: each trains restart_epochs epochs on the same data, split and batches, and the one with the lowest validation loss then trains on (the others stay in out_dir/restarts); not in the release, see train_restarts"""
    restart_epochs: int = 10
    """epochs each restart candidate trains before the choice (the chosen one's count towards epochs)"""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu' or 'cuda[:i]'"""
    amp: bool | None = None
    """mixed precision (default: on for CUDA, off on CPU; on CPU bfloat16, native only with AVX512-BF16 or AMX: cpu_bf16_support)"""
    num_workers: int = 0
    """DataLoader worker processes"""
    num_threads: int | None = None
    """CPU threads of this call (torch.set_num_threads; unset: torch's default). Float results depend on it: resume with the count a run started with to continue it bit for bit"""
    checkpoint_every: int = 0
    """also save last.pt every N optimiser steps (0: at the end of each epoch only)"""
    resume: bool = False
    """continue from out_dir/last.pt"""
    progress: bool = True
    """show a progress bar"""
    tensorboard: bool = True
    """write TensorBoard scalars to out_dir/tb"""
    val_fraction: float = 0.05
    """share of the training file's episodes held out for validation (same distribution as training, never the evaluation set); best.pt is the lowest validation loss, or with 0 the lowest training loss (the paper's choice)"""
    max_steps: int | None = None
    """stop after this many optimiser steps in this call (for tests and time-boxed runs)"""
    overwrite: bool = False
    """replace a run already in out_dir (without it, a directory holding a run is refused unless resume)"""
    extra: dict[str, Any] = field(default_factory=dict)
    """free-form notes stored in config.json"""

    def __post_init__(self) -> None:
        """Refuse bad values before anything starts, naming the option."""
        def integer(name: str, minimum: int, optional: bool = False) -> None:
            v = getattr(self, name)
            if optional and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if optional else ''}, got {v!r}")

        integer("epochs", 1)
        integer("batch_size", 1)
        integer("num_workers", 0)
        integer("checkpoint_every", 0)
        integer("seed", 0)
        integer("init_seed", 0, optional=True)
        integer("restarts", 1)
        integer("restart_epochs", 1)
        if self.restarts > 1 and self.restart_epochs >= self.epochs:
            raise ValueError(f"restart_epochs ({self.restart_epochs}) must be fewer than epochs ({self.epochs}) when restarts > 1")
        if self.restarts > 1 and self.max_steps is not None:
            raise ValueError("restarts and max_steps exclude each other (max_steps would cut a candidate short)")
        integer("max_steps", 1, optional=True)
        integer("num_threads", 1, optional=True)
        for name, low in (("lr", 0.0), ("sigma", 0.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= low:
                raise ValueError(f"{name} must be a finite number > {low}, got {v!r}")
        if isinstance(self.hinge, bool) or not isinstance(self.hinge, (int, float)) or not math.isfinite(self.hinge) or self.hinge < 0:
            raise ValueError(f"hinge must be a finite number >= 0, got {self.hinge!r}")
        if self.amp is not None and not isinstance(self.amp, bool):
            raise ValueError(f"amp must be true, false or unset (auto), got {self.amp!r}")
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.hinge_on not in HINGE_ON:
            raise ValueError(f"hinge_on must be one of {list(HINGE_ON)}, got {self.hinge_on!r}")
        for name in ("temporal_negatives", "stabiliser_negatives"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")


@dataclass
class TrainResult:
    """Where the run left its files, and its loss history (one dict per epoch)."""

    out_dir: Path
    best: Path
    last: Path
    history: list[dict[str, float]]
    finished: bool


def cpu_bf16_support(cpuinfo: str | None = None) -> str | None:
    """``"amx"`` or ``"avx512_bf16"`` where this CPU computes bfloat16 natively (Linux ``/proc/cpuinfo`` flags), else None.

    Without either, bf16 autocast on CPU is emulated and slower than float32; ``cpuinfo``: the text to
    read instead of ``/proc/cpuinfo`` (tests).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """The trainer's Adam: torch's fused kernel where the parameters live on CPU or CUDA (the same update, one kernel).

    On CPU the fused step took 0.8 ms against 3.8 ms for the default loop on the grid `cpu` model and
    1.3 against 7.5 ms on Reacher's (one thread; ``benchmarks/results/train_profile_cpu.md``).
    """
    params = list(model.parameters())
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    digest = hashlib.sha256(",".join(str(int(v)) for v in values).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        # torch 2.13: the first import of torch._dynamo (by the optimiser or DistributedDataParallel)
        # after init_process_group keeps the default group alive past destroy_process_group; its
        # gloo threads then ran into interpreter exit and aborted a rank about once in six runs.
        import torch._dynamo  # noqa: F401  (imported first, it holds no group)

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of all parameters and buffers (to check that ranks agree)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _same_setting(key: str, saved: Any, now: Any) -> bool:
    """Equal training settings; a dataset file is the same however its path is written (relative, absolute, links)."""
    if key == "dataset" and isinstance(saved, str) and isinstance(now, str) and not saved.startswith("minari:"):
        return os.path.realpath(saved) == os.path.realpath(now)
    return saved == now


def _check_resume(payload: dict[str, Any], spec: ModelSpec, cfg: TrainConfig, path: Path) -> None:
    saved = {"lr_schedule": "constant", "hinge_on": "state", "temporal_negatives": False, "stabiliser_negatives": False,
             **payload.get("train_config", {})}  # runs from before the options
    if payload["spec"] != spec.to_dict():
        raise CheckpointError(f"cannot resume from {path}: it was trained with model spec {payload['spec']}, not {spec.to_dict()}")
    keys = ["dataset", "batch_size", "lr", "hinge", "sigma", "seed", "val_fraction"]
    if cfg.lr_schedule != "constant":  # the schedule's length is part of it
        keys.append("epochs")
    for key in keys + ["lr_schedule", "hinge_on", "temporal_negatives", "stabiliser_negatives"]:
        if key in saved and not _same_setting(key, saved[key], getattr(cfg, key)):
            raise CheckpointError(f"cannot resume from {path}: {key} was {saved[key]!r}, now {getattr(cfg, key)!r}")


class RunDirectoryError(ValueError):
    """A run directory holds a run that would be clobbered, or another training is using it."""


#: files of a run directory; a directory holding the first two is a run that only --resume or --overwrite may touch
RUN_FILES = ("last.pt", "summary.json", "best.pt", "train_log.csv", "config.json")
LOCK = ".lock"


def data_fingerprint(data: TransitionDataset) -> dict[str, Any]:
    """What identifies a training file: path, size, and the collection's creation time, seed and settings."""
    p, attrs = data.path.resolve(), data.attrs
    return {
        "path": str(p), "bytes": p.stat().st_size, "env_id": data.env_id, "env_kwargs": attrs.get("env_kwargs"),
        "actions": attrs.get("actions"), "seed": attrs.get("seed"), "created": attrs.get("created"),
        "n_episodes": data.n_episodes, "episode_length": data.episode_length,
    }


def _prepare_run_dir(out: Path, cfg: TrainConfig) -> None:
    """Refuse to clobber a run: a directory with last.pt or summary.json needs resume or overwrite."""
    holds_run = any((out / name).exists() for name in RUN_FILES[:2])
    if holds_run and not (cfg.resume or cfg.overwrite):
        finished = (out / "summary.json").exists()
        raise RunDirectoryError(
            f"run directory {out} already holds a{' finished' if finished else 'n unfinished'} run; "
            "pass --resume to continue it, --overwrite to replace it, or choose another --out-dir"
        )
    if cfg.overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "tb", ignore_errors=True)
        (out / "restarts.json").unlink(missing_ok=True)
        shutil.rmtree(out / RESTARTS, ignore_errors=True)


def train(spec: ModelSpec | WorldModel, cfg: TrainConfig, on_step: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train ``spec`` (or a model instance) on ``cfg.dataset``; returns where the checkpoints are.

    A :class:`WorldModel` instance is trained in place (with ``cfg.resume`` its weights are
    replaced by ``last.pt``'s first); its checkpoints load with ``load_model`` when its family is
    registered (:mod:`symwm.world_models.families`), as every family-built model's do.

    ``on_step(global_step, stats)`` is called after every optimiser step (rank 0 only). The run
    directory is locked while training (``.lock``); one that holds a run is refused unless
    ``cfg.resume`` or ``cfg.overwrite``. With ``cfg.restarts > 1`` the initialisations are tried
    first (:func:`train_restarts`); ``on_step`` then also sees each candidate's steps.
    """
    out = Path(cfg.out_dir)
    rank = int(os.environ.get("RANK", "0"))
    own_group = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()  # _distributed() will start it
    lock = None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        lock = acquire_lock(out / LOCK, f"run directory {out}", RunDirectoryError)
    try:
        if rank == 0:
            _prepare_run_dir(out, cfg)
        if isinstance(spec, WorldModel):
            if cfg.restarts > 1:
                raise ValueError("restarts need a ModelSpec (each candidate is built afresh), not a model instance")
            return _train(spec.spec, cfg, on_step, spec)
        if cfg.restarts > 1 and not (out / "last.pt").exists():
            if cfg.resume and not any((out / RESTARTS / str(i) / "last.pt").exists() for i in range(cfg.restarts)):
                raise CheckpointError(f"cannot resume: {out / 'last.pt'} does not exist, nor does any restart candidate's "
                                      f"under {out / RESTARTS} (start without --resume)")
            cfg = train_restarts(spec, cfg, on_step)
        return _train(spec, cfg, on_step)
    finally:
        if lock is not None:
            lock.unlink(missing_ok=True)
        if own_group and dist.is_initialized():  # its gloo threads must not run into interpreter exit
            dist.destroy_process_group()


RESTARTS = "restarts"


def train_restarts(spec: ModelSpec, cfg: TrainConfig, on_step: Callable[[int, dict], None] | None = None) -> TrainConfig:
    """Train ``cfg.restarts`` initialisations for ``cfg.restart_epochs`` epochs; the best becomes ``out_dir``'s run.

    Why: an equivariant model whose SEN must discover the group's action on the pixels can settle in
    a minimum where its latent is not equivariant; which one it reaches is decided by the
    initialisation within the first epochs, and on the hexagonal-board example its validation loss
    already tells (0.03-0.06 against 0.10-0.11 after 10 epochs; benchmarks/results/examples). It does
    not on every env: on that page's puck and tokens the lowest early loss is not the initialisation
    that generalises.
    Candidate ``i`` differs only in its initialisation (``init_seed``: ``seed`` for ``i = 0``, so one
    restart is the plain run); data, validation split, batches and negatives are the same. Each
    trains in ``out_dir/restarts/<i>`` (resumable), ``restarts.json`` records every validation loss
    (the training loss with ``val_fraction`` 0), and the chosen one's ``last.pt`` / ``best.pt`` are
    copied into ``out_dir``. Returns the config that continues it there (``resume``). One process
    only (not under torchrun).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("restarts run in one process; train without torchrun, or with restarts=1")
    out = Path(cfg.out_dir)
    candidates = []
    for i in range(cfg.restarts):
        sub = out / RESTARTS / str(i)
        init_seed = (cfg.seed if cfg.init_seed is None else cfg.init_seed) if i == 0 else _mix(cfg.seed, i, 0x12E5) % (1 << 31)
        saved = sub / "last.pt"
        history = [] if cfg.overwrite or not saved.exists() else read_checkpoint(saved)["trainer_state"]["history"]
        if history and not cfg.resume:
            raise RunDirectoryError(f"{sub} holds a restart candidate of an earlier run; pass --resume to continue it or --overwrite")
        if len(history) < cfg.restart_epochs:
            sub_cfg = replace(cfg, out_dir=str(sub), init_seed=init_seed, restarts=1, tensorboard=False, resume=bool(history),
                              overwrite=not history)
            sub.mkdir(parents=True, exist_ok=True)
            _prepare_run_dir(sub, sub_cfg)
            history = _train(spec, sub_cfg, on_step, stop_epoch=cfg.restart_epochs).history
        last = history[cfg.restart_epochs - 1]
        candidates.append({"candidate": i, "init_seed": init_seed, "val_loss": last.get("val_loss"), "loss": last["loss"]})
    key = "val_loss" if candidates[0]["val_loss"] is not None else "loss"
    best = min(candidates, key=lambda c: c[key])
    src = out / RESTARTS / str(best["candidate"])
    for name in ("best.pt", "last.pt"):  # last.pt last: its presence marks the choice as made
        if (src / name).exists():
            tmp = out / f".{name}.tmp"
            shutil.copyfile(src / name, tmp)
            os.replace(tmp, out / name)
    _write_json(out / "restarts.json", {"chosen": best["candidate"], "chosen_by": key, "restart_epochs": cfg.restart_epochs,
                                        "candidates": candidates})
    return replace(cfg, init_seed=best["init_seed"], resume=True, overwrite=False)


def _train(
    spec: ModelSpec, cfg: TrainConfig, on_step: Callable[[int, dict], None] | None, given: WorldModel | None = None,
    stop_epoch: int | None = None,
) -> TrainResult:
    rank, world = _distributed()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    device = _device(cfg.device, rank)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {world} ranks")
    amp = (device.type == "cuda") if cfg.amp is None else bool(cfg.amp)
    if amp and device.type == "cpu" and rank == 0 and cpu_bf16_support() is None:
        warnings.warn("amp on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated there and usually slower than float32", stacklevel=2)
    out = Path(cfg.out_dir)
    last_path, best_path = out / "last.pt", out / "best.pt"

    full = TransitionDataset(cfg.dataset, expect_env_id=spec.env_id, states=cfg.stabiliser_negatives)
    check_compatible(spec, full.env_id, json.loads(full.attrs["env_kwargs"]), f"training data {cfg.dataset}", full.obs_shape)
    train_idx, val_idx = validation_split(full.n_episodes, full.episode_length, cfg.val_fraction, cfg.seed)
    dataset = Subset(full, train_idx)
    per_rank = cfg.batch_size // world
    if len(dataset) < cfg.batch_size:
        raise ValueError(f"dataset {cfg.dataset} has {len(dataset)} training transitions, fewer than one batch of {cfg.batch_size}")

    fingerprint = data_fingerprint(full)
    torch.manual_seed(cfg.seed if cfg.init_seed is None else cfg.init_seed)
    payload = None
    if cfg.resume:
        if not last_path.exists():
            raise CheckpointError(f"cannot resume: {last_path} does not exist (start without --resume)")
        payload = read_checkpoint(last_path)
        _check_resume(payload, spec, cfg, last_path)
        saved_fp = payload.get("data_fingerprint")
        if saved_fp is not None:
            changed = {k: (saved_fp.get(k), v) for k, v in fingerprint.items() if saved_fp.get(k) != v}
            if changed:
                raise CheckpointError(
                    f"cannot resume from {last_path}: the training data changed since (saved, now): {changed}"
                )
    if given is not None:
        model = given
    else:
        model = build_model(spec) if payload is None else rebuild(payload, spec, last_path)
    if payload is not None:
        load_weights(model, payload, source=f"checkpoint {last_path}")
    model.to(device).train()
    stabiliser = StabiliserNegatives(model, cfg.dataset) if cfg.stabiliser_negatives else None
    val_poses = validation_poses(model, full, val_idx)  # SO(3) SENs: watch the pose error while training
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, cfg.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_loss": float("inf"), "sums": {}, "history": []}
    if payload is not None:
        optimizer.load_state_dict(payload["optimizer"])
        scaler.load_state_dict(payload["scaler"])
        state = payload["trainer_state"]

    writer = None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        config = {"spec": spec.to_dict(), "train": asdict(cfg), "world_size": world}
        _write_json(out / "config.json", config)
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"), purge_step=state["global_step"] or None)

    def checkpoint(path: Path) -> None:
        sync_batchnorm_statistics(model, world)  # every rank calls this at the same points
        if rank == 0:
            save_checkpoint(
                path, model, optimizer=optimizer.state_dict(), scaler=scaler.state_dict(),
                trainer_state=state, train_config=asdict(cfg), world_size=world, data_fingerprint=fingerprint,
            )

    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    steps_this_call, finished = 0, False
    total_steps = cfg.epochs * (len(sampler) // per_rank)
    while state["epoch"] < (cfg.epochs if stop_epoch is None else stop_epoch):
        if cfg.max_steps is not None and steps_this_call >= cfg.max_steps:
            break  # stopped by max_steps at an epoch's end (last.pt is written there)
        epoch = state["epoch"]
        sampler.set_epoch(epoch)
        indices = list(sampler)
        batches = [indices[i : i + per_rank] for i in range(0, len(indices) - per_rank + 1, per_rank)]
        skip = state["step_in_epoch"]
        loader = DataLoader(dataset, batch_sampler=batches[skip:], num_workers=cfg.num_workers)
        bar = None
        if rank == 0 and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(batches), initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
        start = time.perf_counter()
        for batch in loader:
            step = state["step_in_epoch"]
            obs, action, next_obs = (batch[k].to(device, non_blocking=True) for k in ("obs", "action", "next_obs"))
            generator = torch.Generator().manual_seed(_mix(cfg.seed, epoch, step, rank))
            turned = None
            if stabiliser is not None:  # elements chosen from the latents as they are now (no gradient), then one pass for all
                with torch.no_grad(), torch.autocast(device.type, enabled=amp):
                    z_seen = model.encode(next_obs)
                rng = np.random.default_rng(_mix(cfg.seed, epoch, step, rank, 0x57AB))
                extra = stabiliser.observations(z_seen.float().cpu(), batch["next_states"], rng).to(device, non_blocking=True)
                with torch.autocast(device.type, enabled=amp):
                    z, z_pred, z_next, turned = net(obs, action, next_obs, extra)
                turned = turned.float()
            else:
                with torch.autocast(device.type, enabled=amp):
                    z, z_pred, z_next = net(obs, action, next_obs)
            moved = frames_differ(obs, next_obs) if cfg.temporal_negatives else None
            loss, stats = contrastive_loss(z.float(), z_pred.float(), z_next.float(), generator, cfg.hinge, cfg.sigma, cfg.hinge_on, moved,
                                           turned)
            if not torch.isfinite(loss):  # before the update: the weights and every saved file stay finite
                raise FloatingPointError(
                    f"non-finite loss ({stats['loss']}) at epoch {epoch + 1}, step {step + 1} (optimiser step "
                    f"{state['global_step'] + 1}); nothing was updated, {last_path} holds the last finite state if it exists"
                )
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(cfg.lr, cfg.lr_schedule, state["global_step"], total_steps)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            stats = _mean_over_ranks(stats, world, device)
            for k, v in stats.items():
                state["sums"][k] = state["sums"].get(k, 0.0) + v
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            steps_this_call += 1
            if rank == 0:
                if writer is not None:
                    for k, v in stats.items():
                        writer.add_scalar(f"train/{k}", v, state["global_step"])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{stats['loss']:.4f}")
                if on_step is not None:
                    on_step(state["global_step"], stats)
            if cfg.checkpoint_every and state["global_step"] % cfg.checkpoint_every == 0:
                checkpoint(last_path)
            if cfg.max_steps is not None and steps_this_call >= cfg.max_steps:
                break
        if bar is not None:
            bar.close()
        if state["step_in_epoch"] < len(batches):  # stopped early by max_steps
            checkpoint(last_path)
            break
        seconds = time.perf_counter() - start
        n = state["step_in_epoch"]
        row = {"epoch": epoch + 1, **{k: v / n for k, v in state["sums"].items()}, "seconds": seconds,
               "transitions_per_s": (len(batches) - skip) * cfg.batch_size / max(seconds, 1e-9)}
        if len(val_idx):
            sync_batchnorm_statistics(model, world)  # every rank validates the same model
            row.update(validate(model, full, val_idx, device, amp, cfg, val_poses))
        state["history"].append(row)
        state["epoch"], state["step_in_epoch"], state["sums"] = epoch + 1, 0, {}
        criterion = row["val_loss"] if len(val_idx) else row["loss"]
        improved = criterion < state["best_loss"]
        if improved:
            state["best_loss"] = criterion
            state["best_epoch"] = epoch + 1
        if rank == 0:
            _write_csv(out / "train_log.csv", state["history"])
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch":
                        writer.add_scalar(f"epoch/{k}", v, epoch + 1)
                writer.flush()
        if improved:
            checkpoint(best_path)
        checkpoint(last_path)
    else:
        finished = state["epoch"] >= cfg.epochs  # not where a restart candidate stops (stop_epoch)

    sync_batchnorm_statistics(model, world)
    digests = [parameter_digest(model)]
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, digests[0])
        digests = gathered
    if rank == 0:
        if writer is not None:
            writer.close()
        _write_json(out / "summary.json", {
            "finished": finished, "epochs_done": state["epoch"], "global_step": state["global_step"],
            "best_loss": state["best_loss"], "best_epoch": state.get("best_epoch"),
            "best_checkpoint": str(best_path) if best_path.exists() else None,
            "best_by": "val_loss" if len(val_idx) else "loss", "val_transitions": len(val_idx),
            "final_loss": state["history"][-1]["loss"] if state["history"] else None,
            "world_size": world, "ranks_in_sync": len(set(digests)) == 1, "parameter_digests": digests,
        })
    if world > 1:
        dist.barrier()
    if stabiliser is not None:
        stabiliser.close()
    return TrainResult(out, best_path, last_path, state["history"], finished)


def sync_batchnorm_statistics(model: torch.nn.Module, world: int) -> None:
    """Average BatchNorm running statistics over ranks (a no-op for one process).

    DistributedDataParallel keeps parameters equal, but each rank's running mean and variance
    follow its own shard of the data; averaged before every checkpoint and validation, every
    rank holds (and rank 0 saves) the same model. Training itself uses batch statistics, so this
    changes nothing in the optimisation.
    """
    if world == 1:
        return
    for name, buf in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            dist.all_reduce(buf)
            buf.div_(world)


def validation_split(n_episodes: int, episode_length: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Transition indices ``(train, val)``: ``fraction`` of the episodes, drawn with ``seed``, held out whole.

    Whole episodes are held out so that no validation transition shares an episode with training
    data. At least one episode stays on each side when ``fraction > 0``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction!r}")
    n_val = 0 if fraction == 0.0 else min(n_episodes - 1, max(1, round(fraction * n_episodes)))
    rng = torch.Generator().manual_seed(_mix(seed, n_episodes, 0x7A1))
    val_eps = torch.randperm(n_episodes, generator=rng)[:n_val]
    is_val = torch.zeros(n_episodes, dtype=torch.bool)
    is_val[val_eps] = True
    per_step = is_val.repeat_interleave(episode_length)  # transition i*T + t belongs to episode i
    all_idx = torch.arange(n_episodes * episode_length)
    return all_idx[~per_step].tolist(), all_idx[per_step].tolist()


#: validation transitions ranked against each other for val_hits@1 / val_mrr (1 step)
VAL_RANKED = 2000


def validation_poses(model: WorldModel, dataset: TransitionDataset, indices: list[int]) -> torch.Tensor | None:
    """True poses ``[len(indices), ...]`` of the transitions' first observations, where the model's SEN
    outputs group elements and the env names its pose (``pose_key``); else None."""
    if not (model.symmetry.has_pose and indices):
        return None
    with open_dataset(dataset.path) as f:
        key = pose_key(f.make_env()) if f.has_states else None
        if key is None:
            return None
        poses = torch.as_tensor(f[f"states/{key}"][()])  # [episodes, T + 1, ...]
    index = torch.tensor(indices)  # transition i*T + t: episode i, step t
    return poses[index // dataset.episode_length, index % dataset.episode_length]


@torch.no_grad()
def validate(
    model: torch.nn.Module, dataset: TransitionDataset, indices: list[int], device: torch.device, amp: bool, cfg: TrainConfig,
    poses: torch.Tensor | None = None,
) -> dict[str, float]:
    """Validation loss (fixed negatives) and 1-step Hits@1 / MRR among the first ``VAL_RANKED`` held-out transitions;
    with ``poses`` (:func:`validation_poses`) the SEN's pose error on all of them."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(_mix(cfg.seed, 0x7A1))
    loader = DataLoader(Subset(dataset, indices), batch_size=512, shuffle=False)
    sums = {"loss": 0.0, "positive": 0.0, "negative": 0.0, **({"temporal": 0.0} if cfg.temporal_negatives else {})}
    n, preds, targets, estimated = 0, [], [], []
    for batch in loader:
        obs, action, next_obs = (batch[k].to(device) for k in ("obs", "action", "next_obs"))
        with torch.autocast(device.type, enabled=amp):
            z, z_pred, z_next = model(obs, action, next_obs)
        moved = frames_differ(obs, next_obs) if cfg.temporal_negatives else None
        _, stats = contrastive_loss(z.float(), z_pred.float(), z_next.float(), generator, cfg.hinge, cfg.sigma, cfg.hinge_on, moved)
        b = obs.shape[0]
        n += b
        for k in sums:
            sums[k] += stats[k] * b
        if sum(len(p) for p in preds) < VAL_RANKED:
            preds.append(z_pred.float().cpu())
            targets.append(z_next.float().cpu())
        if poses is not None:
            estimated.append(model.symmetry.pose(model.embed(obs)).float().cpu())  # [b, 3, 3]
    model.train(was_training)
    targets = torch.cat(targets)[:VAL_RANKED]  # [n, K, D]
    ranks = ranking_metrics(torch.cat(preds)[:VAL_RANKED], targets, ks=(1,))
    out = {**{f"val_{k}": v / n for k, v in sums.items()}, "val_hits@1": ranks["hits@1"], "val_mrr": ranks["mrr"]}
    if targets.shape[1] > 1 and targets.shape[0] > 1:  # object-factored latents: watch for an unused slot
        out["val_slot_usage"] = slot_usage(targets)
    if poses is not None:
        out.update({f"val_{k}": v for k, v in pose_error(torch.cat(estimated), poses).items()})
    return out


def _mean_over_ranks(stats: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    if world == 1:
        return stats
    t = torch.tensor([stats[k] for k in sorted(stats)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(sorted(stats), t.tolist())}


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN or infinity: such floats become null (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_finite_or_none(data), indent=2, default=str, allow_nan=False))
    os.replace(tmp, path)


def _write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """Rewrite the whole log from the history kept in the checkpoint (idempotent under resume)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))  # a run resumed by newer code may gain columns
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
