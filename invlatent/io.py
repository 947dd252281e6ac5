"""Checkpoints as safetensors, with metadata and checksums; train-or-load.

Weights are never unpickled: :func:`save_checkpoint` writes a ``.safetensors`` file
(tensors plus string metadata) and :func:`load_checkpoint` reads it back.

Weights shipped with the package are package data in ``invlatent/weights/`` (found with
:mod:`importlib.resources`, so an editable install, a wheel and a Colab install find the same
files); each one is verified against the SHA-256 recorded in ``weights/SHA256SUMS`` before it
is trusted (:func:`verify_shipped_weights` checks them all).

Example
-------
>>> import tempfile, os, torch
>>> m = torch.nn.Linear(3, 2)
>>> path = os.path.join(tempfile.mkdtemp(), "lin.safetensors")
>>> save_checkpoint(path, m, metadata={"epoch": 3})
>>> m2 = torch.nn.Linear(3, 2)
>>> meta = load_checkpoint(path, m2)
>>> meta["epoch"], torch.equal(m.weight, m2.weight)
('3', True)
"""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path
from typing import Callable, Mapping

import torch
from safetensors.torch import load_file, save_file

from .utils import sha256_file

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "train_or_load",
    "recorded_sha256",
    "shipped_weight_names",
    "verify_shipped_weights",
    "WEIGHTS_DIR",
    "CHECKPOINT_DIR",
]

#: Largest shipped weight file, in bytes (the wheel must stay small).
MAX_SHIPPED_BYTES = 5 * 2**20


def _weights_dir() -> Path:
    # importlib.resources finds package data wherever the package was installed from
    # (source tree, editable install, wheel in site-packages); safetensors needs real files.
    res = importlib.resources.files("invlatent") / "weights"
    path = Path(str(res))
    if not path.is_dir():
        raise FileNotFoundError(
            f"invlatent's shipped weights are not a folder on disk ({res!r}); "
            "install invlatent as files (pip install, not a zipped import)"
        )
    return path


#: Folder of the weights shipped inside the package (``invlatent/weights``, package data).
#: Which profile each file was trained at is in its name and in ``weights/README.md``.
WEIGHTS_DIR = _weights_dir()
#: Former name of :data:`WEIGHTS_DIR`, kept so existing code keeps working.
CHECKPOINT_DIR = WEIGHTS_DIR


def save_checkpoint(
    path: str | os.PathLike,
    module: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    metadata: Mapping[str, object] | None = None,
) -> None:
    """Write ``module``'s state (and optionally ``optimizer``'s tensors) as safetensors.

    Metadata values are stored as strings (safetensors metadata is ``str -> str``).
    The optimizer's non-tensor state (hyper-parameters, step counts) is stored as JSON
    in the metadata under ``"__optimizer__"``.
    """
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    if optimizer is not None:
        sd = optimizer.state_dict()
        plain = {"param_groups": sd["param_groups"], "state": {}}
        for pid, st in sd["state"].items():
            plain["state"][str(pid)] = {}
            for key, val in st.items():
                if torch.is_tensor(val):
                    tensors[f"optim.{pid}.{key}"] = val.detach().contiguous().cpu()
                else:
                    plain["state"][str(pid)][key] = val
        meta["__optimizer__"] = json.dumps(plain)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | os.PathLike,
    module: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    sha256: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, str]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``module``; return its metadata.

    If ``sha256`` is given the file is verified first and a ``ValueError`` is raised on
    mismatch (a corrupt or substituted file is never loaded).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise ValueError(f"checkpoint {path} has SHA-256 {got}, expected {sha256}")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    tensors = load_file(str(path), device=str(map_location))
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    module.load_state_dict(state)
    if optimizer is not None and "__optimizer__" in meta:
        plain = json.loads(meta["__optimizer__"])
        sd = {"param_groups": plain["param_groups"], "state": {}}
        for pid, st in plain["state"].items():
            entry = dict(st)
            prefix = f"optim.{pid}."
            for k, v in tensors.items():
                if k.startswith(prefix):
                    entry[k[len(prefix):]] = v
            sd["state"][int(pid)] = entry
        optimizer.load_state_dict(sd)
    meta.pop("__optimizer__", None)
    return meta


def recorded_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 recorded for a shipped checkpoint in ``SHA256SUMS`` beside it.

    Raises ``ValueError`` if the folder has no ``SHA256SUMS`` or the file is not listed: a
    shipped checkpoint is trusted only with a recorded checksum.
    """
    path = Path(path)
    sums = path.parent / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == path.name:
                return parts[0]
    raise ValueError(f"shipped checkpoint {path} has no checksum recorded in {sums}; "
                     f"add one with: sha256sum {path.name} >> SHA256SUMS")


def shipped_weight_names(folder: str | os.PathLike | None = None) -> list[str]:
    """Names of the weight files recorded in ``SHA256SUMS`` of ``folder`` (default :data:`WEIGHTS_DIR`)."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return []
    names = []
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            names.append(parts[1].lstrip("*"))
    return names


