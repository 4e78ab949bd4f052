"""World models for the rotating object (SO(3)): SEN to a rotation matrix, three transition models.

Every variant shares the same SEN and encoder:

* **SEN** ``S``: a plain CNN on the ``64 x 64`` grayscale image to two 3-vectors ``u, w``;
  Gram-Schmidt turns them into a rotation matrix ``R`` (columns ``e1 = u / |u|``,
  ``e2 = normalise(w - (e1.w) e1)``, ``e3 = e1 x e2``). V is the space of 3x3 matrices ``[B, 3, 3]``
  and ``g in SO(3)`` acts on it by left multiplication ``R -> g R``, like on the true orientation.
  With ``sen_output=sphere`` the head gives nine numbers scaled to norm ``sqrt(3)`` instead (any 3x3
  matrix on that sphere; the pose is the nearest rotation), and the transitions below add residuals
  to all three columns and rescale in place of Gram-Schmidt.
* **Encoder** ``E``: the identity, reshaped: ``z = R`` flattened row-major, ``[B, 1, 9]``.

The transitions differ (the paper's comparison):

* ``matmul``: ``z' = A(a) R`` with ``A(a)`` the action's rotation matrix (Rodrigues); no parameters,
  exactly equivariant, and exactly the environment's own dynamics when ``z`` is the true pose.
* ``ours``: an SO(3)-equivariant escnn network. The three columns of ``R`` and the action's rotation
  vector (divided by the largest action angle, so it has norm <= 1) are four frequency-1 fields;
  escnn ``Linear`` layers, escnn ``TensorProductModule`` and escnn ``GatedNonLinearity1`` produce two
  vectors added to the first two columns, then Gram-Schmidt. Equivariant to float precision.
  Rotating a vector needs cross products (Rodrigues: ``A c = c + sinc(t) v x c + ...``). Linear
  layers with norm or gated non-linearities commute with reflections too, so they can never form
  ``v x c`` (a pseudo-vector); ``FourierPointwise`` samples a grid and is only approximately
  equivariant; the tensor product (a learnable quadratic map) forms them exactly. Fitted directly
  to the true dynamics it reaches a mean squared error of 1e-5 where the ``none`` MLP of equal size
  stalls at 3e-3 (1000 Adam steps, continuous actions, cpu preset).
* ``none``: an MLP on ``[R (9), action (one-hot 6 or vector 3)]`` to six numbers added to the first
  two columns, then Gram-Schmidt. Not equivariant.

Why two output vectors, not three: Gram-Schmidt only reads the first two columns (the third is their
cross product, which keeps ``det R' = +1``), so a third output would be dead weight.
Gram-Schmidt commutes with rotations: ``GS(g u, g w) = g GS(u, w)``.

escnn's basis of the frequency-1 irrep of SO(3) is not ``(x, y, z)``: ``irrep(1)(g) = P g P^T``
with ``P`` a permutation (escnn's vector is ``(y, z, x)`` in escnn 1.0.11). :func:`escnn_vector_basis`
finds ``P`` numerically from escnn itself, so a change in escnn cannot silently break equivariance.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from escnn import group as egroup
from escnn import gspaces
from escnn import nn as enn
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from symwm.envs.groups import SO3, rotation_from_vector
from symwm.world_models.escnn_bridge import EscnnModule, PlainIO
from symwm.world_models.families import require_support
from symwm.world_models.model import LatentSymmetry, ModelSpec, WorldModel

NAME = "rotation"
VARIANTS = ("ours", "matmul", "none")

# SEN sizes: conv channels (each conv, kernel 4 stride 2, halves the resolution) and the hidden
# width of its MLP head; most SEN parameters sit in the head's first layer.
_SEN_PAPER = {"sen_channels": [32, 32, 64, 64], "sen_hidden": 256, "sen_output": "gram-schmidt"}
_SEN_CPU = {"sen_channels": [16, 32, 32], "sen_hidden": 128, "sen_output": "gram-schmidt"}

#: what the SEN's head ends in (``--set sen_output=...``): ``gram-schmidt`` (the release's: a rotation
#: matrix from two 3-vectors) or ``sphere`` (nine numbers scaled to a rotation's Frobenius norm
#: ``sqrt(3)``, a 3x3 matrix that need not be a rotation; its pose is the nearest rotation). With the
#: stabiliser negatives of training (``TrainConfig.stabiliser_negatives``) the sphere output learns
#: the whole pose where Gram-Schmidt keeps one body axis (benchmarks/results/tables/rotation_sen_output*.md).
SEN_OUTPUTS = ("gram-schmidt", "sphere")

#: hyper-parameters per size and variant. ``ours``: per block, ``fields`` copies of the 7-dim
#: representation (1 scalar + 2 vectors) squared by the tensor product, then ``gates`` gated vectors;
#: ``blocks`` blocks. ``none``: ``hidden`` width and ``layers`` hidden layers of the MLP. The two
#: learned transitions have about equal parameter counts at each size (the paper's protocol):
#: paper 70.2k (ours) vs 70.7k-71.4k (none), cpu 5.3k vs 5.4k-5.6k; SEN 379k (paper), 288k (cpu).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "ours": {**_SEN_PAPER, "fields": 64, "gates": 128, "blocks": 2},
        "matmul": dict(_SEN_PAPER),
        "none": {**_SEN_PAPER, "hidden": 256, "layers": 2},
    },
    "cpu": {
        "ours": {**_SEN_CPU, "fields": 16, "gates": 32, "blocks": 2},
        "matmul": dict(_SEN_CPU),
        "none": {**_SEN_CPU, "hidden": 64, "layers": 2},
    },
}

_EPS = 1e-8


# ------------------------------------------------------------------------------------------------
# Rotation helpers (torch)
# ------------------------------------------------------------------------------------------------


def gram_schmidt(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[B, 3, 3]`` whose columns are Gram-Schmidt of ``u, w`` ``[B, 3]`` and their cross product.

    Norms are clamped at 1e-8, so degenerate inputs (``u = 0`` or ``w`` parallel to ``u``) give
    finite values, not NaNs; their outputs are not rotations.
    """
    e1 = F.normalize(u, dim=-1, eps=_EPS)
    e2 = F.normalize(w - (e1 * w).sum(-1, keepdim=True) * e1, dim=-1, eps=_EPS)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)  # columns


