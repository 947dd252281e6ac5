r"""An E(3)-equivariant molecule encoder built from e3nn, with an irreps latent.

Atoms are nodes with one-hot element features (``0e`` scalars). Each interaction first
builds, around every atom, a spherical-harmonics **density** of its neighbours weighted by
invariant edge weights (a radial basis of the distance times the neighbour's scalars),

.. math::

    A_{i,c} = \frac{1}{\sqrt{k}} \sum_{j \in \mathcal N(i)} R_c(\lVert r_{ij}\rVert)\, s_{j,c}\, Y(\hat r_{ij}),

then couples it with the atom's own features by an e3nn tensor product and a gate,

.. math::

    h_i' = \operatorname{Gate}\big(\operatorname{Lin}(h_i) + \operatorname{Lin}(A_i) + h_i \otimes_W A_i\big),

(:math:`Y` = spherical harmonics up to ``lmax``, ``o3.FullyConnectedTensorProduct`` with
shared weights :math:`W`, ``e3nn.nn.Gate``: each ``l > 0`` feature times a sigmoid of an extra
scalar). The tensor products run on atoms rather than edges (the design of ACE/MACE-style
densities), which keeps the model cheap enough for CPU training. The molecule latent is
the sum over atoms of a last equivariant linear map (scaled by :math:`1/\sqrt{\bar n}`),
with irreps such as ``16x0e + 8x1o + 4x2e``:

.. math::

    f(R\,X + t) = D(R)\, f(X) \quad \text{for all } R \in O(3),\ t\in\mathbb R^3

(``D`` = ``latent_irreps.D_from_matrix``, parity included), and :math:`f` is invariant to the
order of the atoms. :class:`E3NNPropertyModel` adds the heads that give the latent parts their
meaning: a scalar MLP on the ``0e`` part for invariant properties, and an e3nn linear map to
the ``1o`` Mulliken dipole and ``2e`` quadrupole (:func:`~invlatent.data.qm9_3d.equivariant_targets`);
:func:`train_property_model` fits it and :func:`encode_molecules` encodes a dataset, optionally
under random rotations.

Example
-------
>>> import torch
>>> from e3nn import o3
>>> torch.manual_seed(0) and None
>>> enc = E3NNEncoder(latent_irreps="4x0e + 2x1o + 1x2e", hidden_irreps="8x0e + 4x1o + 2x2e", num_layers=1)
>>> pos = torch.randn(5, 3)
>>> atom_type = torch.tensor([1, 0, 0, 2, 0])
>>> batch = torch.tensor([0, 0, 0, 1, 1])
>>> z = enc(pos, atom_type, batch, num_graphs=2)
>>> z.shape
torch.Size([2, 15])
>>> R = o3.rand_matrix()
>>> z_rot = enc(pos @ R.T, atom_type, batch, num_graphs=2)
>>> bool(torch.allclose(z_rot, z @ enc.latent_irreps.D_from_matrix(R).T, atol=1e-4))
True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._extras import needs
from .._graphs import radius_graph_dense
from .._irreps import TARGET_IRREPS
from .._validation import check_positive_int, check_tensor
from ._training import fit

__all__ = ["E3NNEncoder", "E3NNPropertyModel", "equivariant_property_loss", "train_property_model", "encode_molecules"]


@needs("molecules", "torch_geometric", what="E3NNEncoder")
def _scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    from torch_geometric.utils import scatter

    return scatter(src, index, dim=0, dim_size=size, reduce="sum")


@needs("molecules", "torch_geometric", what="E3NNEncoder")
def _dense_edges(pos: torch.Tensor, batch: torch.Tensor, num_graphs: int, r_max: float) -> torch.Tensor:
    """Radius graph over a flat batch by padded distances (no compiled extension)."""
    from torch_geometric.utils import to_dense_batch

    dense, mask = to_dense_batch(pos, batch, batch_size=num_graphs)
    return radius_graph_dense(dense, mask, r_max)[1]


class _Interaction(nn.Module):
    """One interaction: scalar-weighted spherical-harmonic density, node tensor product, gate."""

    def __init__(self, irreps_in, irreps_out, lmax: int, channels: int, num_basis: int, radial_hidden: int,
                 num_neighbors: float):
        super().__init__()
        from e3nn import o3
        from e3nn.nn import FullyConnectedNet, Gate

        irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.channels, self.lmax, self.num_neighbors = channels, lmax, num_neighbors
        n_scalars = sum(mul for mul, ir in irreps_in if ir.l == 0 and ir.p == 1)
        self.scalar_dim = n_scalars  # the 0e copies come first after simplify()
        self.embed = nn.Linear(n_scalars, channels, bias=False)
        self.radial = FullyConnectedNet([num_basis, radial_hidden, channels], torch.nn.functional.silu)
        # density irreps: channels x (0e + 1o + 2e + ...): parity (-1)^l, as spherical harmonics
        self.irreps_density = o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps([(m, "0e") for m, _ in gated])
        self.gate = Gate(scalars, [torch.nn.functional.silu] * len(scalars), gates, [torch.sigmoid] * len(gates), gated)
        mid = self.gate.irreps_in
        self.self_interaction = o3.Linear(irreps_in, mid)
        self.density_linear = o3.Linear(self.irreps_density, mid)
        self.tp = o3.FullyConnectedTensorProduct(irreps_in, self.irreps_density, mid)
        self.irreps_out = self.gate.irreps_out

    def forward(self, h, edge_src, edge_dst, edge_sh, edge_emb):
        # invariant edge weights: radial basis x neighbour scalars -> (E, c)
        w = self.radial(edge_emb) * self.embed(h[:, : self.scalar_dim])[edge_src]
        # (N, c, (lmax+1)^2): the neighbours' spherical harmonics, weighted and summed
        dens = _scatter_sum(w.unsqueeze(-1) * edge_sh.unsqueeze(1), edge_dst, h.shape[0])
        dens = dens / math.sqrt(self.num_neighbors)
        # to e3nn layout: for each l, the c copies of its 2l+1 components
        parts = [dens[:, :, l * l:(l + 1) * (l + 1)].reshape(h.shape[0], -1)
                 for l in range(self.lmax + 1)]
        a = torch.cat(parts, dim=1)
        mixed = self.self_interaction(h) + self.density_linear(a) + self.tp(h, a)
        return self.gate(mixed)


class E3NNEncoder(nn.Module):
    r"""E(3)-equivariant encoder of molecules to an irreps latent ``(B, latent_irreps.dim)``.

    Parameters
    ----------
    latent_irreps : str or e3nn Irreps
        Irreps of the pooled molecule latent (default ``"16x0e + 8x1o + 4x2e"``).
    hidden_irreps : str or e3nn Irreps
        Irreps of the atom features between layers (scalars + gated ``l > 0``).
    num_layers : int
        Number of gated tensor-product convolutions.
    lmax : int
        Largest degree of the edge spherical harmonics.
    r_max : float
        Neighbour cutoff (Å); the radial basis goes smoothly to zero there.
    num_basis : int
        Radial basis functions (``soft_one_hot_linspace``, ``smooth_finite``).
    num_atom_types : int
        Size of the one-hot element input (5 for H, C, N, O, F).
    num_neighbors, num_atoms : float
        Typical neighbours per atom and atoms per molecule (normalisation constants).

    Notes
    -----
    ``forward`` takes positions ``pos`` of shape ``(N, 3)``, long tensors ``atom_type`` and
    ``batch`` of shape ``(N,)``, ``num_graphs`` and an optional ``edge_index``, and returns the
    latent of shape ``(num_graphs, latent_irreps.dim)``. Without ``edge_index`` the radius graph
    is built from ``pos`` by batched distances.
    """

    def __init__(self, latent_irreps="16x0e + 8x1o + 4x2e", hidden_irreps="32x0e + 8x1o + 4x2e", num_layers: int = 2,
                 lmax: int = 2, r_max: float = 4.0, num_basis: int = 8, radial_hidden: int = 16, channels: int = 8,
                 num_atom_types: int = 5, num_neighbors: float = 12.0, num_atoms: float = 18.0):
        super().__init__()
        from e3nn import o3

        check_positive_int(num_layers, "num_layers")
        check_positive_int(num_atom_types, "num_atom_types")
        self.latent_irreps = o3.Irreps(latent_irreps).simplify()
        self.hidden_irreps = o3.Irreps(hidden_irreps).simplify()
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.r_max, self.num_basis, self.num_atom_types = float(r_max), num_basis, num_atom_types
        self.num_atoms = float(num_atoms)
        irreps = o3.Irreps(f"{num_atom_types}x0e")
        layers = []
        for _ in range(num_layers):
            conv = _Interaction(irreps, self.hidden_irreps, lmax, channels, num_basis, radial_hidden, num_neighbors)
            layers.append(conv)
            irreps = conv.irreps_out
        self.layers = nn.ModuleList(layers)
        self.readout = o3.Linear(irreps, self.latent_irreps)

    def forward(self, pos: torch.Tensor, atom_type: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                edge_index: torch.Tensor | None = None) -> torch.Tensor:
        from e3nn import o3
        from e3nn.math import soft_one_hot_linspace

        check_tensor(pos, "pos", ndim=2, shape=(None, 3), expected="(N, 3)")
        for t, name in ((atom_type, "atom_type"), (batch, "batch")):
            check_tensor(t, name, ndim=1, shape=(pos.shape[0],), floating=False, expected="(N,) long")
            if t.dtype != torch.long:
                raise TypeError(f"{name} must be a long tensor of shape (N,), got {t.dtype}")
        check_positive_int(num_graphs, "num_graphs")
        if edge_index is None:
            edge_index = _dense_edges(pos, batch, num_graphs, self.r_max)
        src, dst = edge_index
        vec = pos[dst] - pos[src]
        length = vec.norm(dim=1)
        edge_sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        edge_emb = soft_one_hot_linspace(length, 0.0, self.r_max, self.num_basis, basis="smooth_finite",
                                         cutoff=True).mul(self.num_basis ** 0.5)
        h = torch.nn.functional.one_hot(atom_type, self.num_atom_types).to(pos.dtype)
        for layer in self.layers:
            h = layer(h, src, dst, edge_sh, edge_emb)
        return _scatter_sum(self.readout(h), batch, num_graphs) / math.sqrt(self.num_atoms)

    def encode(self, data) -> torch.Tensor:
        """``forward`` on a PyG batch with ``pos``, ``atom_type``, ``batch``, ``num_graphs`` (and ``edge_index``)."""
        return self(data.pos, data.atom_type, data.batch, int(data.num_graphs), getattr(data, "edge_index", None))


class E3NNPropertyModel(nn.Module):
    r"""An :class:`E3NNEncoder` plus the heads that give its latent parts a meaning.

    * scalar head: an MLP on the ``0e`` part of the latent -> ``num_scalars`` invariant
      properties (standardised);
    * tensor head: ``o3.Linear(latent_irreps, "1x1o + 1x2e")`` -> the Mulliken dipole and the
      charge quadrupole, equivariant by construction.

    ``forward(data)`` returns ``(latent, scalars, tensors)`` with shapes
    ``(B, latent_irreps.dim)``, ``(B, num_scalars)``, ``(B, 8)``.
    """

    def __init__(self, encoder: E3NNEncoder, num_scalars: int, hidden: int = 64):
        super().__init__()
        from e3nn import o3

        if not isinstance(encoder, E3NNEncoder):
            raise TypeError(f"encoder must be an E3NNEncoder, got {type(encoder).__name__}")
        check_positive_int(num_scalars, "num_scalars")
        self.encoder = encoder
        n0 = sum(mul for mul, ir in encoder.latent_irreps if ir.l == 0 and ir.p == 1)
        if n0 == 0:
            raise ValueError(f"latent_irreps must contain 0e scalars for the scalar head, got {encoder.latent_irreps}")
        self.scalar_slice = encoder.latent_irreps.slices()[0]
        self.scalar_head = nn.Sequential(nn.Linear(n0, hidden), nn.SiLU(), nn.Linear(hidden, num_scalars))
        self.tensor_head = o3.Linear(encoder.latent_irreps, o3.Irreps(TARGET_IRREPS))

    def forward(self, data):
        z = self.encoder.encode(data)
        return z, self.scalar_head(z[:, self.scalar_slice]), self.tensor_head(z)


def equivariant_property_loss(scalars_pred, scalars_true, tensors_pred, tensors_true, tensor_weight: float = 1.0):
    r"""Mean squared error on standardised scalars plus ``tensor_weight`` times the MSE on the
    dipole/quadrupole components (one rotation-invariant number: :math:`\lVert\cdot\rVert^2`
    summed over each irrep's components)."""
    return (scalars_pred - scalars_true).square().mean() + tensor_weight * (tensors_pred - tensors_true).square().mean()


def train_property_model(model: E3NNPropertyModel, dataset, train_index, scalar_names: tuple[str, ...], *,
                         epochs: int = 5, batch_size: int = 128, lr: float = 3e-3, tensor_weight: float = 1.0,
                         r_max: float | None = None, seed: int = 0, rotate: bool = True, device=None) -> dict:
    r"""Fit :class:`E3NNPropertyModel` on standardised scalars + the equivariant targets.

    Parameters
    ----------
    model : E3NNPropertyModel
    dataset : :class:`~invlatent.data.qm9_3d.QM9Geometries`
    train_index : 1-D LongTensor
        Training molecules.
    scalar_names : tuple of str
        Scalar properties of ``dataset`` for the scalar head (standardised with train statistics).
    epochs, batch_size, lr : training schedule (Adam, ``schedule="warmup_cosine"`` of :func:`~invlatent.models._training.lr_at`).
    tensor_weight : weight of the dipole/quadrupole MSE.
    rotate : bool
        Present every batch in a fresh random orientation (the model is equivariant, so this
        only changes round-off; it makes the training set cover all poses anyway).

    Returns
    -------
    dict
        The result dict of :func:`~invlatent.models._training.fit` (``final_loss``, ``history``,
        ``epochs``, ``seconds``, ...; ``loss`` is the same as ``final_loss``, kept for one release)
        plus ``"mean"``, ``"std"`` (scalar statistics) and ``"target_scale"`` as lists, suitable as
        checkpoint metadata. The tensor head predicts the targets divided
        by ``target_scale`` (the RMS norm of the dipoles, resp. quadrupoles, of the training set).
    """
    from ..groups import SO3

    if not isinstance(model, E3NNPropertyModel):
        raise TypeError(f"model must be an E3NNPropertyModel, got {type(model).__name__}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    idx = torch.as_tensor(train_index, dtype=torch.long)
    device = device or next(model.parameters()).device
    cols = [dataset.property_names.index(n) for n in scalar_names]
    y = dataset.y[idx][:, cols].double()
    mean, std = y.mean(0), y.std(0).clamp_min(1e-12)
    # per-irrep RMS norm of the equivariant targets: a rotation-invariant standardisation
    t = dataset.subset(idx[: min(len(idx), 4096)]).targets().double()
    rms = torch.stack([t[:, :3].square().sum(1).mean().sqrt(), t[:, 3:].square().sum(1).mean().sqrt()])
    scale = torch.cat([rms[0].expand(3), rms[1].expand(5)]).clamp_min(1e-12)
    r_max = model.encoder.r_max if r_max is None else r_max
    steps = epochs * ((len(idx) + batch_size - 1) // batch_size)
    SO = SO3("1x1o")

    def batches(epoch, gen):
        perm = idx[torch.randperm(len(idx), generator=gen)]
        out = []
        for start in range(0, len(perm), batch_size):
            b_idx = perm[start:start + batch_size]
            R = SO.sample(len(b_idx), generator=gen, dtype=torch.float32) if rotate else None
            out.append(((b_idx, R), len(b_idx)))
        return out

    def step(batch, k):
        b_idx, R = batch
        data = dataset.batch(b_idx, r_max=r_max, rotation=R, device=device)
        ys = ((data.y[:, cols].double().cpu() - mean) / std).to(device=device, dtype=data.pos.dtype)
        _, s_pred, t_pred = model(data)
        ts = data.targets / scale.to(device=device, dtype=data.pos.dtype)
        return {"loss": equivariant_property_loss(s_pred, ys, t_pred, ts, tensor_weight)}

    out = fit(model, batches, step, epochs=epochs, lr=lr, schedule="warmup_cosine",
              warmup_steps=max(1, steps // 20), seed=seed, desc="e3nn training")
    return {**out, "loss": out["final_loss"], "mean": mean.tolist(), "std": std.tolist(),
            "scalar_names": list(scalar_names), "target_scale": scale.tolist()}


@torch.no_grad()
def encode_molecules(encoder: E3NNEncoder, dataset, index, *, rotation: torch.Tensor | None = None,
                     batch_size: int = 512, device=None) -> torch.Tensor:
    """Latents ``(len(index), latent_irreps.dim)`` of the molecules ``index``, in batches.

    ``rotation`` (``(len(index), 3, 3)``, optional) turns molecule ``k`` by ``rotation[k]``
    before encoding (its latent then turns by ``D(rotation[k])``).
    """
    if not isinstance(encoder, E3NNEncoder):
        raise TypeError(f"encoder must be an E3NNEncoder, got {type(encoder).__name__}")
    idx = torch.as_tensor(index, dtype=torch.long)
    p = next(encoder.parameters())
    device = device or p.device
    out = []
    for start in range(0, len(idx), batch_size):
        sl = slice(start, start + batch_size)
        R = None if rotation is None else rotation[sl]
        data = dataset.batch(idx[sl], r_max=encoder.r_max, rotation=R, device=device, dtype=p.dtype)
        out.append(encoder.encode(data))
    return torch.cat(out).cpu()
