"""plain(): what YAML and JSON writers accept, from the values configs and records hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from nrdseg.utils.yaml_safe import plain


def test_plain_turns_tuples_paths_and_scalars_into_yaml_safe_values():
    value = {
        "size": (512, 1024),
        "root": Path("/data/cityscapes"),
        1: [np.float32(0.5), torch.tensor(3), (np.int64(2),)],
        "nested": {"ok": True, "none": None},
    }
    expected = {
        "size": [512, 1024],
        "root": "/data/cityscapes",
        "1": [0.5, 3, [2]],
        "nested": {"ok": True, "none": None},
    }
    converted = plain(value)
    assert converted == expected
    assert type(converted["1"][0]) is float and type(converted["1"][1]) is int
    assert yaml.safe_load(yaml.safe_dump(converted)) == expected
    assert json.loads(json.dumps(converted)) == expected
