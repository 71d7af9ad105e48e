"""Where models come from: checkpoint dirs, training work dirs and the Hugging Face Hub.

The Hub is tested without a network: push_to_hub runs with only HfApi's two network calls
replaced by copies into a local folder, and loading reads a hub cache laid out as
huggingface_hub writes it, with HF_HUB_OFFLINE=1, so its real download code runs.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import save_file

import nrdseg
from nrdseg.checkpoint.format import CONFIG_FILE, WEIGHTS_FILE
from nrdseg.checkpoint.work_dir import write_best, write_checkpoint
from tests.engine_fixtures import training_state
from tests.tiny_checkpoints import tiny_model

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


class _Remote:
    """Stands in for the Hub's storage: what upload_folder would have sent, per repo."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[tuple[str, bool | None]] = []

    def create_repo(self, repo_id, *, private=None, exist_ok=False, **_):
        assert exist_ok
        self.created.append((repo_id, private))

    def upload_folder(self, *, repo_id, folder_path, **_):
        shutil.copytree(folder_path, self.root / repo_id, dirs_exist_ok=True)
        return f"commit to {repo_id}"


def _as_hub_cache(repo: Path, cache: Path, repo_id: str) -> Path:
    """Lay ``repo`` out as huggingface_hub's cache: models--org--name/snapshots/<rev>."""
    entry = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(repo, entry / "snapshots" / REVISION)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(REVISION)
    return entry / "snapshots" / REVISION


class _Trap:
    """Unpickling this writes a marker file: proof that a pickle was (not) loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "unpickled"))


def test_push_then_pull_through_the_hub_cache_offline(model, tmp_path, monkeypatch):
    remote = _Remote(tmp_path / "remote")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", remote.create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", remote.upload_folder)
    assert model.push_to_hub("org/tiny", private=True) == "commit to org/tiny"
    assert remote.created == [("org/tiny", True)]
    pushed = tmp_path / "remote" / "org" / "tiny"
    assert sorted(p.name for p in pushed.iterdir()) == ["README.md", CONFIG_FILE, WEIGHTS_FILE]
    assert 'nrdseg.load_model("hf://org/tiny")' in (pushed / "README.md").read_text()

    snapshot = _as_hub_cache(pushed, tmp_path / "hub", "org/tiny")
    marker = tmp_path / "unpickled"
    for name in ("pytorch_model.bin", "training_state.pt"):  # never to be loaded
        (snapshot / name).write_bytes(pickle.dumps(_Trap(str(marker))))
    images = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        save_file({"images": images, "logits": model(images)}, str(tmp_path / "io.safetensors"))
    script = textwrap.dedent(
        f"""
        import torch
        from safetensors.torch import load_file
        import nrdseg
        torch.set_num_threads({torch.get_num_threads()})  # the parent's: bit-identical sums
        io = load_file({str(tmp_path / "io.safetensors")!r})
        for model in (nrdseg.load_model("hf://org/tiny"),
                      nrdseg.load_model("hf://org/tiny@main")):
            assert model.meta["classes"][0] == "class0"
            with torch.no_grad():
                torch.testing.assert_close(model(io["images"]), io["logits"], rtol=0, atol=0)
        print("pulled")
        """
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(nrdseg.__file__).parents[1]), *sys.path])
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pulled" in result.stdout
    assert not marker.exists()


def test_missing_huggingface_hub_is_explained(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r"pip install 'nrdseg\[hub\]'"):
        model.push_to_hub("org/tiny")
    with pytest.raises(ImportError, match=r"pip install 'nrdseg\[hub\]'"):
        nrdseg.load_model("hf://org/tiny")


def test_an_org_name_path_is_local_only_hf_goes_to_the_hub(model, tmp_path, monkeypatch):
    model.save_pretrained(tmp_path / "org" / "tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # any hub call would fail
    loaded = nrdseg.load_model("org/tiny")
    assert torch.equal(
        loaded.state_dict()["decoder.controller.1.weight"],
        model.state_dict()["decoder.controller.1.weight"],
    )


def _work_dir(root: Path, model, *, best: bool) -> Path:
    """A training run's layout, written by the trainer's own checkpoint functions."""
    for iteration in (100, 200):
        write_checkpoint(root, model=model, state=training_state(iteration))
    if best:
        write_best(root, model=model, result={"mIoU": 0.5})
    return root


def test_work_dir_loads_best_else_latest(model, tmp_path):
    with_best = _work_dir(tmp_path / "a", model, best=True)
    (with_best / "checkpoints" / "iter_000200" / WEIGHTS_FILE).unlink()  # best/ must be read
    assert isinstance(nrdseg.load_model(with_best), nrdseg.Segmentor)
    without = _work_dir(tmp_path / "b", model, best=False)
    shutil.rmtree(without / "checkpoints" / "iter_000100")  # latest must be read
    loaded = nrdseg.load_model(without)
    torch.testing.assert_close(loaded.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_a_work_dir_with_a_dangling_latest_is_explained(model, tmp_path):
    broken = _work_dir(tmp_path / "run", model, best=False)
    (broken / "checkpoints" / "latest").write_text("iter_999999")
    with pytest.raises(FileNotFoundError, match=r"latest names iter_999999"):
        nrdseg.load_model(broken)
