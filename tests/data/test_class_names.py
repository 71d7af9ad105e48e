"""Class names (issue 21, item 9): names YAML turned into booleans, null or numbers name
the entry, its value and the fix; duplicate names are refused (scores are keyed by name)."""

from __future__ import annotations

import pytest

from nrdseg.data import build_dataset
from nrdseg.data.folder import read_classes_file
from nrdseg.data.labels import check_metadata
from nrdseg.evaluation.report import result_summary
from tests.datasets_on_disk import make_folder


@pytest.mark.parametrize(
    ("names", "entry"),
    [
        (
            "[background, yes, no]",
            "classes[1] is true (a YAML boolean), not a class name; YAML 1.1 "
            "reads an unquoted yes, no, on, off, true or false as a boolean: quote it to keep it as "
            'text: "yes"',
        ),
        (
            "[background, Off]",
            "classes[1] is false (a YAML boolean), not a class name; YAML 1.1 "
            "reads an unquoted yes, no, on, off, true or false as a boolean: quote it to keep it as "
            'text: "Off"',
        ),
        (
            "[background, ~]",
            "classes[1] is null (a YAML null), not a class name; YAML reads an "
            'unquoted null, ~ or an empty value as null: quote it to keep it as text: "~"',
        ),
        (
            "[background, 12]",
            "classes[1] is 12 (a YAML integer), not a class name; YAML reads an "
            'unquoted number or date as a number or date: quote it to keep it as text: "12"',
        ),
        (
            "[background, '']",
            "classes[1] is '' (a YAML string), not a class name; give every class a non-empty name",
        ),
    ],
)
def test_a_classes_file_name_yaml_converted_names_the_entry_and_the_fix(tmp_path, names, entry):
    path = tmp_path / "classes.yaml"
    path.write_text(f"classes: {names}\n")
    with pytest.raises(ValueError) as err:
        read_classes_file(path)
    assert str(err.value) == f"{path}: {entry}"


def test_quoted_names_and_dates_are_names(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text('classes: [background, "yes", "no", 2024-01-01]\n')
    assert read_classes_file(path)[0] == ["background", "yes", "no", "2024-01-01"]


def test_duplicate_class_names_are_refused_naming_both_positions(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text("classes: [road, car, road]\n")
    message = "classes[0] and classes[2] are both 'road'; class names must differ"
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_classes_file(path)
    # through the dataset, as training and evaluation build it
    make_folder(tmp_path, ["a", "b"], num_classes=3)
    with pytest.raises(ValueError, match=r"classes\[0\] and classes\[2\] are both 'road'"):
        build_dataset("folder", root=tmp_path, split=None)
    # from Python: every dataset's metadata goes through the same check
    with pytest.raises(ValueError, match=r"Mine: classes\[1\] and classes\[2\] are both 'b'"):
        check_metadata(["a", "b", "b"], [[0, 0, 0]] * 3, source="Mine")
    # what the check prevents: the JSON summary keys IoU by name, so one score vanished
    summary = result_summary(
        {"mIoU": 0.5, "mAcc": 0.5, "aAcc": 0.5, "IoU": [0.2, 0.8], "classes": ["road", "road"]}
    )
    assert len(summary["IoU"]) == 1


def test_a_palette_entry_yaml_made_a_boolean_is_refused(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text("classes: [a, b]\npalette: [[0, 0, 0], [255, on, 0]]\n")
    with pytest.raises(
        ValueError,
        match=r"palette\[1\] is \[255, true, 0\] \(a YAML list\); "
        r"expected \[r, g, b\], three integers in 0\.\.255",
    ):
        read_classes_file(path)


def test_an_octal_looking_palette_value_is_refused_with_its_line(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text("classes: [a, b]\npalette: [[0, 0, 0], [010, 0, 0]]\n")
    with pytest.raises(ValueError, match=r"(?s)not valid YAML \(010 is the octal number 8.*line 2"):
        read_classes_file(path)