def verify_shipped_weights(folder: str | os.PathLike | None = None) -> dict[str, str]:
    """Check every shipped weight file; return ``{name: sha256}``.

    Each file in ``folder`` (default :data:`WEIGHTS_DIR`) other than ``SHA256SUMS`` and
    ``README.md`` must be a ``.safetensors`` file listed in ``SHA256SUMS``, match its recorded
    SHA-256, be at most :data:`MAX_SHIPPED_BYTES` and hold model tensors only (keys
    ``model.*``, no optimizer state); every listed file must exist. Reads files only (no
    network). Raises ``ValueError`` naming the first file that fails.

    Example
    -------
    >>> sums = verify_shipped_weights()
    >>> all(len(h) == 64 for h in sums.values())
    True
    """
    from safetensors import safe_open

    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    listed = shipped_weight_names(folder)
    present = sorted(p.name for p in folder.iterdir()
                     if p.is_file() and p.name not in ("SHA256SUMS", "README.md") and not p.name.startswith("."))
    for name in present:
        if not name.endswith(".safetensors"):
            raise ValueError(f"{folder / name}: only .safetensors files may be shipped in {folder}")
        if name not in listed:
            raise ValueError(f"{folder / name} is not listed in {folder / 'SHA256SUMS'}; "
                             f"add it with: sha256sum {name} >> SHA256SUMS")
    out = {}
    for name in listed:
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{folder / 'SHA256SUMS'} lists {name}, which does not exist")
        size = path.stat().st_size
        if size > MAX_SHIPPED_BYTES:
            raise ValueError(f"{path} has {size} bytes, more than the {MAX_SHIPPED_BYTES} allowed")
        got = sha256_file(path)
        if got != recorded_sha256(path):
            raise ValueError(f"{path} has SHA-256 {got}, not the one recorded in SHA256SUMS")
        with safe_open(str(path), framework="pt") as fh:
            keys = list(fh.keys())
            meta = dict(fh.metadata() or {})
        bad = [k for k in keys if not k.startswith("model.")]
        if bad or "__optimizer__" in meta or not keys:
            raise ValueError(f"{path} must hold model tensors only (keys 'model.*', no optimizer state); "
                             f"found {bad[:3] or 'no tensors'}")
        out[name] = got
    return out


def train_or_load(
    name: str,
    module: torch.nn.Module,
    train_fn: Callable[[torch.nn.Module], Mapping[str, object] | None],
    *,
    shipped: str | os.PathLike | None = None,
    shipped_sha256: str | None = None,
    cache: str | os.PathLike | None = None,
    config: Mapping[str, object] | None = None,
    retrain: bool = False,
) -> tuple[torch.nn.Module, dict[str, str]]:
    """Return ``module`` with trained weights, training only when no checkpoint exists.

    Order: a shipped checkpoint (verified by ``shipped_sha256``, by default the checksum
    recorded in ``SHA256SUMS`` beside it, see :func:`recorded_sha256`) if given and present;
    else the cache file ``cache`` if present; else ``train_fn(module)`` is called, its
    returned metadata saved with the weights to the cache. ``retrain=True`` skips both.

    The default cache file is ``<cache_dir>/checkpoints/<name>-<profile>-<hash>.safetensors``:
    the active profile and a fingerprint of ``config`` (the architecture and training
    settings, JSON-serialisable) are part of the key, so weights trained at the smoke profile
    or with other settings are never mistaken for these.
    The returned metadata has ``"source"`` set to ``"shipped"``, ``"cache"`` or ``"trained"``.
    """
    import hashlib

    from .profiles import get_profile
    from .utils import cache_dir

    if not retrain and shipped is not None and Path(shipped).is_file():
        if shipped_sha256 is None:
            shipped_sha256 = recorded_sha256(shipped)
        meta = load_checkpoint(shipped, module, sha256=shipped_sha256)
        meta["source"] = "shipped"
        return module, meta
    if cache is not None:
        cache_path = Path(cache)
    else:
        key = json.dumps(dict(config or {}), sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        cache_path = cache_dir("checkpoints") / f"{name}-{get_profile()}-{digest}.safetensors"
    if not retrain and cache_path.is_file():
        meta = load_checkpoint(cache_path, module)
        meta["source"] = "cache"
        return module, meta
    meta_in = train_fn(module) or {}
    save_checkpoint(cache_path, module, metadata=meta_in)
    meta = {str(k): str(v) for k, v in meta_in.items()}
    meta["source"] = "trained"
    return module, meta
