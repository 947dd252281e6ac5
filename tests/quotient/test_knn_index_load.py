"""QuotientIndex.load of a bad file: empty, truncated, corrupted or inconsistent files raise a
ValueError that names the file (not zipfile.BadZipFile, EOFError, or an IndexError at search)."""

import re
import zipfile

import numpy as np
import pytest
import torch

from invlatent.quotient import QuotientIndex

pytest.importorskip("faiss")


@pytest.fixture()
def saved(tmp_path):
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(60, 5, 2, generator=g, dtype=torch.float64)
    ix = QuotientIndex("flat")
    ix.add(Z)
    path = tmp_path / "index.npz"
    ix.save(path)
    return path, Z


def names(path):
    return re.escape(str(path))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=names(path)):
        QuotientIndex.load(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_file(saved, tmp_path, keep):
    path, _ = saved
    raw = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[:int(len(raw) * keep)])
    with pytest.raises(ValueError, match=names(cut)):
        QuotientIndex.load(cut)


def test_corrupted_file(saved, tmp_path):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:  # overwrite bytes inside the stored latents
        info = zf.getinfo("Z.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    raw[start:start + 64] = bytes(range(64))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=names(bad)):
        QuotientIndex.load(bad)
    noise = tmp_path / "noise.npz"  # not a zip file at all
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=names(noise)):
        QuotientIndex.load(noise)


def test_missing_file_is_not_a_value_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        QuotientIndex.load(tmp_path / "nowhere.npz")


def _rewrite(path, out, **changes):
    with np.load(path, allow_pickle=False) as data:
        parts = {key: data[key] for key in data.files}
    parts.update(changes)
    with open(out, "wb") as fh:
        np.savez(fh, **parts)


def test_latents_and_index_disagree(saved, tmp_path):
    path, Z = saved
    with np.load(path) as data:
        stored = data["Z"]
    fewer = tmp_path / "fewer.npz"  # 10 latents fewer than the FAISS index holds
    _rewrite(path, fewer, Z=stored[:-10])
    with pytest.raises(ValueError, match=names(fewer) + r".*holds 60 embeddings"):
        QuotientIndex.load(fewer)
    more = tmp_path / "more.npz"  # more latents than embeddings: search would index past the end
    _rewrite(path, more, Z=np.concatenate([stored, stored[:5]]))
    with pytest.raises(ValueError, match=names(more)):
        QuotientIndex.load(more)
    nodes = tmp_path / "nodes.npz"  # other node count: the embedding dimension disagrees
    _rewrite(path, nodes, Z=stored[:, :4])
    with pytest.raises(ValueError, match=names(nodes)):
        QuotientIndex.load(nodes)
    dirs = tmp_path / "dirs.npz"  # directions of another channel count
    with np.load(path) as data:
        W = data["W"]
    _rewrite(path, dirs, W=np.concatenate([W, W[:1]]))
    with pytest.raises(ValueError, match=names(dirs)):
        QuotientIndex.load(dirs)
    meta = tmp_path / "meta.npz"  # meta that is not JSON
    _rewrite(path, meta, meta=np.array("{not json"))
    with pytest.raises(ValueError, match=names(meta)):
        QuotientIndex.load(meta)


def test_good_file_still_loads(saved):
    path, Z = saved
    ix = QuotientIndex.load(path)
    d, i = ix.search(Z[:3], 1)
    assert i[:, 0].tolist() == [0, 1, 2] and float(d.abs().max()) < 1e-6
