r"""Linear permutation-equivariant layers between node and edge features (Maron et al., 2019).

For a graph with :math:`n` nodes, node features :math:`X \in \R^{n \times C}` and edge
features :math:`A \in \R^{n \times n \times C}`, the linear maps that commute with every
permutation :math:`\sigma \in \Sn` (acting as :math:`X_{i} \mapsto X_{\sigma^{-1}(i)}`,
:math:`A_{ij} \mapsto A_{\sigma^{-1}(i)\sigma^{-1}(j)}`) form bases of fixed size: 2 for
node→node (1→1), 5 for node→edge (1→2), 15 for edge→edge (2→2) and 5 for edge→node (2→1).
Each basis element gets its own :math:`C_\text{in} \times C_\text{out}` weight.

The bases are built from the pooled terms

.. math::

   & d_i = A_{ii},\quad r_i = \tfrac1n \textstyle\sum_j A_{ij},\quad c_j = \tfrac1n \sum_i A_{ij},
   \\ & t = \tfrac1n \sum_i A_{ii},\quad s = \tfrac1{n^2} \sum_{ij} A_{ij},

(means instead of Maron et al.'s sums, so that scales do not grow with :math:`n`), and the
2→2 layer is

.. math::

   B_{ij} = {} & W_1 A_{ij} + W_2 A_{ji}
   + \delta_{ij}\,\big(W_3 d_i + W_6 r_i + W_7 c_i + W_{12} t + W_{14} s\big) \\
   & + \big(W_4 d_i + W_8 r_i + W_{10} c_i + W_{13} t + W_{15} s + b\big) \\
   & + \big(W_5 d_j + W_9 r_j + W_{11} c_j\big).

**Efficiency.** The weights are applied to the pooled terms (tensors of size
:math:`B \times n \times C` or :math:`B \times C`) *before* they are broadcast to
:math:`B \times n \times n`. The full-size work is two channel mixes, :math:`W_1 A` and
:math:`W_2 A^\top`, accumulated by the matmul itself (``addmm_``, :math:`\beta = 1`) into a tensor
that starts as the broadcast sum of the pooled terms; the backward pass is written by hand
(:class:`_EdgeToEdgeFunction`) in the same way, so no full-size tensor is built only to be
sliced, zero-padded or added once more. Passes over :math:`B n^2 C` (counted in
``benchmarks/run.py``, ``MARON_PASSES``): forward 11 and two :math:`C \times C` matmuls over the
full tensor, backward 15 and four, against 4 and one, 5 and two for a 1×1 convolution. The
multiply-adds are :math:`2 + 9/n + 4/n^2` times the convolution's (the node-level mix of
:math:`(d, r, c)` costs :math:`9/n` of a full one): about 3 at :math:`n = 9`.

**Masks.** With a node mask ``mask`` (B, n) the means run over real nodes (pairs of real
nodes) only, so the outputs at real positions never depend on what is stored in padding
slots. Outputs at padding positions are computed too (they see only pooled, real
information) and are not zeroed: a caller that needs zeros there multiplies by the mask.

Example
-------
>>> import torch
>>> from invlatent.models.maron import EdgeToEdge
>>> layer = EdgeToEdge(3, 4).double()
>>> A = torch.randn(2, 5, 5, 3, dtype=torch.float64)
>>> perm = torch.randperm(5)
>>> out_perm = layer(A[:, perm][:, :, perm])
>>> bool(torch.allclose(out_perm, layer(A)[:, perm][:, :, perm]))
True
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_tensor

__all__ = [
    "NodeToNode",
    "NodeToEdge",
    "EdgeToEdge",
    "EdgeToNode",
    "MaskedInstanceNorm",
    "node_mean",
    "edge_pool",
]


def _check_mask(mask: torch.Tensor | None, B: int, n: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool torch.Tensor (B, n), got {getattr(mask, 'dtype', type(mask))}")
    if tuple(mask.shape) != (B, n):
        raise ValueError(f"mask must have shape (B, n) = ({B}, {n}), got {tuple(mask.shape)}")


def node_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Mean over real nodes: :math:`\bar x = \sum_i m_i x_i / \max(1, \sum_i m_i)`.

    ``x`` (B, n, C), ``mask`` (B, n) bool or ``None`` (all real) -> (B, C).
    """
    if mask is None:
        return x.mean(1)
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def edge_pool(a: torch.Tensor, mask: torch.Tensor | None = None):
    """The pooled terms of an edge tensor ``a`` (B, n, n, C).

    Returns ``(d, r, c, t, s)``: diagonal (B, n, C), row means (B, n, C), column means
    (B, n, C), mean of the diagonal (B, C) and mean of all entries (B, C), each over
    real nodes / pairs of real nodes when ``mask`` (B, n) is given.
    """
    d = a.diagonal(dim1=1, dim2=2).transpose(1, 2)
    if mask is None:
        r, c = a.mean(2), a.mean(1)
        return d, r, c, d.mean(1), r.mean(1)
    m = mask.to(a.dtype)
    cnt = m.sum(1).clamp_min(1.0)[:, None, None]  # (B, 1, 1)
    r = torch.einsum("bijc,bj->bic", a, m) / cnt
    c = torch.einsum("bijc,bi->bjc", a, m) / cnt
    t = (d * m[..., None]).sum(1) / cnt[:, 0]
    s = (r * m[..., None]).sum(1) / cnt[:, 0]
    return d, r, c, t, s


