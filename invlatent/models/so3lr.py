r"""SO3LR adapter: a pretrained potential built *without* e3nn, as a latent source.

SO3LR (Kabylda et al., 2025) is an SO3krates transformer (Frank, Unke, Müller & Chmiela, Nat.
Commun. 2024) for organic molecules with long-range terms. Its PyTorch port ``so3krates-torch``
ships the pretrained weights inside its wheel (``pretrained/so3lr/so3lr.model``), so everything
here runs offline. Each of its three Euclidean transformer layers outputs, per atom,

.. math::

    h_i \in \mathbb R^{128}, \qquad
    \chi_i = (\chi_i^{(1)}, \dots, \chi_i^{(4)}) \in \mathbb R^{3 + 5 + 7 + 9},

the invariant features :math:`h_i` and the Euclidean features :math:`\chi_i`, one copy of each
degree :math:`l = 1..4`, built from so3krates' own real spherical harmonics of the edge
directions (order :math:`m = -l..l` about the :math:`z` axis). The labels this module gives them
are those a user reading "spherical harmonics of degrees 1..4" would write:
``128x0e`` and ``1x1o+1x2e+1x3o+1x4e`` (parity :math:`(-1)^l`). They are **labels, not a
guarantee**: so3krates' basis is not e3nn's (e3nn orders :math:`l = 1` as :math:`(x, y, z)` and
takes :math:`y` as the polar axis of its harmonics), so :class:`~invlatent.groups.SO3` applied
to these features with these labels is wrong. :func:`invlatent.fit_basis` on
:func:`rotation_pairs`-style data finds the per-degree change of basis :math:`Q_l` with

.. math::

    \chi^{(l)}(g\,x) = (\det g)^l\, Q_l\, D^l(g)\, Q_l^\top\, \chi^{(l)}(x),

and :meth:`~invlatent.BasisFit.to_e3nn` maps the features into e3nn's basis, where
``O3(fit.irreps)`` acts correctly.

The input is a plain dict of tensors (:func:`so3lr_batch`): no PyG needed. The model's own
forward computes forces through autograd; :func:`node_features` captures the layers with hooks
on ``euclidean_transformers[i]`` (whose output is the tuple ``(h, chi)``) and stops the forward
pass after the last requested one, so no energy, force or long-range term is ever computed.

``so3krates-torch`` is optional (``pip install 'invlatent[so3lr]'``); ``import invlatent`` never
imports it, and each function here imports it only when called.

Example
-------
>>> import torch
>>> from invlatent.models.so3lr import load_so3lr, node_features
>>> model = load_so3lr()                                                  # doctest: +SKIP
>>> pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]])  # water (Å)
>>> f = node_features(model, pos, torch.tensor([[8, 1, 1]]))              # doctest: +SKIP
>>> f.inv["euclidean_transformers.2"].shape, f.ev["euclidean_transformers.2"].shape  # doctest: +SKIP
(torch.Size([1, 3, 128]), torch.Size([1, 3, 24]))
>>> str(f.inv_irreps), str(f.ev_irreps)                                   # doctest: +SKIP
('128x0e', '1x1o+1x2e+1x3o+1x4e')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .._extras import require
from .._validation import check_mask, check_positive_int, check_tensor, describe
from ._layers import check_layer_names

__all__ = [
    "EXTRA",
    "load_so3lr",
    "so3lr_batch",
    "so3lr_forward",
    "transformer_layers",
    "layer_irreps",
    "select_inv",
    "select_ev",
    "SO3LRFeatures",
    "node_features",
]

#: The optional extra that provides ``so3krates_torch`` (``pip install 'invlatent[so3lr]'``).
EXTRA = "so3lr"
#: Elements the model embeds: one-hot over atomic numbers 1..118 (so3krates' ``z_table``).
_NUM_ELEMENTS = 118


def _require(what: str) -> None:
    require(EXTRA, what)  # the modules of invlatent._extras.EXTRAS["so3lr"]


def load_so3lr(device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load the pretrained SO3LR model shipped inside the ``so3krates-torch`` wheel, offline.

    The same file ``SO3LRCalculator(device=...)`` loads, without the ASE calculator around it
    (which would also change torch's default dtype for the whole process).

    Parameters
    ----------
    device : str or torch.device

    Returns
    -------
    torch.nn.Module
        so3krates' ``SO3LR`` in eval mode, float32, parameters frozen (``requires_grad=False``).
        ``model.euclidean_transformers`` holds the three layers (:func:`transformer_layers`).

    Raises
    ------
    ImportError
        One line naming the ``so3lr`` extra when ``so3krates-torch`` is missing.

    Example
    -------
    >>> model = load_so3lr()                                              # doctest: +SKIP
    >>> model.degrees, model.num_features, model.r_max                   # doctest: +SKIP
    ([1, 2, 3, 4], 128, 4.5)
    """
    _require("load_so3lr")
    import importlib.resources as resources
    import warnings

    ref = resources.files("so3krates_torch.pretrained.so3lr").joinpath("so3lr.model")
    with resources.as_file(ref) as path, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # the wheel's own pickled module (trusted package data): weights_only cannot load it.
        # Loaded on the CPU, then moved (as SevenNet's loader does).
        model = torch.load(path, map_location="cpu", weights_only=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()


def so3lr_batch(pos: torch.Tensor, numbers: torch.Tensor, mask: torch.Tensor | None = None, *,
                cutoff: float = 4.5, cutoff_lr: float = 12.0, charge: torch.Tensor | None = None,
                spin: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    r"""SO3LR's input for a batch of padded molecules: a dict of tensors, no periodic cell.

    Atoms ``i, j`` of one molecule are neighbours (both directions) when
    :math:`\lVert r_i - r_j\rVert \le` ``cutoff`` (and, for the long-range graph, ``cutoff_lr``).
    The model computes its edge vectors from ``positions`` itself, so rotating the input means
    rotating ``positions`` only (``RotatePositions(key="positions")``).

    Parameters
    ----------
    pos : Tensor, shape ``(B, n, 3)``
        Coordinates in Å (float32 is what the model computes in).
    numbers : LongTensor, shape ``(B, n)``
        Atomic numbers (1..118); ignored in padding.
    mask : BoolTensor, shape ``(B, n)``, optional
        True for real atoms (all by default). Atoms are taken in slot order.
    cutoff, cutoff_lr : float
        Short- and long-range neighbour radii (Å); SO3LR was trained with 4.5 and 12.
    charge, spin : Tensor, shape ``(B,)``, optional
        Total charge and total spin of each molecule (0 by default: neutral closed shells, as
        in QM9).

    Returns
    -------
    dict of str to Tensor
        ``positions (N, 3)``, ``node_attrs (N, 118)`` (one-hot), ``atomic_numbers (N,)``,
        ``batch (N,)``, ``ptr (B+1,)``, ``edge_index (2, E)``, ``shifts``/``unit_shifts (E, 3)``,
        ``edge_index_lr (2, E_lr)``, ``shifts_lr``/``unit_shifts_lr (E_lr, 3)``,
        ``cell (3B, 3)``, ``head (B,)``, ``total_charge (B,)``, ``total_spin (B,)``, with
        ``N = mask.sum()``; floats in ``pos.dtype``.

    Example
    -------
    >>> pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]])
    >>> d = so3lr_batch(pos, torch.tensor([[8, 1, 1]]))
    >>> d["edge_index"].shape, d["node_attrs"].shape, d["ptr"].tolist()
    (torch.Size([2, 6]), torch.Size([3, 118]), [0, 3])
    """
    from .._graphs import radius_graph_dense

    check_tensor(pos, "pos", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    if not isinstance(numbers, torch.Tensor) or numbers.dtype != torch.long:
        raise TypeError(f"numbers must be a LongTensor of shape (B, n), got {describe(numbers)}")
    if numbers.shape != pos.shape[:2]:
        raise ValueError(f"numbers must have shape (B, n) = {tuple(pos.shape[:2])}, got {tuple(numbers.shape)}")
    if mask is None:
        mask = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device)
    check_mask(mask, pos, z_name="pos")
    for name, r in (("cutoff", cutoff), ("cutoff_lr", cutoff_lr)):
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not r > 0:
            raise ValueError(f"{name} must be a positive number (Å), got {describe(r)}")
    z = numbers[mask]
    if bool(((z < 1) | (z > _NUM_ELEMENTS)).any()):
        raise ValueError(f"numbers must hold atomic numbers 1..{_NUM_ELEMENTS} for every real atom")
    B = pos.shape[0]
    totals = {}
    for name, t in (("charge", charge), ("spin", spin)):
        if t is None:
            t = torch.zeros(B, dtype=pos.dtype, device=pos.device)
        check_tensor(t, name, ndim=1, shape=(B,), expected=f"(B,) = ({B},)")
        totals[name] = t.to(dtype=pos.dtype, device=pos.device)
    pos_flat, edge_index = radius_graph_dense(pos, mask, float(cutoff))
    _, edge_index_lr = radius_graph_dense(pos, mask, float(cutoff_lr))
    counts = mask.sum(1)
    batch = torch.repeat_interleave(torch.arange(B, device=pos.device), counts)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    node_attrs = torch.nn.functional.one_hot(z - 1, _NUM_ELEMENTS).to(pos.dtype)
    zeros = pos.new_zeros(edge_index.shape[1], 3)
    zeros_lr = pos.new_zeros(edge_index_lr.shape[1], 3)
    return {
        "positions": pos_flat, "node_attrs": node_attrs, "atomic_numbers": z, "batch": batch, "ptr": ptr,
        "edge_index": edge_index, "shifts": zeros, "unit_shifts": zeros.clone(),
        "edge_index_lr": edge_index_lr, "shifts_lr": zeros_lr, "unit_shifts_lr": zeros_lr.clone(),
        "cell": pos.new_zeros(3 * B, 3), "head": torch.zeros(B, dtype=torch.long, device=pos.device),
        "total_charge": totals["charge"], "total_spin": totals["spin"],
    }


def so3lr_forward(model: torch.nn.Module, data: dict) -> object:
    """Run SO3LR on a :func:`so3lr_batch` dict without forces (the ``forward`` argument of
    :func:`~invlatent.equivariance_audit` and :func:`~invlatent.rotation_pairs`).

    The dict is shallow-copied first (the model writes into its input), and the per-call state
    the model keeps on its modules (graph, edge vectors, ...) is removed afterwards, also when
    a capture stops the pass: the model can then be deep-copied (as the audit does to cast it)
    and holds no tensors of the last batch."""
    before = {id(m): set(vars(m)) for m in model.modules()}
    try:
        return model(dict(data), compute_force=False, compute_stress=False)
    finally:
        for m in model.modules():
            for key in set(vars(m)) - before.get(id(m), set()):
                if key not in ("_parameters", "_buffers", "_modules"):
                    delattr(m, key)


def transformer_layers(model: torch.nn.Module) -> list[str]:
    """Names of the Euclidean transformer layers, in forward order
    (``['euclidean_transformers.0', 'euclidean_transformers.1', 'euclidean_transformers.2']``).

    Each one's output is the tuple ``(h, chi)``: read it with ``select=select_inv`` or
    ``select=select_ev``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {describe(model)}")
    layers = getattr(model, "euclidean_transformers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise ValueError("model has no euclidean_transformers: is it an SO3LR/SO3krates model (load_so3lr)?")
    return [f"euclidean_transformers.{i}" for i in range(len(layers))]


def select_inv(output) -> torch.Tensor:
    """The invariant features ``h`` ``(N, 128)`` of a transformer layer's output ``(h, chi)``."""
    return output[0]


def select_ev(output) -> torch.Tensor:
    """The Euclidean features ``chi`` ``(N, 24)`` of a transformer layer's output ``(h, chi)``."""
    return output[1]


def layer_irreps(model: torch.nn.Module):
    """The labels of a layer's features: ``(Irreps("128x0e"), Irreps("1x1o+1x2e+1x3o+1x4e"))``.

    Read from the model (``num_features``, ``degrees``); every layer has the same. The Euclidean
    labels are the parities of spherical harmonics, :math:`(-1)^l`; the basis is so3krates'
    own (see the module docstring): fit it with :func:`invlatent.fit_basis`.
    """
    from e3nn import o3

    transformer_layers(model)
    degrees = list(getattr(model, "degrees"))
    inv = o3.Irreps(f"{int(model.num_features)}x0e")
    ev = o3.Irreps("+".join(f"1x{l}{'o' if l % 2 else 'e'}" for l in degrees))
    return inv, ev


@dataclass
class SO3LRFeatures:
    """Dense per-atom features of some SO3LR layers (zero in padding).

    ``inv[layer]`` ``(B, n, 128)`` and ``ev[layer]`` ``(B, n, 24)`` float32, ``mask`` ``(B, n)``
    True for real atoms, ``inv_irreps``/``ev_irreps`` their labels (:func:`layer_irreps`)."""

    inv: dict[str, torch.Tensor]
    ev: dict[str, torch.Tensor]
    mask: torch.Tensor
    inv_irreps: object
    ev_irreps: object


def node_features(model: torch.nn.Module, pos: torch.Tensor, numbers: torch.Tensor,
                  mask: torch.Tensor | None = None, *, layers: str | Sequence[str] | None = None,
                  batch_size: int = 256, device=None) -> SO3LRFeatures:
    r"""Invariant and Euclidean features of SO3LR's transformer layers for padded molecules.

    Molecules go through the model ``batch_size`` at a time (:func:`so3lr_batch`, then forward
    hooks on ``euclidean_transformers[i]`` with ``stop=True``: the pass ends after the last
    requested layer, so the energy, force and long-range heads never run). Each layer's flat
    ``(N, 128)`` and ``(N, 24)`` outputs are scattered back to the input's slots.

    Parameters
    ----------
    model : SO3LR model (:func:`load_so3lr`)
    pos : Tensor, shape ``(B, n, 3)``
        Coordinates (Å).
    numbers : LongTensor, shape ``(B, n)``
        Atomic numbers.
    mask : BoolTensor, shape ``(B, n)``, optional
        Real atoms (all by default).
    layers : str or sequence of str, optional
        Names from :func:`transformer_layers` (all three by default).
    batch_size : int
        Molecules per forward pass.
    device : optional
        Where the model runs (the model's device by default); results are kept on the CPU.

    Returns
    -------
    SO3LRFeatures
        ``inv[layer]`` ``(B, n, 128)``, ``ev[layer]`` ``(B, n, 24)``, ``mask``, and the labels.

    Example
    -------
    >>> model = load_so3lr()                                              # doctest: +SKIP
    >>> pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]])
    >>> f = node_features(model, pos, torch.tensor([[8, 1, 1]]), layers="euclidean_transformers.0")  # doctest: +SKIP
    >>> list(f.inv), tuple(f.ev["euclidean_transformers.0"].shape)        # doctest: +SKIP
    (['euclidean_transformers.0'], (1, 3, 24))
    """
    from ..utils import progress

    layers = check_layer_names(layers, transformer_layers(model), "transformer_layers(model)")
    check_tensor(pos, "pos", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    if not isinstance(numbers, torch.Tensor) or numbers.dtype != torch.long:
        raise TypeError(f"numbers must be a LongTensor of shape (B, n), got {describe(numbers)}")
    if numbers.shape != pos.shape[:2]:
        raise ValueError(f"numbers must have shape (B, n) = {tuple(pos.shape[:2])}, got {tuple(numbers.shape)}")
    if mask is None:
        mask = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device)
    check_mask(mask, pos, z_name="pos")
    check_positive_int(batch_size, "batch_size")
    if device is None:
        device = next(model.parameters()).device
    cutoff = float(getattr(model, "r_max", 4.5))
    inv_ir, ev_ir = layer_irreps(model)
    kept_inv: dict[str, list] = {n: [] for n in layers}
    kept_ev: dict[str, list] = {n: [] for n in layers}
    B = pos.shape[0]
    starts = range(0, B, batch_size)
    for s in progress(starts, total=len(starts), desc="SO3LR layers", unit="batch"):
        rows = slice(s, min(s + batch_size, B))
        m = mask[rows].to(device)
        data = so3lr_batch(pos[rows].to(device=device, dtype=torch.float32), numbers[rows].to(device), m,
                           cutoff=cutoff)
        out = _capture(model, layers, data)
        for n in layers:
            x = out[n].float()
            z = x.new_zeros(m.shape + (x.shape[-1],))
            z[m] = x
            z = z.cpu()
            kept_inv[n].append(z[..., :inv_ir.dim])
            kept_ev[n].append(z[..., inv_ir.dim:])
    return SO3LRFeatures(inv={n: torch.cat(v) for n, v in kept_inv.items()},
                         ev={n: torch.cat(v) for n, v in kept_ev.items()}, mask=mask.cpu(),
                         inv_irreps=inv_ir, ev_irreps=ev_ir)


def _capture(model, layers, data) -> dict[str, torch.Tensor]:
    """``{layer: cat(h, chi) (N, 152)}`` captured with hooks, the forward pass stopped after the
    last layer (no forces)."""
    from ..audit import LatentCapture

    with LatentCapture(model, layers, select=lambda o: torch.cat([o[0], o[1]], dim=-1), stop=True) as cap:
        so3lr_forward(model, data)
    return cap.latents
