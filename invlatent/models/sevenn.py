r"""SevenNet adapter: a pretrained third-party interatomic potential as a latent source.

SevenNet-0 (Park et al., J. Chem. Theory Comput. 2024) is an e3nn message-passing potential of the NequIP family
(Batzner et al., Nat. Commun. 2022), trained on the Materials Project trajectories. Its weights ship
inside the ``sevenn`` wheel, so everything here runs offline. This module is the only
SevenNet-specific code in ``invlatent``: it loads the model, builds its batched input from
padded point clouds, names its interaction blocks and turns their node features into the
set-of-irreps latents the rest of the library reads,

.. math::

    z \in \mathbb R^{B \times n_\max \times d}, \qquad
    \text{mask} \in \{0, 1\}^{B \times n_\max}, \qquad
    (\sigma, R)\cdot z_{b,i} = D(R)\, z_{b,\sigma^{-1}(i)} ,

one row of ``d = irreps.dim`` numbers per atom (``128x0e+64x1e+32x2e`` after the first four
blocks of SevenNet-0, ``128x0e`` after the last). :func:`node_features` returns them for every
molecule; :func:`stream_node_features` projects each batch as it comes and keeps the raw
features of a subsample only, for data sets whose features do not fit in memory.

``sevenn`` is optional (``pip install 'invlatent[models]'``); ``import invlatent`` never
imports it, and each function here imports it only when called.

Example
-------
>>> import torch
>>> from invlatent.models.sevenn import interaction_layers, load_sevenn, node_features
>>> model = load_sevenn("7net-0")                                      # doctest: +SKIP
>>> interaction_layers(model)[:2]                                      # doctest: +SKIP
['0_equivariant_gate', '1_equivariant_gate']
>>> pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]])  # water (Å)
>>> numbers = torch.tensor([[8, 1, 1]])
>>> feats = node_features(model, pos, numbers, layers="3_equivariant_gate")  # doctest: +SKIP
>>> feats.z["3_equivariant_gate"].shape, str(feats.irreps["3_equivariant_gate"])  # doctest: +SKIP
(torch.Size([1, 3, 480]), '128x0e+64x1e+32x2e')
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from .._extras import needs
from .._validation import check_mask, check_positive_int, check_tensor, describe
from ._layers import check_layer_names

__all__ = [
    "SHIPPED_MODELS",
    "NodeFeatures",
    "load_sevenn",
    "sevenn_batch",
    "interaction_layers",
    "layer_irreps",
    "node_features",
    "StreamedNodeFeatures",
    "stream_node_features",
]

_INSTALL = "invlatent.models.sevenn needs the 'models' extra: pip install 'invlatent[models]'"

#: Pretrained SevenNet models whose weights ship inside the ``sevenn`` wheel (name -> file
#: under ``sevenn/pretrained_potentials``). Only these load by name: other names would make
#: ``sevenn`` download weights, and this module never touches the network.
SHIPPED_MODELS: dict[str, str] = {
    "7net-0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "7net-0_22may2024": "SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
    "7net-l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
    "7net-mf-0": "SevenNet_MF_0/checkpoint_sevennet_mf_0.pth",  # multi-fidelity: load with modal=
}


def _require_sevenn():
    if importlib.util.find_spec("sevenn") is None:
        raise ImportError(_INSTALL)
    import sevenn.util

    return sevenn


def _checkpoint_path(name: str) -> str:
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a model name or a checkpoint path, got {describe(name)}")
    if os.path.isfile(name):
        return os.fspath(name)
    key = str(name).lower()
    if key not in SHIPPED_MODELS:
        raise ValueError(f"name must be a checkpoint file or one of {sorted(SHIPPED_MODELS)} (shipped in "
                         f"the sevenn wheel; others would be downloaded), got {name!r}")
    sevenn = _require_sevenn()
    path = os.path.join(os.path.dirname(sevenn.__file__), "pretrained_potentials", SHIPPED_MODELS[key])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the sevenn package has no {SHIPPED_MODELS[key]!r}; reinstall it: {_INSTALL}")
    return path


def load_sevenn(name: str | os.PathLike = "7net-0", device: str | torch.device = "cpu", *,
                modal: str | None = None) -> torch.nn.Module:
    """Load a pretrained SevenNet model, offline, ready for batched inference.

    Parameters
    ----------
    name : str or path
        A key of :data:`SHIPPED_MODELS` (``"7net-0"`` by default) or a SevenNet checkpoint file.
    device : str or torch.device
    modal : str, optional
        The fidelity of a multi-fidelity model (``"7net-mf-0"``: ``"PBE"`` or ``"R2SCAN"``),
        required for those (as SevenNet's own calculator requires it) and refused for others;
        every batch :func:`node_features` runs is then evaluated at that fidelity.

    Returns
    -------
    torch.nn.Module
        SevenNet's ``AtomGraphSequential`` in eval mode, float32, set to batched input (one
        graph per molecule, concatenated; see :func:`sevenn_batch`). Its named submodules are
        the blocks; :func:`interaction_layers` lists the ones whose outputs are node latents.

    Raises
    ------
    ImportError
        One line saying how to install ``sevenn`` when it is missing.
    """
    sevenn = _require_sevenn()
    path = _checkpoint_path(name)
    model = sevenn.util.load_checkpoint(path).build_model()
    modal_map = getattr(model, "modal_map", None) or {}
    if modal_map and modal not in modal_map:
        raise ValueError(f"modal must be one of {sorted(modal_map)} for the multi-fidelity model {name!r}, "
                         f"got {describe(modal)}")
    if not modal_map and modal is not None:
        raise ValueError(f"modal must be None: {name!r} is not a multi-fidelity model, got {describe(modal)}")
    model.set_is_batch_data(True)
    model.invlatent_modal = modal  # read by the batches of node_features
    return model.to(device).eval()


@needs("models", "torch_geometric", what="sevenn_batch")
def sevenn_batch(pos: torch.Tensor, numbers: torch.Tensor, mask: torch.Tensor | None = None, *,
                 cutoff: float = 5.0):
    r"""SevenNet's input for a batch of padded molecules: one PyG ``Data``, no periodic cell.

    Atoms ``i, j`` of one molecule are joined (both directions) when
    :math:`\lVert r_i - r_j\rVert \le` ``cutoff``; the model reads the edge vectors
    :math:`r_{\text{target}} - r_{\text{source}}` (key ``edge_vec``), not the positions, so an
    input action that rotates ``pos`` must rotate ``edge_vec`` too (e.g.
    ``RotatePositions(vector_keys=("edge_vec",))``).

    Parameters
    ----------
    pos : Tensor, shape ``(B, n, 3)``
        Coordinates in Å; float32 is what the model computes in.
    numbers : LongTensor, shape ``(B, n)``
        Atomic numbers (1 for H, 6 for C, ...); ignored in padding.
    mask : BoolTensor, shape ``(B, n)``, optional
        True for real atoms (all by default). Atoms are taken in slot order.
    cutoff : float
        Neighbour radius (Å); SevenNet-0 was trained with 5.

    Returns
    -------
    torch_geometric.data.Data
        ``x`` and ``atomic_numbers (N,)``, ``pos (N, 3)``, ``edge_index (2, E)``,
        ``edge_vec (E, 3)``, ``batch (N,)``, ``num_graphs = B``, with ``N = mask.sum()``.

    Raises
    ------
    ImportError
        One line naming the ``models`` extra when PyTorch Geometric is missing.

    Example
    -------
    >>> pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]])
    >>> d = sevenn_batch(pos, torch.tensor([[8, 1, 1]]))
    >>> d.edge_index.shape, d.edge_vec.shape, d.batch.tolist()
    (torch.Size([2, 6]), torch.Size([6, 3]), [0, 0, 0])
    """
    from torch_geometric.data import Data

    from .._graphs import radius_graph_dense

    check_tensor(pos, "pos", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    if not isinstance(numbers, torch.Tensor) or numbers.dtype != torch.long:
        raise TypeError(f"numbers must be a LongTensor of shape (B, n), got {describe(numbers)}")
    if numbers.shape != pos.shape[:2]:
        raise ValueError(f"numbers must have shape (B, n) = {tuple(pos.shape[:2])}, got {tuple(numbers.shape)}")
    if mask is None:
        mask = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device)
    check_mask(mask, pos, z_name="pos")
    if not isinstance(cutoff, (int, float)) or isinstance(cutoff, bool) or not cutoff > 0:
        raise ValueError(f"cutoff must be a positive number (Å), got {describe(cutoff)}")
    if bool((numbers[mask] < 1).any()):
        raise ValueError("numbers must hold atomic numbers >= 1 for every real atom")
    pos_flat, edge_index = radius_graph_dense(pos, mask, float(cutoff))
    z = numbers[mask]
    counts = mask.sum(1)
    batch = torch.repeat_interleave(torch.arange(pos.shape[0], device=pos.device), counts)
    edge_vec = pos_flat[edge_index[1]] - pos_flat[edge_index[0]]
    return Data(x=z.clone(), atomic_numbers=z, pos=pos_flat, edge_index=edge_index, edge_vec=edge_vec,
                batch=batch, num_graphs=int(pos.shape[0]), num_nodes=int(z.numel()))


def _gate_class():
    from sevenn.nn.equivariant_gate import EquivariantGate

    return EquivariantGate


def interaction_layers(model: torch.nn.Module) -> list[str]:
    """Names of the modules that end SevenNet's interaction blocks (the equivariant gates).

    Their output's ``"x"`` entry holds the node features after each message-passing block;
    these are the model's per-atom latents, in forward order.

    Example
    -------
    >>> interaction_layers(load_sevenn())                              # doctest: +SKIP
    ['0_equivariant_gate', '1_equivariant_gate', '2_equivariant_gate', '3_equivariant_gate', '4_equivariant_gate']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {describe(model)}")
    _require_sevenn()
    gate = _gate_class()
    names = [name for name, mod in model.named_modules() if isinstance(mod, gate)]
    if not names:
        raise ValueError("model has no SevenNet EquivariantGate module: is it a SevenNet model?")
    return names


