"""The SO3LR adapter without its extra: runs in every install (needs no so3krates-torch)."""

import importlib.util
import sys

import pytest
import torch


def test_load_without_so3krates_names_the_extra(monkeypatch):
    """No so3krates-torch: ``load_so3lr`` raises the one-line ImportError naming the extra."""
    from invlatent.models import so3lr as adapter

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "so3krates_torch" else real(name, *a))
    for name in [m for m in sys.modules if m.split(".")[0] == "so3krates_torch"] + ["so3krates_torch"]:
        monkeypatch.setitem(sys.modules, name, None)
    want = r"^load_so3lr needs the 'so3lr' extra: pip install 'invlatent\[so3lr\]' \(missing: so3krates_torch\)$"
    with pytest.raises(ImportError, match=want) as err:
        adapter.load_so3lr()
    assert "\n" not in str(err.value)


def test_batch_needs_no_extra():
    """The input dict is plain torch: built without so3krates-torch or PyG."""
    from invlatent.models.so3lr import so3lr_batch

    pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [0.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True, True, False]])
    d = so3lr_batch(pos, torch.tensor([[8, 1, 1, 0]]), mask)
    assert d["positions"].shape == (3, 3) and d["node_attrs"].shape == (3, 118)
    assert d["node_attrs"].argmax(-1).tolist() == [7, 0, 0]       # one-hot of Z - 1
    assert d["edge_index"].shape == (2, 6) and d["edge_index_lr"].shape == (2, 6)
    assert d["batch"].tolist() == [0, 0, 0] and d["ptr"].tolist() == [0, 3]
    assert d["total_charge"].tolist() == [0.0] and d["head"].tolist() == [0]
