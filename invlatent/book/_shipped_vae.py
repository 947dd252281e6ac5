r"""The shipped graph VAE, rebuilt from the architecture recorded in its own weight file.

A shipped weight file (``invlatent/weights/graph_vae_c{c}.safetensors``) records the
:class:`~invlatent.models.graph_vae.GraphVAE` arguments it was trained with in its metadata.
:func:`load_shipped_graph_vae` reads them, builds the model and loads the weights, checked
against the SHA-256 recorded in ``SHA256SUMS``, at every profile (no training, no data). The
landing page uses it for its teaser figure: codes of a few molecules in many node orders.

Example
-------
>>> vae, meta = load_shipped_graph_vae(1)
>>> vae.latent_channels, meta["decoder"]
(1, 'sort-autoregressive')
"""

from __future__ import annotations

import torch

__all__ = ["load_shipped_graph_vae"]

#: GraphVAE arguments the weight files record (all integers except ``decoder``).
_INT_ARGS = ("latent_channels", "hidden", "depth", "decoder_depth", "n_atom_types",
             "n_bond_types", "n_nodes", "decoder_width")


def load_shipped_graph_vae(c: int = 1, *, device: torch.device | str | None = None
                           ) -> tuple[torch.nn.Module, dict[str, str]]:
    r"""The shipped graph VAE with ``c`` latent channels per node, in eval mode.

    Parameters
    ----------
    c : int
        Latent channels per node: a file ``graph_vae_c{c}.safetensors`` must be shipped
        (the book ships :math:`c \in \{1, 2, 4\}`).
    device : torch.device or str, optional
        Where the model is placed (default CPU).

    Returns
    -------
    (GraphVAE, dict)
        The model (encoder input: dense graphs ``x`` ``(B, n, 4)``, ``adj`` ``(B, n, n, 3)``,
        ``mask`` ``(B, n)``; node codes ``(B, n, c)``) and the file's metadata (strings).
    """
    from safetensors import safe_open

    from ..io import WEIGHTS_DIR, load_checkpoint, recorded_sha256
    from ..models.graph_vae import GraphVAE

    if isinstance(c, bool) or not isinstance(c, int):
        raise TypeError(f"c must be an int, got {type(c).__name__}")
    path = WEIGHTS_DIR / f"graph_vae_c{c}.safetensors"
    if not path.is_file():
        shipped = sorted(p.name for p in WEIGHTS_DIR.glob("graph_vae_c*.safetensors"))
        raise ValueError(f"c={c}: no shipped weights {path.name}; shipped: {shipped}")
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    args = {k: int(meta[k]) for k in _INT_ARGS if k in meta}
    model = GraphVAE(decoder=meta.get("decoder", "sort-autoregressive"), **args)
    load_checkpoint(path, model, sha256=recorded_sha256(path))
    return model.to(device or "cpu").eval(), meta