def layer_irreps(model: torch.nn.Module, layer: str):
    """The e3nn irreps of the node features that block ``layer`` outputs (e.g. ``128x0e+64x1e+32x2e``).

    These are the labels SevenNet gives its features; the chapter *Your own model* tests what
    they mean (SO(3) holds, a reflection does not act as the parity labels say).
    """
    names = interaction_layers(model)
    if layer not in names:
        raise ValueError(f"layer must be one of {names}, got {describe(layer)}")
    return model.get_submodule(layer).gate.irreps_out


@dataclass
class NodeFeatures:
    """Dense per-atom latents of some layers: ``z[layer]`` is ``(B, n, irreps[layer].dim)``,
    zero in padding; ``mask`` is ``(B, n)``, True for real atoms (the input's mask)."""

    z: dict[str, torch.Tensor]
    mask: torch.Tensor
    irreps: dict


def node_features(model: torch.nn.Module, pos: torch.Tensor, numbers: torch.Tensor,
                  mask: torch.Tensor | None = None, *, layers: str | Sequence[str] | None = None,
                  batch_size: int = 256, cutoff: float | None = None,
                  transform: Callable | None = None, device=None) -> NodeFeatures:
    r"""Node features of SevenNet's interaction blocks for padded molecules, batched.

    Molecules go through the model ``batch_size`` at a time (:func:`sevenn_batch`, then
    :func:`invlatent.audit.capture_latents` with ``select="x"`` and ``stop=True``: the
    forward pass ends after the last requested block, so the energy and force heads and
    their autograd never run). Each block's flat ``(N, d)`` output is scattered back to the
    input's slots.

    Parameters
    ----------
    model : SevenNet model (:func:`load_sevenn`)
    pos : Tensor, shape ``(B, n, 3)``
        Coordinates (Å).
    numbers : LongTensor, shape ``(B, n)``
        Atomic numbers.
    mask : BoolTensor, shape ``(B, n)``, optional
        Real atoms (all by default).
    layers : str or sequence of str, optional
        Names from :func:`interaction_layers` (all by default).
    batch_size : int
        Molecules per forward pass.
    cutoff : float, optional
        Neighbour radius (Å); the model's own (``model.cutoff``) by default.
    transform : callable, optional
        ``transform(layer, z, mask) -> Tensor`` applied to each chunk's dense ``(b, n, d)``
        features before they are kept (e.g. a pooled invariant), to bound memory on large
        sets; its outputs are concatenated along the first axis.
    device : optional
        Where the model runs (the model's device by default); results are kept on the CPU.

    Returns
    -------
    NodeFeatures
        ``z[layer]`` ``(B, n, d)`` float32 (or the concatenated ``transform`` outputs), the
        mask ``(B, n)`` and ``irreps[layer]``.

    See also
    --------
    stream_node_features : the same features projected batch by batch, never all held.
    """
    layers = check_layer_names(layers, interaction_layers(model), "interaction_layers(model)")
    check_tensor(pos, "pos", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    if mask is None:
        mask = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device)
    check_mask(mask, pos, z_name="pos")
    check_positive_int(batch_size, "batch_size")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable or None, got {describe(transform)}")
    if cutoff is None:
        cutoff = float(getattr(model, "cutoff", 5.0))
    if device is None:
        device = next(model.parameters()).device
    irreps = {layer: layer_irreps(model, layer) for layer in layers}
    kept: dict[str, list] = {layer: [] for layer in layers}
    for rows, m, zs in _feature_batches(model, pos, numbers, mask, layers, batch_size, cutoff, device):
        m = m.cpu()
        for layer in layers:
            z = zs[layer].cpu()
            kept[layer].append(z if transform is None else transform(layer, z, m))
    return NodeFeatures(z={k: torch.cat(v) for k, v in kept.items()}, mask=mask.cpu(), irreps=irreps)


