"""Hugging Face Hub: pull a checkpoint (never a pickle); the card ``push_to_hub`` uploads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import nrdseg
from nrdseg.checkpoint import CONFIG_FILE, HUB_PREFIX, WEIGHTS_FILE
from nrdseg.deploy.optional import optional_import

if TYPE_CHECKING:
    from nrdseg.models.segmentor import Segmentor


def download_checkpoint(repo_id: str, *, revision: str | None = None) -> Path:
    """Fetch only config.yaml + model.safetensors of ``repo_id`` (cached) and return their dir.

    Other files in the repository (pickles included) are never downloaded, let alone loaded.
    """
    hub = optional_import("huggingface_hub", extra="hub")
    options = {"library_name": "nrdseg", "library_version": nrdseg.__version__}
    config = Path(hub.hf_hub_download(repo_id, CONFIG_FILE, revision=revision, **options))
    # The weights of the very commit the config came from, even if the branch moves on.
    commit = config.parent.name
    hub.hf_hub_download(repo_id, WEIGHTS_FILE, revision=commit, **options)
    return config.parent


def model_card(model: Segmentor, repo_id: str) -> str:
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
