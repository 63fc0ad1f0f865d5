"""Checkpoint files: torch hub's cache, a download that never hangs, the sha256 check.

Checkpoints live where torchvision keeps them, ``<torch.hub.get_dir()>/checkpoints/<file>``
(honouring ``TORCH_HOME``). A file named ``<stem>-<hex>.<ext>`` must have a sha256 starting with
``<hex>`` (torchvision's convention), or equal to the full digest in :data:`KNOWN_SHA256`.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import urllib.parse

import torch

from ..errors import WeightsError

# Full sha256 where a public source gives it (several repositories pin this exact value); for other
# files torchvision only checks the prefix that is part of the file name.
KNOWN_SHA256 = {
    "resnet18-f37072fd.pth": "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
}
WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")  # what ``method.weights`` may name
_PROBE_TIMEOUT_S = 3.0  # connectivity check before a download, so offline machines fail fast
_READ_TIMEOUT_S = 30.0  # per-socket-operation timeout during a download


def cached_checkpoint(backbone: str, url: str) -> str:
    """Path of ``url``'s file in torch hub's checkpoint folder, downloading it if absent.

    Raises:
        WeightsError: absent and the download failed; the message gives the URL, the file name,
            the folder and the expected hash.
    """
    path = checkpoint_path(url)
    folder, fname = os.path.split(path)
    if not os.path.isfile(path):
        try:
            download(url, path, _hash_prefix(fname))
        except (OSError, RuntimeError) as err:
            raise WeightsError(
                f"ImageNet weights for {backbone!r} are missing and could not be downloaded "
                f"({type(err).__name__}: {err}). Get {url} and put it, named {fname}, in the "
                f"folder {folder} (set TORCH_HOME to move it); expected {_hash_text(fname)}. "
                "For time/memory runs `weights: random` needs no file.") from None
    return path


def checkpoint_path(url: str) -> str:
    """Where torch hub keeps ``url``'s file: ``<torch.hub.get_dir()>/checkpoints/<file>``."""
    fname = os.path.basename(urllib.parse.urlparse(url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", fname)  # torchvision's cache location


def check_hash(path: str) -> None:
    """Raise WeightsError if the file's sha256 contradicts its name (truncated or wrong file);
    a name without a hash part passes."""
    fname = os.path.basename(path)
    expected = KNOWN_SHA256.get(fname) or _hash_prefix(fname)
    digest = sha256_file(path)
    if not digest.startswith(expected):
        raise WeightsError(f"{path}: sha256 {digest} does not match the expected "
                           f"{_hash_text(fname)}; delete the file and fetch it again")


def download(url: str, path: str, hash_prefix: str) -> None:
    """torch.hub download with a quick reachability probe and a socket timeout (never hangs).

    Raises:
        OSError: host unreachable or the transfer failed; RuntimeError: hash mismatch.
    """
    host = urllib.parse.urlparse(url).hostname
    socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S).close()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_READ_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, path, hash_prefix=hash_prefix or None, progress=True)
    finally:
        socket.setdefaulttimeout(previous)


def _hash_prefix(fname: str) -> str:
    match = re.search(r"-([0-9a-f]{8,})\.", fname)
    return match.group(1) if match else ""


def _hash_text(fname: str) -> str:
    full = KNOWN_SHA256.get(fname)
    return f"sha256 {full}" if full else f"sha256 starts with {_hash_prefix(fname)}"


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, read without running code: ``safetensors`` for
    ``.safetensors``, else ``torch.load(weights_only=True)`` on the CPU. A checkpoint holding its
    state dict under ``state_dict`` or ``model`` (a training checkpoint) is unwrapped.

    Raises:
        WeightsError: unreadable, or not a mapping of names to tensors.
    """
    try:
        if path.lower().endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors' and torch's own errors for damaged or unsafe files
        raise WeightsError(f"{path}: cannot read it as weights only ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return state


def sha256_file(path: str) -> str:
    """Hex sha256 of the file ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