def _feature_batches(model, pos, numbers, mask, layers, batch_size, cutoff, device, desc="SevenNet blocks"):
    """Yield ``(rows, mask, {layer: z})`` per batch of molecules: ``rows`` a slice of the
    molecules, ``mask`` ``(b, n)`` and the dense float32 ``z`` ``(b, n, d)`` (zero in padding)
    on ``device``, where the model ran. Nothing is kept between batches."""
    from ..audit import capture_latents
    from ..utils import progress

    B = pos.shape[0]
    starts = range(0, B, batch_size)
    for s in progress(starts, total=len(starts), desc=desc, unit="batch"):
        rows = slice(s, min(s + batch_size, B))
        m = mask[rows].to(device)
        data = sevenn_batch(pos[rows].to(device), numbers[rows].to(device), m, cutoff=cutoff)
        modal = getattr(model, "invlatent_modal", None)
        if modal is not None:  # a multi-fidelity model: one fidelity per molecule
            data["data_modality"] = [modal] * int(m.shape[0])
        out = capture_latents(model, layers, data, select="x", stop=True)
        zs = {}
        for layer in layers:
            x = out[layer].float()
            z = x.new_zeros(m.shape + (x.shape[-1],))
            z[m] = x
            zs[layer] = z
        del out, data
        yield rows, m, zs