class NodeToNode(nn.Module):
    r"""1→1 equivariant linear layer (2 basis elements): :math:`y_i = W_1 x_i + W_2 \bar x + b`.

    Input (B, n, C_in), output (B, n, C_out).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.self_lin = nn.Linear(in_channels, out_channels)
        self.pool_lin = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_mask(mask, x.shape[0], x.shape[1])
        return self.self_lin(x) + self.pool_lin(node_mean(x, mask))[:, None]


class NodeToEdge(nn.Module):
    r"""1→2 equivariant linear layer (5 basis elements).

    :math:`B_{ij} = \delta_{ij}(W_1 x_i + W_4 \bar x) + W_2 x_i + W_3 x_j + W_5 \bar x + b`.
    Input (B, n, C_in), output (B, n, n, C_out).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.node_lin = nn.Linear(in_channels, 3 * out_channels)  # diag, row (+bias), col
        self.pool_lin = nn.Linear(in_channels, 2 * out_channels, bias=False)  # diag, all
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_mask(mask, x.shape[0], x.shape[1])
        C = self.out_channels
        diag, row, col = self.node_lin(x).split(C, dim=-1)
        pd, pa = self.pool_lin(node_mean(x, mask)).split(C, dim=-1)
        out = (row + pa[:, None])[:, :, None] + col[:, None, :]
        out.diagonal(dim1=1, dim2=2).add_((diag + pd[:, None]).transpose(1, 2))
        return out


