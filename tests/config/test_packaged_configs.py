"""The config zoo ships with the package and is found by name from anywhere (issue 23)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nrdseg.cli import main
from nrdseg.config.packaged import CONFIG_ROOT, config_names, find_config, get_config_file
from nrdseg.config.run import load_config

REPO = Path(__file__).resolve().parents[2]


def test_names_read_with_or_without_the_configs_prefix_and_the_suffix():
    path = CONFIG_ROOT / "cityscapes" / "nrd_r50.yaml"
    for name in (
        "cityscapes/nrd_r50.yaml",
        "configs/cityscapes/nrd_r50.yaml",
        "cityscapes/nrd_r50",
    ):
        assert get_config_file(name) == path
    assert {"studies/camvid.yaml", "studies/synthetic.yaml", "cityscapes/nrd_r50.yaml"} <= set(
        config_names()
    )
    assert not [name for name in config_names() if name.startswith("_base_")]


def test_an_unknown_name_is_refused_with_the_closest_one():
    with pytest.raises(FileNotFoundError, match=r"did you mean cityscapes/nrd_r50\.yaml\?"):
        get_config_file("cityscapes/nrd_r5O.yaml")
    with pytest.raises(FileNotFoundError, match="no packaged config"):
        get_config_file("../config/run.py")  # nothing outside the zoo


def test_a_packaged_config_loads_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("configs/studies/camvid.yaml", {"train.iters": 3})
    assert config.model.options["backbone"] == "efficientnet_lite0" and config.train.iters == 3
    assert load_config("cityscapes/nrd_r50.yaml").model.name == "nrd_r50"


def test_a_file_where_the_user_runs_wins_over_the_packaged_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "studies" / "synthetic.yaml"
    mine.parent.mkdir()
    tree = yaml.safe_load((CONFIG_ROOT / "studies" / "synthetic.yaml").read_text())
    tree["train"]["iters"] = 7
    mine.write_text(yaml.safe_dump(tree))
    assert find_config("studies/synthetic.yaml") == Path("studies/synthetic.yaml")
    assert load_config("studies/synthetic.yaml").train.iters == 7


def test_a_missing_config_names_the_path_and_the_closest_packaged_one(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"not found: camvid/nrd_lite.yaml .*nrd_lite0"):
        find_config("camvid/nrd_lite.yaml")
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_the_cli_lists_the_packaged_configs(capsys):
    assert main(["models", "--configs"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "studies/camvid.yaml" in listed and "camvid/nrd_lite0.yaml" in listed


def test_every_packaged_file_is_package_data_and_the_clone_path_still_works():
    """The wheel takes ``configs/**/*.yaml``: nothing else may live there; a clone's
    ``configs/`` is the same folder."""
    assert {path.suffix for path in CONFIG_ROOT.rglob("*") if path.is_file()} == {".yaml"}
    package_data = (REPO / "pyproject.toml").read_text().partition("[tool.setuptools.package-data]")
    assert '"configs/**/*.yaml"' in package_data[2].partition("\n[")[0]
    if (REPO / "configs").exists():
        assert (REPO / "configs").resolve() == CONFIG_ROOT.resolve()


def test_a_config_of_one_s_own_builds_on_a_packaged_one(tmp_path, monkeypatch):
    """After a pip install there is no configs/ folder beside one's own config."""
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "my_data.yaml"
    mine.write_text("_base_: configs/folder/nrd_lite0_cpu.yaml\ntrain: {iters: 5}\n")
    config = load_config(mine)
    packaged = load_config(CONFIG_ROOT / "folder" / "nrd_lite0_cpu.yaml")
    assert config.train.iters == 5 and config.model == packaged.model
    mine.write_text("_base_: folder/nrd_lite0_cpu.yml\n")
    with pytest.raises(
        FileNotFoundError, match=r"_base_ 'folder/nrd_lite0_cpu.yml': no file"
    ) as err:
        load_config(mine)
    assert "did you mean folder/nrd_lite0_cpu.yaml?" in str(err.value)
