"""Start-up: a command imports what it needs, not what training, evaluation or export need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from nrdseg.cli import COMMANDS, build_parser
from nrdseg.data.files import MAX_IMAGE_PIXELS_ENV

#: Imported by other commands only; each costs seconds on a busy 2-core machine.
NOT_FOR_LISTING = (
    "torchvision",  # through timm, then torch._dynamo: about half of the old start-up
    "torch._dynamo",
    "timm.layers",
    "nrdseg.engine",
    "nrdseg.data",
    "nrdseg.evaluation",
    "nrdseg.deploy",
    "nrdseg.config",
)


def _modules_after(argv: list[str]) -> list[str]:
    """The modules ``nrdseg ARGV`` has imported (run to its end in a fresh interpreter)."""
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from nrdseg.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main({argv!r})
            except SystemExit:
                pass
        loaded = [name for name, module in sys.modules.items()
                  if module is not None and type(module).__name__ == "module"]
        print(json.dumps(loaded))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(done.stdout.splitlines()[-1])


def _loaded(modules: list[str], prefixes) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in prefixes))


def test_listing_the_zoo_imports_neither_timm_nor_other_commands():
    modules = _modules_after(["models"])
    assert "nrdseg.models.zoo" in modules  # it did list the zoo
    others = [f"nrdseg.cli.{c.module}" for c in COMMANDS if c.name != "models"]
    assert _loaded(modules, [*NOT_FOR_LISTING, *others]) == []


def test_help_imports_no_torch():
    modules = _modules_after(["--help"])
    assert _loaded(modules, ["torch", "timm", "nrdseg.models", "nrdseg.cli.train"]) == []


def test_each_command_s_help_line_is_the_one_its_module_registers():
    # `nrdseg --help` shows the lines of COMMANDS without importing the modules: they must
    # not drift from what each module's add_parser says.
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    registered = {action.dest: action.help for action in subparsers._choices_actions}
    assert registered == {c.name: c.help for c in COMMANDS}


def test_a_command_runs_with_only_its_own_module_built(capsys):
    parser = build_parser(["models", "--flops"])
    assert parser.parse_args(["models", "--flops"]).flops is True
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert subparsers.choices["train"].format_usage().split() == [
        "usage:",
        "nrdseg",
        "train",
        "[-h]",
    ]


def test_the_package_loads_its_names_and_subpackages_at_first_use():
    script = (
        "import sys, nrdseg; before = 'torch' in sys.modules; "
        "print(before, nrdseg.create_model.__module__, nrdseg.models.heads.NRDHead.__name__, "
        "hasattr(nrdseg, 'no_such_name'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.stdout.split() == ["False", "nrdseg.models.zoo", "NRDHead", "False"]


def test_the_pixel_limit_is_applied_as_it_is_parsed(capsys, monkeypatch):
    # Set by its option's action (nrdseg.cli itself no longer imports the data layer).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "0")  # restored after the test
    build_parser(["predict"]).parse_args(
        ["predict", "c", "i", "--out", "o", "--max-image-pixels", "1000"]
    )
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(SystemExit) as done:
        build_parser(["predict"]).parse_args(
            ["predict", "c", "i", "--out", "o", "--max-image-pixels", "-1"]
        )
    assert done.value.code == 2
    assert "max_image_pixels must be a pixel count >= 0, got -1" in capsys.readouterr().err
