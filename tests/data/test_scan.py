"""Every dataset scan follows linked folders, survives link loops and says what it leaves
out (issue 21, item 3: a linked ``images/cityA`` was skipped without a word)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nrdseg.cli import main
from nrdseg.data import build_dataset
from nrdseg.data.scan import LOOP, LeftOut, match_files, walk_files
from tests.datasets_on_disk import make_camvid, make_cityscapes, make_folder, write_image

WARNING = "nrdseg.data.scan"


def _linked_folder_set(tmp_path: Path) -> Path:
    """A folder set of 5 samples, 3 of them in ``images/cityA``, a link to elsewhere."""
    root = tmp_path / "set"
    make_folder(root, ["a", "b", "cityA/c", "cityA/d", "cityA/e"])
    (tmp_path / "elsewhere").mkdir()
    (root / "images" / "cityA").rename(tmp_path / "elsewhere" / "cityA")
    (root / "images" / "cityA").symlink_to(tmp_path / "elsewhere" / "cityA")
    (root / "classes.yaml").write_text("classes: [a, b, c]\n")
    return root


def test_folder_set_reads_images_in_a_linked_sub_folder(tmp_path, capsys):
    root = _linked_folder_set(tmp_path)
    dataset = build_dataset("folder", root=root)
    assert len(dataset) == 5  # was 2: rglob does not enter linked folders
    assert sorted(Path(image).name for image, _ in dataset.pairs) == [
        "a.png", "b.png", "c.png", "d.png", "e.png",
    ]  # fmt: skip
    assert dataset.sample(2)["path"].endswith("images/cityA/c.png")  # the link's name
    assert main(["data", "check", "folder", "--set", f"root={root}"]) == 0
    assert "folder: 5 samples, 0 bad" in capsys.readouterr().out


def test_folder_set_names_the_files_it_leaves_out_and_why(tmp_path, caplog):
    root = tmp_path / "set"
    make_folder(root, ["a", "b"])
    (root / "images" / "notes.txt").write_text("not an image")
    (root / "images" / "c.gif").write_bytes(b"GIF89a")
    (root / "images" / "._a.png").write_bytes(b"AppleDouble")
    (root / "images" / "gone.png").symlink_to(tmp_path / "nothing.png")
    (root / "images" / "sub").mkdir()
    (root / "images" / "sub" / "up").symlink_to(root / "images")  # a loop
    with caplog.at_level(logging.WARNING, logger=WARNING):
        dataset = build_dataset("folder", root=root, num_classes=3)
    assert len(dataset) == 2
    (message,) = [r.getMessage() for r in caplog.records if r.name == WARNING]
    assert message.startswith(f"left out 5 path(s) under {root / 'images'}: ")
    assert "2 not an image file extension (.jpg .jpeg" in message
    assert "c.gif" in message and "notes.txt" in message
    assert "1 hidden (the name starts with '.'): " in message and "._a.png" in message
    assert "1 a broken link or not a regular file: " in message and "gone.png" in message
    assert f"1 {LOOP}: {root / 'images' / 'sub' / 'up'}" in message


def test_a_link_loop_is_entered_once_and_reported(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.png").write_bytes(b"")
    (tmp_path / "a" / "b" / "back").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "twin").symlink_to(tmp_path / "a" / "b")  # a second name, no loop
    left_out = LeftOut()
    files = list(walk_files(tmp_path / "a", left_out=left_out))
    relative = sorted(p.relative_to(tmp_path / "a").as_posix() for p in files)
    assert relative == ["b/x.png", "twin/x.png"]  # both names of b, once each
    assert left_out.reasons == {
        LOOP: [tmp_path / "a" / "b" / "back", tmp_path / "a" / "twin" / "back"]
    }


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.png", ["top.png"]),
        ("*/*.png", ["d/one.png"]),
        ("**/*.png", ["d/e/two.png", "d/one.png", "top.png"]),
        ("d/**/*.png", ["d/e/two.png", "d/one.png"]),
    ],
)
def test_patterns_match_one_component_per_star_and_any_for_two(tmp_path, pattern, expected):
    for name in ("top.png", "d/one.png", "d/e/two.png", "d/e/.hidden.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    left_out = LeftOut()
    found = match_files(tmp_path, pattern, left_out=left_out)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == sorted(expected)
    hidden = [p.name for p in left_out.reasons.get("hidden (the name starts with '.')", [])]
    assert hidden == ([".hidden.png"] if pattern.startswith(("**", "d/**")) else [])


def test_camvid_names_frames_it_does_not_read(tmp_path, caplog):
    make_camvid(tmp_path, counts={"train": 2})
    write_image(tmp_path / "train" / "0001TP_009999.jpg", seed=5)  # a JPEG among the PNGs
    with caplog.at_level(logging.WARNING, logger=WARNING):
        assert len(build_dataset("camvid", root=tmp_path, split="train")) == 2
    (message,) = [r.getMessage() for r in caplog.records if r.name == WARNING]
    assert "1 not matching *.png: " in message and "0001TP_009999.jpg" in message


def test_cityscapes_and_prepare_read_a_linked_city_folder(tmp_path, caplog):
    """Fixed-depth globs entered linked folders already; the shared walk keeps that."""
    root = tmp_path / "cs"
    make_cityscapes(root, split="val", label_ids=True)
    for top in ("leftImg8bit", "gtFine"):
        (tmp_path / top).mkdir()
        (root / top / "val" / "bremen").rename(tmp_path / top / "bremen")
        (root / top / "val" / "bremen").symlink_to(tmp_path / top / "bremen")
    assert main(["data", "prepare", "cityscapes", str(root), "--no-progress"]) == 0
    assert len(build_dataset("cityscapes", root=root, split="val")) == 4
