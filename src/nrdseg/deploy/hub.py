"""Hugging Face Hub: push a checkpoint directory, pull one back (never a pickle)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nrdseg
from nrdseg.checkpoint import CONFIG_FILE, HUB_PREFIX, WEIGHTS_FILE, write_model_files
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


def push_to_hub(
    model: Segmentor,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload nrdseg model",
) -> Any:
    """Create ``repo_id`` if needed and upload config.yaml, model.safetensors and a card."""
    hub = optional_import("huggingface_hub", extra="hub")
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nrdseg-push-") as tmp:
        folder = Path(tmp)
        write_model_files(model, folder)
        (folder / "README.md").write_text(model_card(model, repo_id))
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message,
        )
