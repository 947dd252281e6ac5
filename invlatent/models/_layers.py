"""The ``layers=`` argument of the adapters' feature captures, checked once for all of them."""

from __future__ import annotations

from typing import Sequence

from .._validation import describe


def check_layer_names(layers, names: list[str], lister: str) -> list[str]:
    """``layers`` (``None`` for all, one name, or a sequence of names from ``names``) as a list in
    forward order; ``lister`` names the function that lists them (for the error message)."""
    if layers is None:
        return list(names)
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Sequence) or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers must be a str or a sequence of str from {lister} = {names}, got {describe(layers)}")
    for layer in layers:
        if layer not in names:
            raise ValueError(f"layers must be names from {lister} = {names}, got {layer!r}")
    return [n for n in names if n in layers]
