"""Modules validate their input once and call the unchecked private implementations.

Every public projection function validates its arguments; its Module form checks the input in
``forward`` (or the constructor) and then calls the private ``_x`` implementation, never the
public function again. Checked here by making the public functions fail: the modules still work
and give the same result as the functions.
"""

import pytest
import torch

import invlatent
from invlatent.data.qm9 import load_qm9
from invlatent.models.graph_vae import GraphVAE
from invlatent.projections import (Bispectrum, Chunked, FrameAveraging, GramMDSProjection, LatentFrameCanonicalization,
                                   LexSortProjection, MaxFilter, PCACanonicalization, PowerSpectrum, RelativeProjection,
                                   ReynoldsProjection, SortProjection)

IRREPS = "2x0e + 4x1o + 1x2e"
_g = torch.Generator().manual_seed(0)
Z = torch.randn(5, 6, 2, generator=_g)
MASK = torch.rand(5, 6, generator=_g) > 0.3
ZC = torch.randn(4, 3, 8, generator=_g)
ZI = torch.randn(4, 19, generator=_g, dtype=torch.float64)
PTS = torch.randn(4, 6, 3, generator=_g, dtype=torch.float64)
ANCHORS = torch.randn(3, 7, generator=_g)
ZR = torch.randn(4, 7, generator=_g)
P = invlatent.Permutation()

# (module, inputs, the public functions of invlatent.projections it must not call)
CASES = {
    "sort": (SortProjection(), (Z, MASK), ["_sort.sort_projection"]),
    "lexsort": (LexSortProjection(), (Z, MASK), ["_sort.lexsort_projection"]),
    "power": (PowerSpectrum(), (ZC,), ["_spectral.power_spectrum"]),
    "bispectrum": (Bispectrum(full=True), (ZC,), ["_spectral.bispectrum"]),
    "relative": (RelativeProjection(ANCHORS), (ZR,), ["_relative.relative_projection"]),
    "gram_mds": (GramMDSProjection(IRREPS), (ZI,), ["_relative.gram_mds_projection", "_relative.gram_mds"]),
    "pca": (PCACanonicalization(IRREPS), (ZI, PTS), ["_frames.canonicalize", "_frames.pca_frame",
                                                     "_frames.apply_rotation"]),
    "frame_avg": (FrameAveraging(IRREPS, proper=False), (ZI, PTS), ["_frames.frame_average", "_frames.frame_set",
                                                                     "_frames.apply_rotation"]),
    "latent_frame": (LatentFrameCanonicalization(IRREPS), (ZI,), ["_frames.canonicalize", "_frames.latent_frame",
                                                                  "_frames.pca_frame", "_frames.apply_rotation"]),
    "chunked": (Chunked(SortProjection(), chunk_size=2), (Z,), ["_streaming.project_in_chunks",
                                                                 "_sort.sort_projection"]),
    "max_filter": (MaxFilter(P, (6, 2), n_out=4), (Z,), ["_maxfilter.max_filter"]),
    "reynolds": (ReynoldsProjection(P, (6, 2), n_out=4), (Z,), ["_reynolds.reynolds_projection"]),
}


def _fail(*args, **kwargs):
    raise AssertionError("a Module called the public (validating) function")


@pytest.mark.parametrize("name", list(CASES))
def test_forward_calls_the_private_implementation(name, monkeypatch):
    module, inputs, public = CASES[name]
    expected = module(*inputs)
    for target in public:
        monkeypatch.setattr(f"invlatent.projections.{target}", _fail)
    # exact: the same private implementation as before, on the same input
    assert torch.equal(module(*inputs), expected)


def test_graph_vae_forward_decodes_without_checking_its_own_codes(monkeypatch):
    d = load_qm9(limit=8).dense()
    torch.manual_seed(0)
    vae = GraphVAE(hidden=8, depth=1)
    expected = vae.loss(d["x"], d["adj"], d["mask"], sample=False)
    monkeypatch.setattr(GraphVAE, "decode", _fail)  # the public, checking method
    out = vae.loss(d["x"], d["adj"], d["mask"], sample=False)
    assert all(torch.equal(out[k], expected[k]) for k in expected)
    vae.reconstruct(d["x"], d["adj"], d["mask"])


def test_modules_still_check_their_input():
    with pytest.raises(ValueError, match=r"z must have shape \(B, 7\)"):
        RelativeProjection(ANCHORS)(torch.zeros(4, 6))
    with pytest.raises(ValueError, match=r"points must have shape \(B, n, 3\) with B = 4"):
        PCACanonicalization(IRREPS)(ZI, PTS[:3])
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        Chunked(SortProjection())([1.0])
    with pytest.raises(TypeError, match="mask"):
        SortProjection()(Z, MASK.float())
    with pytest.raises(ValueError, match="9 node slots"):
        vae = GraphVAE(hidden=8, depth=1, decoder="sort-mlp", decoder_width=16)
        x = torch.nn.functional.one_hot(torch.zeros(2, 7, dtype=torch.long), 4).float()
        vae.loss(x, torch.zeros(2, 7, 7, 3), torch.ones(2, 7, dtype=torch.bool))