def to_sphere(m: torch.Tensor) -> torch.Tensor:
    """Scale matrices ``[B, 3, 3]`` to the Frobenius norm of a rotation, ``sqrt(3)`` (commutes with rotations)."""
    return m * (3.0**0.5) / m.flatten(1).norm(dim=1).clamp(min=_EPS)[:, None, None]


def nearest_rotations(m: torch.Tensor) -> torch.Tensor:
    """The rotation (det +1) nearest to each matrix ``[B, 3, 3]`` in Frobenius norm: ``U diag(1, 1, det(U V^T)) V^T``.

    Torch twin of :func:`symwm.envs.groups.nearest_rotation` (batched); commutes with rotations on the left.
    """
    u, _, vh = torch.linalg.svd(m)
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    u = torch.cat([u[:, :, :2], u[:, :, 2:] * sign[:, None, None]], dim=2)
    return u @ vh


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices ``[B, 3, 3]`` of vectors ``[B, 3]``: ``skew(v) x = v x x``."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).view(*v.shape[:-1], 3, 3)


def rotation_matrices(v: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, batched and differentiable: rotation vectors ``[B, 3]`` -> ``[B, 3, 3]``."""
    theta2 = (v * v).sum(-1)[..., None, None]  # [B, 1, 1]
    small = theta2 < 1e-6
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    # sin(t)/t and (1 - cos t)/t^2, with their Taylor series near 0
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-6))
    k = skew(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def clip_rotation_vectors(v: torch.Tensor, max_angle: float) -> torch.Tensor:
    """Rescale rotation vectors ``[B, 3]`` longer than ``max_angle`` to that norm (as the environment)."""
    norm = v.norm(dim=-1, keepdim=True)
    return v * torch.clamp(max_angle / norm.clamp_min(1e-12), max=1.0)


@lru_cache(maxsize=None)
def escnn_vector_basis() -> np.ndarray:
    """The rotation ``P`` with ``escnn irrep(1)(g) = P g P^T`` for SO(3): escnn coordinates = ``P @ xyz``.

    Solved from escnn itself: ``D(g) P = P g`` for a few random ``g`` is a linear system whose
    solution space is one-dimensional (Schur); the solution is scaled to a rotation.
    """
    so3 = egroup.so3_group()
    psi1 = so3.irrep(1)
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(4):
        g = SO3().sample(rng)
        d = np.asarray(psi1(so3.element(g, "MAT")))
        # vec(D P - P g) = (I kron D - g^T kron I) vec(P), column-major vec
        rows.append(np.kron(np.eye(3), d) - np.kron(g.T, np.eye(3)))
    _, s, vt = np.linalg.svd(np.concatenate(rows))
    if s[-1] > 1e-8 or s[-2] < 1e-3:
        raise RuntimeError(
            f"escnn's frequency-1 irrep of SO(3) is not equivalent to the rotation matrices (singular values {s})"
        )
    p = vt[-1].reshape(3, 3, order="F")
    p = p / np.cbrt(np.linalg.det(p))  # det +1, orthogonal
    return p


# ------------------------------------------------------------------------------------------------
# SEN, encoder, symmetry
# ------------------------------------------------------------------------------------------------


class RotationSEN(nn.Module):
    """Plain CNN: images ``[B, C, H, W]`` -> 3x3 matrices ``[B, 3, 3]``: rotations (Gram-Schmidt) or points of the ``sqrt(3)`` sphere."""

    def __init__(self, in_channels: int, resolution: int, channels: list[int], hidden: int, output: str = "gram-schmidt"):
        super().__init__()
        if output not in SEN_OUTPUTS:
            raise ValueError(f"unknown sen_output {output!r}; known: {list(SEN_OUTPUTS)}")
        self.output = output
        layers: list[nn.Module] = []
        c, res = in_channels, resolution
        for out in channels:  # each conv halves the resolution
            layers += [nn.Conv2d(c, out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c, res = out, res // 2
        self.conv = nn.Sequential(*layers)
        width = 6 if output == "gram-schmidt" else 9
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * res * res, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.conv(x))  # [B, 6] or [B, 9]
        if self.output == "sphere":
            return to_sphere(out.view(-1, 3, 3))  # [B, 3, 3]
        return gram_schmidt(out[:, :3], out[:, 3:])  # [B, 3, 3]


class FlattenRotation(nn.Module):
    """The encoder: ``R`` ``[B, 3, 3]`` -> ``z`` ``[B, 1, 9]`` (row-major); trivially equivariant."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(v.shape[0], 1, 9)


class RotationLatentSymmetry(LatentSymmetry):
    """SO(3) acts on V (``[B, 3, 3]``) and on Z (``[B, 1, 9]``) by left multiplication ``R -> g R``."""

    has_pose = True
    has_stabiliser = True
    #: turns of a stabiliser element, radians: from a clearly different pose to the opposite one
    STABILISER_ANGLES = (np.pi / 4, np.pi)

    def __init__(self, sen_output: str = "gram-schmidt") -> None:
        self.group = SO3()
        self.sen_output = sen_output

    def pose(self, v: torch.Tensor) -> torch.Tensor:
        """The SEN's estimate of the pose ``[B, 3, 3]`` (up to a constant right factor): its rotation, or the nearest one to a sphere output."""
        return v if self.sen_output == "gram-schmidt" else nearest_rotations(v.double()).to(v.dtype)

    def stabiliser_elements(self, z: torch.Tensor, rng: np.random.Generator) -> list[np.ndarray]:
        """Per latent ``[B, 1, 9]``, a turn of 45-180 degrees (either sense) about the body axis the latent reports.

        A latent that carries one body axis ``u`` (``M = u c^T``, rank one) and not the pose is fixed
        by every turn about ``u``; pushing ``M(x')`` away from ``M(g x')`` asks it to carry the rest.
        The axis: the top left singular vector of ``M`` (sphere outputs), the first column of a
        Gram-Schmidt rotation (its best-learned axis; a rotation has no top singular vector).
        """
        m = z.detach().double().reshape(-1, 3, 3).cpu()
        axes = (m[:, :, 0] if self.sen_output == "gram-schmidt" else torch.linalg.svd(m)[0][:, :, 0]).numpy()  # [B, 3], unit
        angles = rng.uniform(*self.STABILISER_ANGLES, len(axes)) * rng.choice([-1.0, 1.0], len(axes))
        return [rotation_from_vector(u * a) for u, a in zip(axes, angles)]

    @staticmethod
    def _matrix(g: Any, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(g), dtype=like.dtype, device=like.device)

    def act_on_embedding(self, g: Any, v: torch.Tensor) -> torch.Tensor:
        """``g @ R`` for SEN outputs ``[B, 3, 3]``."""
        return self._matrix(g, v) @ v

    def act_on_latent(self, g: Any, z: torch.Tensor) -> torch.Tensor:
        """``g @ R`` for latents ``[B, 1, 9]``."""
        b = z.shape[0]
        return (self._matrix(g, z) @ z.reshape(b, 3, 3)).reshape(b, 1, 9)


# ------------------------------------------------------------------------------------------------
# Transitions
# ------------------------------------------------------------------------------------------------


class _RotationTransition(nn.Module):
    """Shared action handling: raw actions -> rotation vectors (``[B]`` indices or ``[B, 3]`` vectors).

    ``vectors`` ``[n, 3]``: the rotation vector of each of ``n`` discrete actions (the env's
    ``action_rotation_vectors``); ``None``: actions are rotation vectors, norm-clipped at ``max_angle``.
    """

    def __init__(self, vectors: np.ndarray | None, max_angle: float):
        super().__init__()
        self.actions = "continuous" if vectors is None else "discrete"
        self.max_angle = float(max_angle)
        if vectors is None:
            self.register_buffer("small_vectors", torch.zeros(0, 3), persistent=False)
            self._register_load_state_dict_pre_hook(_drop_unused_vectors)
        else:
            vec = torch.as_tensor(np.asarray(vectors, dtype=np.float64), dtype=torch.float32)
            if vec.dim() != 2 or vec.shape[1] != 3 or vec.shape[0] < 1 or not bool((vec.norm(dim=1) > 0).all()):
                raise ValueError(f"action rotation vectors must be a non-zero [n, 3] array, got shape {tuple(vec.shape)}")
            self.register_buffer("small_vectors", vec)  # [n, 3]

    @property
    def n_actions(self) -> int | None:
        """The number of discrete actions (None for continuous rotation vectors)."""
        return None if self.actions == "continuous" else int(self.small_vectors.shape[0])

    def rotation_vectors(self, actions: torch.Tensor) -> torch.Tensor:
        """The action's rotation vector ``[B, 3]`` (continuous ones norm-clipped like the environment)."""
        if self.actions == "discrete":
            return self.small_vectors[actions.long()]
        return clip_rotation_vectors(actions.to(self.small_vectors.dtype), self.max_angle)  # the module's dtype

    @property
    def action_scale(self) -> float:
        """The largest rotation angle of an action (to feed networks unit-scale vectors)."""
        return float(self.small_vectors.norm(dim=1).max()) if self.actions == "discrete" else self.max_angle


def _add_columns(rot: torch.Tensor, delta: torch.Tensor, output: str) -> torch.Tensor:
    """``rot`` ``[B, 3, 3]`` plus residual columns ``delta`` ``[B, k, 3]``, back onto the SEN's output set: ``[B, 1, 9]``.

    ``gram-schmidt``: two residual columns, then Gram-Schmidt (a rotation); ``sphere``: three, then
    scaled to norm ``sqrt(3)``. Both commute with rotations, so an equivariant ``delta`` stays equivariant.
    """
    b = rot.shape[0]
    if output == "sphere":
        return to_sphere(rot + delta.transpose(1, 2)).reshape(b, 1, 9)
    return gram_schmidt(rot[:, :, 0] + delta[:, 0], rot[:, :, 1] + delta[:, 1]).reshape(b, 1, 9)


def _drop_unused_vectors(state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Checkpoints saved before continuous transitions stopped storing the discrete actions' vectors load as before."""
    state_dict.pop(prefix + "small_vectors", None)


class MatMulTransition(_RotationTransition):
    """``z' = A(a) R``: exact rotation of the latent pose by the action; no parameters."""

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        rot = rotation_matrices(self.rotation_vectors(actions).to(z.dtype))  # [B, 3, 3]
        return (rot @ z.reshape(b, 3, 3)).reshape(b, 1, 9)


class MLPTransition(_RotationTransition):
    """Non-equivariant: MLP on ``[R, action]`` -> residual on the columns -> back onto the SEN's outputs (:func:`_add_columns`)."""

    def __init__(self, vectors: np.ndarray | None, max_angle: float, hidden: int, layers: int, output: str = "gram-schmidt"):
        super().__init__(vectors, max_angle)
        self.output = output
        width = 9 + (self.n_actions or 3)
        mods: list[nn.Module] = []
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        mods.append(nn.Linear(width, 9 if output == "sphere" else 6))
        self.mlp = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        if self.n_actions is not None:
            a = F.one_hot(actions.long(), self.n_actions).to(z.dtype)  # [B, n]
        else:
            a = self.rotation_vectors(actions).to(z.dtype) / self.action_scale  # [B, 3]
        delta = self.mlp(torch.cat([z.reshape(b, 9), a], dim=-1))  # [B, 6 or 9]
        return _add_columns(z.reshape(b, 3, 3), delta.view(b, -1, 3), self.output)


def _square_fields(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Per field ``c``: ``x_c -> M_c (x_c kron x_c)``; ``x`` ``[B, C d_in]``, ``matrix`` ``[C, d_out, d_in^2]``."""
    b, c = x.shape[0], matrix.shape[0]
    x = x.reshape(b, c, -1)  # [B, C, d_in]
    outer = torch.einsum("bci,bco->bcio", x, x).reshape(b, c, -1)  # [B, C, d_in^2]
    return torch.einsum("coh,bch->bco", matrix, outer).reshape(b, -1)  # [B, C d_out]


class _TensorProduct(nn.Module):
    """escnn ``TensorProductModule`` (basis, weights, init, eval-mode cache) on plain tensors, exportable.

    The forward is ours: escnn 1.0.11's ``TensorProductModule.forward`` calls ``.view`` on a
    non-contiguous einsum result and fails for batches larger than one under torch 2.x. The
    computation is the same (checked against escnn's forward one sample at a time in the tests).
    """

    def __init__(self, net: enn.TensorProductModule):
        super().__init__()
        self.net = net
        self.fields = len(net.in_type)
        self.d_in, self.d_out = net.in_type.representations[0].size, net.out_type.representations[0].size

    def matrix(self) -> torch.Tensor:
        """The expanded projection ``[C, d_out, d_in^2]`` (cached by escnn in eval mode)."""
        m = self.net.expand_parameters() if self.training else self.net.matrix
        return m.view(self.fields, self.d_out, self.d_in * self.d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _square_fields(x, self.matrix())

    def export(self) -> nn.Module:
        """The plain-torch twin (eval mode)."""
        self.eval()
        return _PlainTensorProduct(self.matrix().detach().clone()).eval()


class _PlainTensorProduct(nn.Module):
    """Plain-torch twin of :class:`_TensorProduct` with a fixed projection ``[C, d_out, d_in^2]``."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        self.register_buffer("matrix", matrix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _square_fields(x, self.matrix)


class _GateIO(PlainIO):
    """escnn ``GatedNonLinearity1`` (gates first, then 3-dim gated fields) on plain tensors, exportable."""

    def export(self) -> nn.Module:
        return _PlainGate(self.net.bias.detach().clone().view(-1))


class _PlainGate(nn.Module):
    """Plain-torch twin of the gate: ``x = [gates (G), vectors (G x 3)] -> sigmoid(gate - bias) * vector``."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("bias", bias)  # [G]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.bias.shape[0]
        gates = torch.sigmoid(x[:, :g] - self.bias)  # [B, G]
        return (x[:, g:].view(-1, g, 3) * gates[:, :, None]).reshape(x.shape[0], -1)


class _VectorNet(EscnnModule):
    """The equivariant core: ``n_in`` vectors (escnn basis, ``[B, 3 n_in]``) -> ``n_out`` vectors.

    Each block: ``Linear([hidden, input] -> fields x (scalar + 2 vectors))``, tensor product
    (squares each field, learnable projection back), ``Linear -> gates x scalar + gates x vector``,
    gate. The output ``Linear`` reads the last hidden vectors and the input (skip connection).
    Layers are plain-tensor modules, so :meth:`export` swaps each for its plain-torch twin and the
    forward stays the same.
    """

    def __init__(self, n_in: int, n_out: int, fields: int, gates: int, blocks: int, initialize: bool = True):
        super().__init__()
        so3 = egroup.so3_group()
        gs = gspaces.no_base_space(so3)
        psi0, psi1 = so3.irrep(0), so3.irrep(1)
        rho = egroup.directsum([psi0, psi1, psi1], name="scalar+2vectors")
        x_type = gs.type(*[psi1] * n_in)
        tp_type = gs.type(*[rho] * fields)
        gate_type = gs.type(*[psi0] * gates, *[psi1] * gates)
        hidden_type = gs.type(*[psi1] * gates)

        self.linears_in, self.products, self.linears_gate, self.gates = (nn.ModuleList() for _ in range(4))
        prev = None
        for _ in range(blocks):
            in_type = x_type if prev is None else prev + x_type
            self.linears_in.append(PlainIO(enn.Linear(in_type, tp_type, initialize=initialize)))
            self.products.append(_TensorProduct(enn.TensorProductModule(tp_type, tp_type, initialize=initialize)))
            self.linears_gate.append(PlainIO(enn.Linear(tp_type, gate_type, initialize=initialize)))
            self.gates.append(_GateIO(enn.GatedNonLinearity1(gate_type)))
            prev = hidden_type
        out_in = x_type if prev is None else prev + x_type
        self.out = PlainIO(enn.Linear(out_in, gs.type(*[psi1] * n_out), initialize=initialize))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = None  # x: [B, 3 n_in]
        for lin_in, product, lin_gate, gate in zip(self.linears_in, self.products, self.linears_gate, self.gates):
            h = gate(lin_gate(product(lin_in(x if h is None else torch.cat([h, x], dim=-1)))))  # [B, 3 gates]
        return self.out(x if h is None else torch.cat([h, x], dim=-1))  # [B, 3 n_out]

    def export(self) -> "_VectorNet":
        """A copy with every layer exported to plain torch (eval mode); same forward."""
        self.eval()
        out = copy.deepcopy(self)
        for name in ("linears_in", "products", "linears_gate", "gates"):
            setattr(out, name, nn.ModuleList(layer.export() for layer in getattr(out, name)))
        out.out = out.out.export()
        return out.eval()


class EquivariantTransition(_RotationTransition):
    """SO(3)-equivariant: escnn net on (columns of R, action vector) -> residual columns -> back onto the SEN's outputs."""

    def __init__(self, vectors: np.ndarray | None, max_angle: float, fields: int, gates: int, blocks: int, initialize: bool = True,
                 output: str = "gram-schmidt"):
        super().__init__(vectors, max_angle)
        self.output = output
        self.register_buffer("basis", torch.tensor(escnn_vector_basis(), dtype=torch.float32))  # P: escnn = P @ xyz
        self.net = _VectorNet(4, 3 if output == "sphere" else 2, fields, gates, blocks, initialize=initialize)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        rot = z.reshape(b, 3, 3)
        v = self.rotation_vectors(actions).to(z.dtype) / self.action_scale  # [B, 3]
        vectors = torch.cat([rot.transpose(1, 2), v[:, None, :]], dim=1)  # [B, 4, 3]: 3 columns + action
        basis = self.basis.to(z.dtype)
        delta = self.net((vectors @ basis.T).reshape(b, 12))  # escnn basis, [B, 3 k]
        delta = delta.view(b, -1, 3) @ basis  # back to xyz, [B, k, 3]
        return _add_columns(rot, delta, self.output)

    def export(self) -> "EquivariantTransition":
        """A copy computing the same function in plain torch (no escnn modules), eval mode."""
        self.eval()
        out = copy.deepcopy(self)
        out.net = out.net.export()
        return out.eval()


# ------------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------------


def supports(env: Any) -> str | None:
    """``None`` if this family models ``env``, else why not: SO(3) poses with rotation actions, square images.

    The SO(3) action contract: ``Discrete(n)`` actions declare ``env.action_rotation_vectors``, the
    rotation vector (axis times angle, radians) of each action, ``[n, 3]``; ``Box(3)`` actions are
    rotation vectors, norm-clipped at ``env.max_angle`` (radians). Optional: ``env.pose_key``, the
    state key of the 3x3 pose on which SO(3) acts by left multiplication; with it, evaluation and
    validation report the SEN's pose error and evaluation can render hard negatives.
    """
    sym = getattr(env, "symmetry", None)
    if getattr(getattr(sym, "group", None), "name", None) != "SO(3)":
        return "needs the group SO(3)"
    space = env.action_space
    if isinstance(space, spaces.Discrete):
        vectors = getattr(env, "action_rotation_vectors", None)
        if vectors is None or np.shape(vectors) != (int(space.n), 3):
            return f"needs env.action_rotation_vectors, the rotation vector of each of its {int(space.n)} actions ([n, 3])"
    elif isinstance(space, spaces.Box) and space.shape == (3,):
        if not isinstance(getattr(env, "max_angle", None), float):
            return "needs env.max_angle (radians), the largest rotation of its rotation-vector actions"
    else:
        return f"needs Discrete actions or Box(3) rotation vectors, got {space}"
    shape = env.observation_space.shape
    if shape is None or len(shape) != 3 or shape[0] != shape[1]:
        return f"needs square image observations [H, W, C], got shape {shape}"
    return None


def build(spec: ModelSpec, env: Any, params: dict[str, Any], initialize: bool = True) -> WorldModel:
    """A world model for an SO(3) environment (``env`` unwrapped; see :func:`supports`); ``initialize=False`` skips escnn init."""
    require_support(NAME, supports, env, spec.env_id)
    if spec.variant not in VARIANTS:
        raise ValueError(f"unknown variant {spec.variant!r} for {spec.env_id}; known: {list(VARIANTS)}")
    h, w, c = env.observation_space.shape
    if h != w:
        raise ValueError(f"expected square observations, got {env.observation_space.shape}")
    output = str(params.get("sen_output", "gram-schmidt"))
    sen = RotationSEN(c, h, list(params["sen_channels"]), int(params["sen_hidden"]), output)
    vectors = env.action_rotation_vectors if isinstance(env.action_space, spaces.Discrete) else None
    max_angle = env.max_angle if vectors is None else 0.0  # supports() checked it for Box(3) actions
    if spec.variant == "matmul":
        transition: nn.Module = MatMulTransition(vectors, max_angle)
    elif spec.variant == "none":
        transition = MLPTransition(vectors, max_angle, int(params["hidden"]), int(params["layers"]), output)
    else:
        fields, gates, blocks = int(params["fields"]), int(params["gates"]), int(params["blocks"])
        transition = EquivariantTransition(vectors, max_angle, fields, gates, blocks, initialize=initialize, output=output)
    return WorldModel(spec, sen, FlattenRotation(), transition, RotationLatentSymmetry(output), latent_shape=(1, 9))
