"""Which checkpoint directory a path means: the one resolver behind every command.

``load_model``, ``init_from``, ``nrdseg eval``, ``predict`` and ``export`` all take the same
three kinds of path, and this module alone turns them into a checkpoint directory.
"""

from __future__ import annotations

from pathlib import Path

from nrdseg.checkpoint.format import CONFIG_FILE, WEIGHTS_FILE
from nrdseg.checkpoint.hub import HUB_PREFIX, download_checkpoint
from nrdseg.checkpoint.work_dir import BEST, CHECKPOINTS, LATEST, latest_checkpoint, run_config_file
from nrdseg.utils.paths import relative_note


def checkpoint_directory(path: str | Path) -> Path:
    """The checkpoint directory ``path`` names.

    - ``hf://org/name[@revision]``: a Hub download (config and safetensors only; needs
      ``nrdseg[hub]``);
    - a checkpoint directory (``config.yaml`` + ``model.safetensors``): itself (a folder
      with either file is returned as is, and loading then says what is wrong with it);
    - a training work dir: its ``best/``, else its latest checkpoint.

    FileNotFoundError for a path that does not exist, a work dir without a checkpoint yet
    (saying so) and a folder that is neither.
    """
    if str(path).startswith(HUB_PREFIX):
        repo_id, _, revision = str(path)[len(HUB_PREFIX) :].partition("@")
        return download_checkpoint(repo_id, revision=revision or None)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: not found{relative_note(path)}; expected a checkpoint directory or a work dir"
        )
    record = (path / CONFIG_FILE).is_file() and run_config_file(path) is None
    if (path / WEIGHTS_FILE).is_file() or record:
        return path
    if (path / BEST / WEIGHTS_FILE).is_file():
        return path / BEST
    latest = latest_checkpoint(path) if path.is_dir() else None
    if latest is not None:
        return latest
    if run_config_file(path) is not None:
        raise FileNotFoundError(
            f"{path} is a training work dir without a checkpoint yet (no {BEST}/ or "
            f"{CHECKPOINTS}/{LATEST}): wait for its first checkpoint or evaluation"
        )
    raise FileNotFoundError(
        f"{path}: not a checkpoint directory (no {CONFIG_FILE} + {WEIGHTS_FILE}), nor a work dir with "
        f"{BEST}/ or {CHECKPOINTS}/{LATEST}"
    )


def weights_path(path: str | Path) -> Path:
    """The weights file ``path`` means: a file as is (safetensors or a torch checkpoint),
    anything else through :func:`checkpoint_directory` to its ``model.safetensors``."""
    if not str(path).startswith(HUB_PREFIX) and Path(path).is_file():
        return Path(path)
    if not str(path).startswith(HUB_PREFIX) and not Path(path).exists():
        raise FileNotFoundError(
            f"{path}: weights not found{relative_note(path)}; expected a weights file "
            "(safetensors or a torch checkpoint), a checkpoint directory or a work dir"
        )
    return checkpoint_directory(path) / WEIGHTS_FILE
