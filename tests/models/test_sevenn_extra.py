"""The SevenNet adapter without its extra: runs in every install (needs neither sevenn nor PyG)."""

import importlib.util
import sys

import pytest
import torch


def test_sevenn_batch_without_torch_geometric_names_the_extra(monkeypatch):
    """A core-only install: ``sevenn_batch`` raises the one-line ImportError naming the extra,
    not ``ModuleNotFoundError: torch_geometric``."""
    from invlatent.models import sevenn as adapter

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "torch_geometric" else real(name, *a))
    for name in [m for m in sys.modules if m.split(".")[0] == "torch_geometric"] + ["torch_geometric"]:
        monkeypatch.setitem(sys.modules, name, None)  # import torch_geometric... -> ImportError
    pos = torch.zeros(1, 3, 3)
    want = (r"^sevenn_batch needs the 'models' extra: pip install 'invlatent\[models\]' "
            r"\(missing: torch_geometric\)$")
    with pytest.raises(ImportError, match=want) as err:
        adapter.sevenn_batch(pos, torch.tensor([[8, 1, 1]]))
    assert "\n" not in str(err.value)
