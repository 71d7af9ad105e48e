"""Hugging Face Hub: pull a checkpoint (config and safetensors, never a pickle) and push one.

Needs ``nrdseg[hub]`` (huggingface_hub). ``hf://org/name[@revision]`` names a Hub
checkpoint wherever a checkpoint path is taken.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from nrdseg.checkpoint.format import CONFIG_FILE, WEIGHTS_FILE, write_model_files
from nrdseg.utils.optional import optional_import
from nrdseg.utils.version import __version__

HUB_PREFIX = "hf://"


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
