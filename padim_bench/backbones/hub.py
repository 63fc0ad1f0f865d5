"""Pretrained files on the Hugging Face hub (timm's ``timm/<model>.<tag>`` repositories), found in
the hub's own cache (``HF_HOME`` / ``HF_HUB_CACHE``) or downloaded there; never a hang offline."""

from __future__ import annotations

import os
import socket

from ..errors import WeightsError

FILENAMES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub loader looks for, in order
_PROBE_TIMEOUT_S = 3.0


def cache_folder(repo_id: str) -> str:
    """Where the hub keeps ``repo_id``'s files (``<HF_HUB_CACHE>/models--<org>--<name>``)."""
    from huggingface_hub import constants
    return os.path.join(constants.HF_HUB_CACHE, "models--" + repo_id.replace("/", "--"))


def cached_file(repo_id: str) -> str | None:
    """The cached weights file of ``repo_id`` (``model.safetensors`` first), or ``None``."""
    from huggingface_hub import try_to_load_from_cache
    for fname in FILENAMES:
        path = try_to_load_from_cache(repo_id, fname)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def hub_file(backbone: str, repo_id: str) -> str:
    """The local weights file of hub repository ``repo_id``, downloading it if absent and online.

    Raises:
        WeightsError: not cached and not downloadable; the message names the model, the file
            expected and the cache folder.
    """
    path = cached_file(repo_id)
    if path is not None:
        return path
    try:
        socket.create_connection(("huggingface.co", 443), timeout=_PROBE_TIMEOUT_S).close()
        from huggingface_hub import hf_hub_download
        return hf_hub_download(repo_id, FILENAMES[0])
    except Exception as err:  # offline (OSError), or the hub's own HTTP / not-found errors
        raise WeightsError(
            f"ImageNet weights for backbone {backbone!r} are not cached and could not be downloaded "
            f"({type(err).__name__}: {err}). Expected file {FILENAMES[0]} (or {FILENAMES[1]}) of hub "
            f"repository {repo_id} under {cache_folder(repo_id)} (set HF_HOME to move the cache), "
            "or give a local file: `method.weights: /path/model.safetensors`. For time/memory runs "
            "`weights: random` needs no file.") from None