def _mask_weights(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``mask / (number of real nodes)`` (B, n) in ``dtype``: the weights of a mean over real nodes."""
    if mask is None:
        return None
    m = mask.to(dtype)
    return m / m.sum(1, keepdim=True).clamp_min(1.0)


def _weighted_pool(a: torch.Tensor, mw: torch.Tensor | None):
    """:func:`edge_pool` with the mean weights ``mw`` of :func:`_mask_weights` (``None``: plain means)."""
    d = a.diagonal(dim1=1, dim2=2).transpose(1, 2)
    if mw is None:
        r, c = a.mean(2), a.mean(1)
        return d, r, c, d.mean(1), r.mean(1)
    r = torch.einsum("bijc,bj->bic", a, mw)
    c = torch.einsum("bijc,bi->bjc", a, mw)
    return d, r, c, torch.einsum("bic,bi->bc", d, mw), torch.einsum("bic,bi->bc", r, mw)


class _EdgeToEdgeFunction(torch.autograd.Function):
    r"""The 2→2 layer with a hand-written backward (fewer full-size passes than autograd's).

    Forward, for ``a`` (B, n, n, C_in): the pooled mixes give a row term :math:`u_i`, a column term
    :math:`v_j` and a diagonal term :math:`w_i` (B, n, C); ``out`` starts as :math:`u_i + v_j`
    (one write), gets :math:`w_i` on its diagonal, and the two channel mixes are accumulated into it
    by ``addmm_`` (:math:`\beta = 1`), the second from a transposed copy of ``a``.

    Backward, for ``g`` = d loss / d out: :math:`\partial a_{ij} = W_1^\top g_{ij} + W_2^\top g_{ji}`
    plus the adjoints of the pooled terms, which are again a row term, a column term (times the
    mask weights) and a diagonal term; :math:`\partial W_1 = \sum g_{ij} a_{ij}^\top`,
    :math:`\partial W_2 = \sum g_{ji} a_{ij}^\top`. The backward is made of differentiable
    operations, so higher derivatives work too.
    """

    @staticmethod
    def forward(ctx, a, mw, w1, w2, node_w, node_b, graph_w):
        B, n, _, c_in = a.shape
        C = w1.shape[0]
        d, r, c, t, s = _weighted_pool(a, mw)
        node_in, graph_in = torch.cat([d, r, c], -1), torch.cat([t, s], -1)
        diag, row, col = torch.nn.functional.linear(node_in, node_w, node_b).split(C, dim=-1)
        gd, ga = (graph_in @ graph_w.T).split(C, dim=-1)
        out = torch.add((row + ga[:, None])[:, :, None], col[:, None, :])  # u_i + v_j: (B, n, n, C)
        out.diagonal(dim1=1, dim2=2).add_((diag + gd[:, None]).transpose(1, 2))
        flat = out.view(-1, C)
        flat.addmm_(a.reshape(-1, c_in), w1.T)  # + W1 a_ij
        flat.addmm_(a.transpose(1, 2).reshape(-1, c_in), w2.T)  # + W2 a_ji (a transposed copy of a)
        ctx.save_for_backward(a, mw, w1, w2, node_w, graph_w, node_in, graph_in)
        return out

    @staticmethod
    def backward(ctx, g):
        a, mw, w1, w2, node_w, graph_w, node_in, graph_in = ctx.saved_tensors
        B, n, _, c_in = a.shape
        C = w1.shape[0]
        g = g.contiguous()
        gT = g.transpose(1, 2).contiguous()
        g_row, g_col = g.sum(2), gT.sum(2)  # d/du_i, d/dv_j: (B, n, C)
        g_diag = g.diagonal(dim1=1, dim2=2).transpose(1, 2)
        g_node = torch.cat([g_diag, g_row, g_col], -1)  # d/d(diag, row, col)
        g_graph = torch.cat([g_diag.sum(1), g_row.sum(1)], -1)  # d/d(gd, ga)
        gf, gTf, af = g.view(-1, C), gT.view(-1, C), a.reshape(-1, c_in)
        need = ctx.needs_input_grad
        d_a = d_w1 = d_w2 = d_node_w = d_node_b = d_graph_w = None
        if need[2]:
            d_w1 = gf.T @ af
        if need[3]:
            d_w2 = gTf.T @ af
        if need[4]:
            d_node_w = g_node.flatten(0, 1).T @ node_in.flatten(0, 1)
        if need[5]:
            d_node_b = g_node.sum((0, 1))
        if need[6]:
            d_graph_w = g_graph.T @ graph_in
        if need[0]:
            g_d, g_r, g_c = (g_node @ node_w).split(c_in, dim=-1)  # d/d(d, r, c): (B, n, C_in)
            g_t, g_s = (g_graph @ graph_w).split(c_in, dim=-1)  # d/d(t, s): (B, C_in)
            if mw is None:  # r_i = mean_j a_ij, c_j = mean_i a_ij, t = mean_i a_ii, s = mean_i r_i
                d_a = torch.add(((g_r + g_s[:, None] / n) / n)[:, :, None], (g_c / n)[:, None, :])
                d_a.diagonal(dim1=1, dim2=2).add_((g_d + g_t[:, None] / n).transpose(1, 2))
            else:  # the same with weights mw_j = m_j / (number of real nodes)
                g_r = g_r + mw[..., None] * g_s[:, None]
                d_a = torch.mul(g_r[:, :, None], mw[:, None, :, None]).addcmul_(g_c[:, None, :], mw[:, :, None, None])
                d_a.diagonal(dim1=1, dim2=2).add_((g_d + mw[..., None] * g_t[:, None]).transpose(1, 2))
            flat = d_a.view(-1, c_in)
            flat.addmm_(gf, w1)  # + W1^T g_ij
            flat.addmm_(gTf, w2)  # + W2^T g_ji
        return d_a, None, d_w1, d_w2, d_node_w, d_node_b, d_graph_w


class EdgeToEdge(nn.Module):
    r"""2→2 equivariant linear layer (15 basis elements; formula in the module docstring).

    Input (B, n, n, C_in), output (B, n, n, C_out). The 13 pooled basis elements are
    applied to the pooled terms before broadcasting; forward and backward make the few
    full-size passes counted in the module docstring (:class:`_EdgeToEdgeFunction`).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.lin_a = nn.Linear(in_channels, out_channels, bias=False)  # W1 (A_ij)
        self.lin_at = nn.Linear(in_channels, out_channels, bias=False)  # W2 (A_ji)
        self.node_lin = nn.Linear(3 * in_channels, 3 * out_channels)  # (d, r, c) -> diag, row (+b), col
        self.graph_lin = nn.Linear(2 * in_channels, 2 * out_channels, bias=False)  # (t, s) -> diag, all
        self.out_channels = out_channels

    def forward(self, a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_mask(mask, a.shape[0], a.shape[1])
        return _EdgeToEdgeFunction.apply(a, _mask_weights(mask, a.dtype), self.lin_a.weight, self.lin_at.weight,
                                         self.node_lin.weight, self.node_lin.bias, self.graph_lin.weight)


class EdgeToNode(nn.Module):
    r"""2→1 equivariant linear layer (5 basis elements).

    :math:`y_i = W_1 d_i + W_2 r_i + W_3 c_i + W_4 t + W_5 s + b`. Input (B, n, n, C_in),
    output (B, n, C_out).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.node_lin = nn.Linear(3 * in_channels, out_channels)
        self.graph_lin = nn.Linear(2 * in_channels, out_channels, bias=False)

    def forward(self, a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_mask(mask, a.shape[0], a.shape[1])
        d, r, c, t, s = edge_pool(a, mask)
        return self.node_lin(torch.cat([d, r, c], -1)) + self.graph_lin(torch.cat([t, s], -1))[:, None]


class MaskedInstanceNorm(nn.Module):
    r"""Instance norm over the node axis (``edges=False``, input (B, n, C)) or the pair axes
    (``edges=True``, input (B, n, n, C)), statistics over real nodes / pairs only.

    :math:`y = \gamma\,(x - \mu_b)/\sqrt{\sigma_b^2 + \epsilon} + \beta` with per-graph,
    per-channel :math:`\mu_b, \sigma_b`; equivariant, and padding never enters the statistics.
    """

    def __init__(self, channels: int, *, edges: bool = False, eps: float = 1e-5):
        super().__init__()
        self.edges = edges
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_mask(mask, x.shape[0], x.shape[1])
        dims = (1, 2) if self.edges else (1,)
        if mask is None:
            mu = x.mean(dims, keepdim=True)
            var = x.var(dims, keepdim=True, unbiased=False)
        else:
            m = mask.to(x.dtype)
            w = (m[:, :, None] * m[:, None, :]) if self.edges else m
            w = w[..., None]
            cnt = w.sum(dims, keepdim=True).clamp_min(1.0)
            mu = (x * w).sum(dims, keepdim=True) / cnt
            var = (((x - mu) ** 2) * w).sum(dims, keepdim=True) / cnt
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias
