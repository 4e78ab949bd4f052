"""Checkpoints: atomic writes, the model spec and versions inside, clear errors on mismatch.

A checkpoint is a ``torch.save`` dict with the model's ``state_dict`` taken in **eval mode** (escnn
modules cache expanded filters as buffers in eval mode, so their train- and eval-mode
``state_dict`` s differ; we always save and load in eval mode), the :class:`ModelSpec` to rebuild
the model, the trainer's state for ``--resume``, and the versions that matter for reproducing it
(escnn, whether ``py3nj`` was present — SO(3) Clebsch-Gordan coefficients can differ by sign
without it — torch, symwm) with the group and latent layout.

Checkpoints hold only tensors, numbers, strings, lists and dicts, and every loading path goes
through :func:`read_checkpoint`, which loads with ``weights_only=True``: a crafted file is refused
before any of its code could run. (A checkpoint from an untrusted source is still untrusted data.)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

import symwm
from symwm.world_models.build import RecordedParamsError, build_model
from symwm.world_models.model import ModelSpec, WorldModel

FORMAT_VERSION = 1
#: what checkpoints written before versions were stored as plain strings hold besides tensors,
#: numbers, strings, lists and dicts: torch's version string (a ``str`` subclass)
_LEGACY_SAFE_GLOBALS = [torch.torch_version.TorchVersion]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not match the model it is loaded into."""


def environment_versions() -> dict[str, Any]:
    """Versions recorded in every checkpoint."""
    import escnn

    return {
        "symwm": str(symwm.__version__),
        "torch": str(torch.__version__),  # plain strings: checkpoints load with weights_only=True
        "escnn": str(getattr(escnn, "__version__", "unknown")),
        "py3nj": importlib.util.find_spec("py3nj") is not None,
    }


def spec_digest(spec: dict[str, Any]) -> str:
    """SHA-256 of a spec's canonical JSON: stored beside the spec so that an edited spec is noticed."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def model_record(model: WorldModel) -> dict[str, Any]:
    """The model part of a checkpoint: spec, eval-mode weights, group and latent layout."""
    was_training = model.training
    model.eval()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.train(was_training)
    return {
        "spec": model.spec.to_dict(),
        "spec_sha256": spec_digest(model.spec.to_dict()),
        "state_dict": state,
        "family": getattr(model, "family", None),
        "params": getattr(model, "params", None),  # the resolved preset, so that later preset changes do not break loading
        "group": model.symmetry.group.name,
        "latent_shape": list(model.latent_shape),
    }


def save_checkpoint(path: str | os.PathLike, model: WorldModel, **extra: Any) -> Path:
    """Write a checkpoint atomically (temporary file, then rename); ``extra`` adds trainer state."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "versions": environment_versions(), **model_record(model), **extra}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict, with an error naming the file if it is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:  # weights_only: tensors and plain data only, so a crafted file cannot run code while loading
        with torch.serialization.safe_globals(_LEGACY_SAFE_GLOBALS):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), str(exc).splitlines()[0])
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects other than tensors, numbers, strings, lists and dicts "
            f"({detail}); symwm writes none, so the file was not written by symwm or was altered. Nothing in it was run."
        ) from None
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is not readable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or "state_dict" not in payload or "spec" not in payload:
        raise CheckpointError(f"{path} is not a symwm checkpoint (no model spec / state_dict)")
    _compare_versions(payload.get("versions"), path)
    if "spec_sha256" in payload and payload["spec_sha256"] != spec_digest(payload["spec"]):
        raise CheckpointError(f"checkpoint {path}: its model spec was edited after it was saved (digest mismatch); refusing to load")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload.get('format_version')}, this symwm reads {FORMAT_VERSION}"
        )
    return payload


#: recorded versions whose difference may change what a loaded model computes, and why
_VERSION_EFFECTS = {
    "escnn": "escnn's bases and initialisation may differ",
    "py3nj": "SO(3) Clebsch-Gordan coefficients can differ by sign with and without py3nj",
    "torch": "float kernels differ between builds",
    "symwm": "model code may differ",
}


def _compare_versions(saved: Any, path: Any) -> None:
    """Warn, naming each difference, where the checkpoint's recorded versions differ from this installation's."""
    if not isinstance(saved, dict):
        warnings.warn(f"checkpoint {path} records no versions; results may differ from the run that wrote it", stacklevel=3)
        return
    now = environment_versions()
    diffs = [f"{k} {saved.get(k)!r} -> {now[k]!r} ({why})" for k, why in _VERSION_EFFECTS.items() if str(saved.get(k)) != str(now[k])]
    if diffs:
        warnings.warn(f"checkpoint {path} was written with other versions: {'; '.join(diffs)}; results may differ", stacklevel=3)


def load_weights(model: WorldModel, payload: dict[str, Any], source: str = "checkpoint") -> None:
    """Load eval-mode weights into ``model``, naming any mismatch of spec, keys or shapes."""
    saved_spec = payload["spec"]
    try:  # compare in normal form: a spec saved before an optional field existed reads the same
        saved_spec = ModelSpec.from_dict(saved_spec).to_dict()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} has an invalid model spec: {exc}") from exc
    if saved_spec != model.spec.to_dict():
        diff = {
            k: (saved_spec.get(k), v) for k, v in model.spec.to_dict().items() if saved_spec.get(k) != v
        }
        raise CheckpointError(f"{source} was saved for a different model: (saved, this model) = {diff}")
    state = payload["state_dict"]
    was_training = model.training
    model.eval()
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: saved {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{source} does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, shape mismatches {shapes[:5]}"
        )
    model.load_state_dict(state, strict=True)
    model.train(was_training)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> WorldModel:
    """Rebuild a model from a checkpoint (fast: no escnn weight init) in eval mode."""
    payload = read_checkpoint(path)
    try:
        spec = ModelSpec.from_dict(payload["spec"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid model spec: {exc}") from exc
    model = rebuild(payload, spec, path)
    load_weights(model, payload, source=f"checkpoint {path}")
    return model.to(device).eval()


def rebuild(payload: dict[str, Any], spec: ModelSpec, path: Any) -> WorldModel:
    """The untrained model a checkpoint's weights load into: its family and recorded hyper-parameters, no escnn init.

    Checkpoints written before hyper-parameters were recorded (or of hand-built models) use the named preset.
    """
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise CheckpointError(f"checkpoint {path} has invalid recorded hyper-parameters (expected a dict, got {type(params).__name__})")
    try:
        return build_model(spec, initialize=False, family=payload.get("family"), params=params)
    except RecordedParamsError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
