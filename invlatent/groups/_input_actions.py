r"""Input actions for models on graphs and point clouds: rotate positions, permute nodes.

These act on a model's *input* (a PyG ``Data``/``Batch``, or a plain dict with ``"pos"``,
``"edge_index"``, ``"batch"`` keys) so that :func:`~invlatent.audit.equivariance_audit` can
compare a model's latents on :math:`g\cdot x` with :math:`\rho(g)` applied to its latents on
:math:`x`.

* :class:`RotatePositions` -- :math:`SO(3)` acting by :math:`p_i \mapsto R\,p_i` on the
  positions (and any other per-node or per-edge 3-vectors named in ``vector_keys``), one
  rotation for the whole input or one per graph.
* :class:`PermuteNodes` -- :math:`S_n` re-ordering the nodes, each graph's nodes among
  themselves: every node-level tensor is re-indexed, ``edge_index`` is relabelled.

Both return shallow copies (untouched tensors are shared with the input).

Example
-------
>>> import torch
>>> data = {"pos": torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), "edge_index": torch.tensor([[0], [1]])}
>>> R = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])   # 90 degrees about z
>>> RotatePositions().act(R, data)["pos"].tolist()
[[0.0, 1.0, 0.0], [-2.0, 0.0, 0.0]]
>>> out = PermuteNodes().act(torch.tensor([1, 0]), data)
>>> out["pos"].tolist(), out["edge_index"].tolist()          # the edge still joins the same atoms
([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]], [[1], [0]])
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch

from .._validation import check_tensor, describe
from .base import check_batch_size, check_generator

__all__ = ["RotatePositions", "PermuteNodes"]


def _is_graph(data) -> bool:
    return isinstance(data, Mapping) or (hasattr(data, "keys") and hasattr(data, "__getitem__")
                                         and hasattr(data, "__setitem__") and not isinstance(data, torch.Tensor))


def _check_input(data, name: str = "data"):
    if not _is_graph(data):
        raise TypeError(f"{name} must be a PyG Data/Batch or a dict of tensors, got {type(data).__name__}")
    return data


def _keys(data) -> list:
    k = data.keys
    return list(k() if callable(k) else k)


def _get(data, key):
    return data[key] if key in _keys(data) else None


def _copy(data):
    """A shallow copy (``dict(data)`` for mappings, ``copy.copy`` for PyG data: tensors shared)."""
    return dict(data) if isinstance(data, Mapping) else copy.copy(data)


def _num_nodes(data) -> int:
    n = getattr(data, "num_nodes", None) if not isinstance(data, Mapping) else None
    if isinstance(n, int):
        return n
    for key in ("pos", "x", "batch"):
        t = _get(data, key)
        if isinstance(t, torch.Tensor):
            return t.shape[0]
    raise ValueError("data must hold 'pos', 'x' or 'batch' (a node-level tensor) to count its nodes")


def _batch_vector(data, N: int):
    b = _get(data, "batch")
    if b is None:
        return None
    if not isinstance(b, torch.Tensor) or b.dtype not in (torch.int64, torch.int32) or b.shape != (N,):
        raise ValueError(f"data['batch'] must be a long tensor of shape (num_nodes,) = ({N},), got {describe(b)}")
    return b.long()


class RotatePositions:
    r""":math:`SO(3)` acting on the coordinates of a graph input: :math:`p_i \mapsto R\, p_i`.

    Parameters
    ----------
    key : str
        The node positions ``(num_nodes, 3)``.
    vector_keys : sequence of str
        Further 3-vector fields ``(m, 3)`` that rotate with the positions (e.g. precomputed
        edge vectors, forces, a dipole). Fields not listed are left alone, so a model that
        reads an unlisted vector field will (rightly) look non-equivariant.
    improper : bool
        Sample from :math:`O(3)` instead (a Haar rotation times :math:`\pm I`, as
        :meth:`invlatent.groups.O3.sample`): audit against :class:`~invlatent.groups.O3` latent
        groups to test how the layers transform under reflections (parity). ``act`` applies any
        ``(B, 3, 3)`` matrices it is given.

    Notes
    -----
    An element is a batch of rotation matrices ``(B, 3, 3)``: ``B = 1`` rotates the whole input;
    ``B = num_graphs`` rotates graph ``k`` (nodes with ``batch == k``) by ``R[k]`` (node-level
    fields only).

    Example
    -------
    >>> import torch
    >>> act = RotatePositions(vector_keys=("force",))
    >>> R = act.sample(1, generator=torch.Generator().manual_seed(0))
    >>> data = {"pos": torch.randn(4, 3, dtype=torch.float64), "force": torch.randn(4, 3, dtype=torch.float64)}
    >>> out = act.act(R, data)
    >>> bool(torch.allclose(out["pos"].norm(dim=1), data["pos"].norm(dim=1)))
    True
    """

    def __init__(self, key: str = "pos", vector_keys=(), improper: bool = False):
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        if not isinstance(vector_keys, (list, tuple)) or not all(isinstance(k, str) for k in vector_keys):
            raise TypeError(f"vector_keys must be a sequence of str, got {describe(vector_keys)}")
        if not isinstance(improper, bool):
            raise TypeError(f"improper must be a bool, got {type(improper).__name__}")
        self.key, self.vector_keys, self.improper = key, tuple(vector_keys), improper

    def __repr__(self) -> str:
        extra = f", vector_keys={self.vector_keys}" if self.vector_keys else ""
        extra += ", improper=True" if self.improper else ""
        return f"RotatePositions(key={self.key!r}{extra})"

    def sample(self, B: int, generator: torch.Generator | None = None, device=None, dtype=torch.float64,
               data=None) -> torch.Tensor:
        """``B`` Haar-random rotations ``(B, 3, 3)`` (elements of O(3) if ``improper``); ``data`` is
        accepted for a common signature and unused."""
        from ._rotation import O3, SO3

        return (O3 if self.improper else SO3)("1o").sample(B, generator=generator, device=device, dtype=dtype)

    def act(self, R: torch.Tensor, data):
        """A shallow copy of ``data`` with ``data[key]`` and every ``vector_keys`` field rotated."""
        _check_input(data)
        check_tensor(R, "R", ndim=3, shape=(None, 3, 3), expected="(B, 3, 3)")
        pos = _get(data, self.key)
        if pos is None:
            raise ValueError(f"data has no field {self.key!r} (the positions); fields: {_keys(data)}")
        check_tensor(pos, f"data[{self.key!r}]", ndim=2, shape=(None, 3), expected="(num_nodes, 3)")
        N = pos.shape[0]
        batch = _batch_vector(data, N)
        n_graphs = 1 if batch is None else int(batch.max()) + 1
        if R.shape[0] != 1 and R.shape[0] != n_graphs:
            raise ValueError(f"R must hold 1 rotation or one per graph ({n_graphs}), got shape {tuple(R.shape)}")
        out = _copy(data)
        for key in (self.key, *self.vector_keys):
            v = _get(data, key)
            if v is None:
                raise ValueError(f"data has no vector field {key!r}; fields: {_keys(data)}")
            check_tensor(v, f"data[{key!r}]", shape=(None, 3), ndim=2, expected="(m, 3)")
            Rv = R.to(dtype=v.dtype, device=v.device)
            if R.shape[0] == 1:
                out[key] = v @ Rv[0].T
            else:
                if v.shape[0] != N:
                    raise ValueError(f"per-graph rotations need node-level vectors; data[{key!r}] has "
                                     f"{v.shape[0]} rows, not num_nodes={N}")
                out[key] = (Rv[batch] @ v.unsqueeze(-1)).squeeze(-1)
        return out


class PermuteNodes:
    r""":math:`S_n` re-ordering the nodes of a graph input, each graph's nodes among themselves.

    An element is a long tensor ``perm`` of shape ``(num_nodes,)`` (or ``(1, num_nodes)``); the
    new node ``i`` is the old node ``perm[i]``: every node-level tensor ``t`` becomes
    ``t[perm]`` and ``edge_index`` becomes ``inv[edge_index]`` with ``inv[perm[i]] = i``, so
    every edge still joins the same two atoms (edge order and edge-level fields unchanged).
    The matching action on node latents ``(num_nodes, c)`` is
    :class:`~invlatent.groups.Permutation` on the set view ``(1, num_nodes, c)``.

    Node-level fields: for PyG data those ``Data.is_node_attr`` reports; for dicts (or with
    ``node_keys``) the tensors whose first dimension is ``num_nodes``, except keys starting with
    ``"edge"``.

    Parameters
    ----------
    node_keys : sequence of str, optional
        The node-level fields, explicitly.

    Example
    -------
    >>> import torch
    >>> data = {"pos": torch.arange(12.0).view(4, 3), "batch": torch.tensor([0, 0, 1, 1]),
    ...         "edge_index": torch.tensor([[0, 2], [1, 3]])}
    >>> perm = PermuteNodes().sample(1, generator=torch.Generator().manual_seed(1), data=data)
    >>> out = PermuteNodes().act(perm, data)
    >>> bool(torch.equal(out["batch"], data["batch"]))          # graphs keep their nodes
    True
    """

    def __init__(self, node_keys=None):
        if node_keys is not None and (not isinstance(node_keys, (list, tuple))
                                      or not all(isinstance(k, str) for k in node_keys)):
            raise TypeError(f"node_keys must be None or a sequence of str, got {describe(node_keys)}")
        self.node_keys = None if node_keys is None else tuple(node_keys)

    def __repr__(self) -> str:
        return "PermuteNodes()" if self.node_keys is None else f"PermuteNodes(node_keys={self.node_keys})"

    def sample(self, B: int, generator: torch.Generator | None = None, device=None, data=None) -> torch.Tensor:
        """``(B, num_nodes)`` uniformly random permutations of ``data``'s nodes within each graph.

        ``data`` (the input the permutations will act on) is required: it fixes the node count
        and the graphs.
        """
        check_batch_size(B)
        check_generator(generator)
        if data is None:
            raise ValueError("PermuteNodes.sample needs data= (the graph input) to know its nodes and graphs")
        _check_input(data)
        N = _num_nodes(data)
        batch = _batch_vector(data, N)
        gdev = generator.device if generator is not None else "cpu"
        keys = torch.rand(B, N, generator=generator, device=gdev, dtype=torch.float64)
        if batch is not None:  # sort by (graph, random key): nodes stay within their graph
            keys = keys + 2.0 * batch.to(device=gdev, dtype=torch.float64)
        perm = keys.argsort(dim=1)
        return perm.to(device if device is not None else (batch.device if batch is not None else gdev))

    def act(self, perm: torch.Tensor, data):
        """A shallow copy of ``data`` with its nodes re-ordered by ``perm`` (see the class docstring)."""
        _check_input(data)
        N = _num_nodes(data)
        if not isinstance(perm, torch.Tensor) or perm.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"perm must be a long tensor of shape (num_nodes,) = ({N},), got {describe(perm)}")
        if perm.dim() == 2 and perm.shape[0] == 1:
            perm = perm[0]
        if perm.shape != (N,):
            raise ValueError(f"perm must have shape (num_nodes,) = ({N},) (or (1, {N})), got {tuple(perm.shape)}")
        perm = perm.long()
        inv = torch.full((N,), -1, dtype=torch.long, device=perm.device)
        inv[perm] = torch.arange(N, device=perm.device)
        if bool((inv < 0).any()):
            raise ValueError(f"perm must be a permutation of range({N})")
        batch = _batch_vector(data, N)
        if batch is not None and not torch.equal(batch[perm.to(batch.device)], batch):
            raise ValueError("perm must keep every node within its graph (batch[perm] == batch)")
        out = _copy(data)
        for key in _keys(data):
            v = data[key]
            if key == "edge_index":
                out[key] = inv.to(v.device)[v]
            elif isinstance(v, torch.Tensor) and self._is_node_level(data, key, v, N):
                out[key] = v[perm.to(v.device)]
        return out

    def _is_node_level(self, data, key, v, N) -> bool:
        if self.node_keys is not None:
            return key in self.node_keys
        if v.dim() == 0 or v.shape[0] != N or key == "batch":
            return False
        is_node_attr = getattr(data, "is_node_attr", None)
        if callable(is_node_attr) and not isinstance(data, Mapping):
            return bool(is_node_attr(key))
        return not key.startswith("edge")
