"""The YAML reader of configs, classes files and ``--set`` values: YAML 1.1's surprises."""

from __future__ import annotations

import datetime

import pytest
import yaml

from nrdseg.utils.yaml_read import describe_value, load_as_written, load_yaml, text_hint


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-5", 1e-5),  # PyYAML: the string '1e-5'
        ("1E5", 1e5),
        ("2.5e3", 2500.0),  # PyYAML: a string too (its exponent needs a sign)
        ("-4e-1", -0.4),
        ("1.0e-5", 1e-5),
        ("0.5", 0.5),
        ("12", 12),
        ("0", 0),
        ("0x1f", 31),  # explicit hexadecimal is meant
        ("2024-01-01", "2024-01-01"),  # PyYAML: a datetime.date
        ("5e", "5e"),
        ("yes", True),  # booleans stay YAML 1.1's (photometric: yes is meant)
        ("~", None),
    ],
)
def test_values_read_as_meant(text, value):
    read = load_yaml(f"a: {text}")["a"]
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "010",
            r"010 is the octal number 8 in YAML 1\.1; write 10 without the leading zero, "
            r'or quote it for text \("010"\)',
        ),
        ("-07", r"-07 is the octal number -7 in YAML 1\.1; write -7 without"),
        ("3:30", r"3:30 is a base-60 \(sexagesimal\) number in YAML 1\.1; quote it for text"),
        ("1:20:30.5", r"1:20:30\.5 is a base-60"),
    ],
)
def test_octal_and_base_60_numbers_are_refused_with_the_line(text, message):
    assert yaml.safe_load(f"a: {text}")["a"] != text  # what PyYAML silently does
    with pytest.raises(yaml.YAMLError, match=rf'(?s){message}.*in "f\.yaml", line 2, column 8'):
        load_yaml(f"x: 1\nb: [1, {text}]\n", name="f.yaml")
    assert load_yaml(f'a: "{text}"')["a"] == text  # quoted, it is text


def test_as_written_keeps_every_scalar_as_its_text():
    assert load_as_written("classes: [a, yes, ~, 010]\nn: {k: 1e-5}") == {
        "classes": ["a", "yes", "~", "010"],
        "n": {"k": "1e-5"},
    }


def test_values_are_described_as_yaml_shows_them_with_the_fix_for_text():
    assert describe_value(True) == "true (a YAML boolean)"
    assert describe_value(None) == "null (a YAML null)"
    assert describe_value("1e-5") == "'1e-5' (a YAML string)"
    assert describe_value([1, True]) == "[1, true] (a YAML list)"
    assert describe_value(datetime.date(2024, 1, 1)) == "2024-01-01 (a YAML date)"
    assert text_hint(False, "off").endswith('quote it to keep it as text: "off"')
    assert text_hint(None).endswith('e.g. "null"')
    assert text_hint("already text") == ""