@dataclass
class StreamedNodeFeatures:
    """What :func:`stream_node_features` keeps: ``views[name]`` ``(B, *shape)`` for every
    molecule, the raw features ``z`` ``(keep, n, d)`` float32 of the first ``keep`` molecules,
    the ``mask`` ``(B, n)`` of all of them and the layer's ``irreps``; all on the CPU."""

    views: dict[str, torch.Tensor]
    z: torch.Tensor
    mask: torch.Tensor
    irreps: object


def stream_node_features(model: torch.nn.Module, pos: torch.Tensor, numbers: torch.Tensor,
                         mask: torch.Tensor | None = None, *, layer: str,
                         views: Mapping[str, Callable] | None = None, keep: int = 0,
                         batch_size: int = 256, cutoff: float | None = None, dtype: torch.dtype | None = None,
                         device=None) -> StreamedNodeFeatures:
    r"""One block's node features of many molecules, projected batch by batch, never all held.

    The features of a whole data set can exceed host memory: ``(B, n, 480)`` float32 is 7.3 GB
    for all 130,831 QM9 molecules (``n = 29``), before any copy. This function runs the model
    ``batch_size`` molecules at a time exactly as :func:`node_features` does (same
    features), and hands each batch, on the model's device, to the functions in ``views``
    (:func:`invlatent.projections.project_stream`): only their outputs are kept for every
    molecule, the raw features only for molecules ``0 .. keep-1``. Host memory is
    ``keep * n * d`` float32 numbers, the views' outputs and one batch, whatever ``B``.

    Parameters
    ----------
    model : SevenNet model (:func:`load_sevenn`)
    pos : Tensor, shape ``(B, n, 3)``
        Coordinates (Å).
    numbers : LongTensor, shape ``(B, n)``
        Atomic numbers.
    mask : BoolTensor, shape ``(B, n)``, optional
        Real atoms (all by default).
    layer : str
        One name from :func:`interaction_layers`.
    views : mapping of str to callable, optional
        ``views[name](z, mask, rows) -> Tensor (b, *shape)``: ``z`` ``(b, n, d)`` a batch's
        features (in ``dtype``, zero in padding) and ``mask`` ``(b, n)``, both on the model's
        device; ``rows`` the batch's ``slice`` of the ``B`` molecules (to index per-molecule
        data such as random poses drawn for all of them).
    keep : int
        Raw features kept: molecules ``0 .. keep-1`` (shuffle the molecules first, and they
        are a random sample).
    batch_size : int
        Molecules per forward pass.
    cutoff : float, optional
        Neighbour radius (Å); the model's own by default.
    dtype : torch.dtype, optional
        What the views see (float32, the model's, by default; float64 for sums over atoms
        checked to round-off).
    device : optional
        Where the model runs (the model's device by default).

    Returns
    -------
    StreamedNodeFeatures
        ``views`` ``{name: (B, *shape)}``, ``z`` ``(keep, n, d)`` float32, ``mask`` ``(B, n)``,
        ``irreps``; on the CPU.

    Raises
    ------
    TypeError, ValueError
        Bad inputs, naming the argument (``layer`` not a block name, ``keep`` outside
        ``0 .. B``, ``views`` not callables, a view output without one row per molecule).

    Example
    -------
    >>> import torch
    >>> from invlatent.projections import pooled_scalars
    >>> model = load_sevenn("7net-0")                                      # doctest: +SKIP
    >>> pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]]).repeat(5, 1, 1)
    >>> numbers = torch.tensor([[8, 1, 1]]).repeat(5, 1)
    >>> layer = "3_equivariant_gate"
    >>> out = stream_node_features(                                         # doctest: +SKIP
    ...     model, pos, numbers, layer=layer, keep=2, batch_size=2,
    ...     views={"0e": lambda z, m, rows: pooled_scalars(z, "128x0e+64x1e+32x2e", m)})
    >>> out.views["0e"].shape, out.z.shape                                 # doctest: +SKIP
    (torch.Size([5, 128]), torch.Size([2, 3, 480]))
    """
    from ..projections import project_stream

    names = interaction_layers(model)
    if not isinstance(layer, str) or layer not in names:
        raise ValueError(f"layer must be one name from interaction_layers(model) = {names}, got {describe(layer)}")
    check_tensor(pos, "pos", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    if not isinstance(numbers, torch.Tensor) or numbers.dtype != torch.long:
        raise TypeError(f"numbers must be a LongTensor of shape (B, n), got {describe(numbers)}")
    if numbers.shape != pos.shape[:2]:
        raise ValueError(f"numbers must have shape (B, n) = {tuple(pos.shape[:2])}, got {tuple(numbers.shape)}")
    if mask is None:
        mask = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device)
    check_mask(mask, pos, z_name="pos")
    check_positive_int(batch_size, "batch_size")
    B = pos.shape[0]
    if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= B:
        raise ValueError(f"keep must be an int with 0 <= keep <= B = {B} molecules, got {describe(keep)}")
    views = {} if views is None else views
    if cutoff is None:
        cutoff = float(getattr(model, "cutoff", 5.0))
    if device is None:
        device = next(model.parameters()).device
    batches = ((rows, zs[layer], m)
               for rows, m, zs in _feature_batches(model, pos, numbers, mask, [layer], batch_size, cutoff,
                                                   device, desc=f"SevenNet {layer}"))
    out = project_stream(batches, views, n=B, keep=keep, dtype=dtype, out_device="cpu")
    return StreamedNodeFeatures(views=out.views, z=out.z, mask=mask.cpu(), irreps=layer_irreps(model, layer))
