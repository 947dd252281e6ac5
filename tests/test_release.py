"""Release promises: version in one place, package data declared, no made-up addresses."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Every web address the repository names, each checked by hand to exist. Adding an address to
#: a file means adding it here, after checking it (no placeholder or not-yet-existing addresses).
KNOWN_ADDRESSES = {
    "https://download.pytorch.org/whl/cpu",
}


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_is_the_same_in_pyproject_and_package():
    import invlatent

    assert invlatent.__version__ == _pyproject()["project"]["version"]


def test_weights_are_declared_package_data():
    data = _pyproject()["tool"]["setuptools"]["package-data"]["invlatent"]
    assert {"weights/*.safetensors", "weights/SHA256SUMS"} <= set(data)


def test_no_file_names_an_unchecked_address():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = {}
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".safetensors", ".png", ".jpg"}:
            continue
        text = path.read_text(errors="ignore")
        for url in re.findall(r"(?:https?|git\+https?|ssh)://[^\s\"'<>)`\]]+", text):
            if "<" in url or url.endswith("://"):
                continue
            found.setdefault(url.rstrip(".,;:"), name)
    # loopback addresses name this machine (e.g. a proxy nobody listens on, to block network)
    unknown = {u: f for u, f in found.items()
               if u not in KNOWN_ADDRESSES and not re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", u)}
    assert not unknown, f"addresses not known to exist (check them, then add to KNOWN_ADDRESSES): {unknown}"
