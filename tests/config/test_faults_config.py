"""Bad config input replayed from public bug reports (issue 21), each case and its kind.

6. values of free-form mappings (``model.options``, ``loss.decode`` terms, dataset
   options, the CLI's ``--set`` options) never checked against the signature receiving them;
9. user YAML whose type coercion is not explained (the config's share; class names are
   in ``tests/data/test_class_names.py``, the YAML reader in ``tests/utils``);
10. ``--set`` paths that cannot reach list items, and messages that do not say which
    part of the path failed;
12. options of one decoder kept when switching to another, found after the label checks:
    every free-form option is checked at config load, before any work dir or data.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from nrdseg.cli import main
from nrdseg.cli.options import parse_assignments
from nrdseg.config.run import config_from_dict, load_config
from nrdseg.config.schema import ConfigError
from tests.conftest import CPU, tiny_options
from tests.engine_fixtures import one_thread, write_tiny_config


def _tree(**sections) -> dict:
    return {"data": {"train": {"name": "synthetic"}}, **sections}


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# -- 6. free-form values against the receiving signature -------------------------------
@pytest.mark.parametrize(
    ("tree", "read", "key", "number"),
    [
        (
            _tree(loss={"decode": [{"type": "dice", "smooth": "1e-5"}]}),
            lambda c: c.loss.decode[0]["smooth"],
            "loss.decode[0].smooth",
            1e-5,
        ),
        (
            _tree(model={"name": "nrd_r50", "options": {"aux_weight": "4e-1"}}),
            lambda c: c.model.options["aux_weight"],
            "model.options.aux_weight",
            0.4,
        ),
        (  # an encoder option, one in a list
            _tree(model={"name": "nrd_r50", "options": {"mean": [0.5, "5e-1", 0.5]}}),
            lambda c: c.model.options["mean"][1],
            "model.options.mean[1]",
            0.5,
        ),
        (
            {"data": {"train": {"name": "synthetic", "options": {"size": ["64", 64]}}}},
            lambda c: c.data.train.options["size"][0],
            "data.train.options.size[0]",
            64,
        ),
        (  # label_map keys written as strings (JSON-style) become the mask values they name
            {
                "data": {
                    "train": {"name": "folder", "root": "x", "options": {"label_map": {"11": 255}}}
                }
            },
            lambda c: list(c.data.train.options["label_map"]),
            "data.train.options.label_map.11 (the key)",
            [11],
        ),
    ],
)
def test_numbers_written_as_text_are_converted_to_the_receivers_type(
    tree, read, key, number, caplog
):
    with caplog.at_level(logging.INFO, logger="nrdseg.config"):
        config = config_from_dict(tree)
    value = read(config)
    assert value == number and type(value) is type(number)
    assert f"{key}: read the text" in caplog.text


def test_exponents_without_a_dot_are_floats_in_files_and_overrides(tmp_path):
    path = _write(
        tmp_path / "c.yaml",
        """
        data: {train: {name: synthetic}}
        model: {name: nrd_r50, options: {aux_weight: 4e-1}}
        loss: {decode: [{type: dice, smooth: 1e-5}]}
        """,
    )
    config = load_config(path, parse_assignments(["optim.lr=2E-3"]))
    assert config.model.options["aux_weight"] == 0.4
    assert config.loss.decode[0]["smooth"] == 1e-5
    assert config.optim.lr == 2e-3


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            _tree(loss={"decode": [{"type": "dice", "smooth": "abc"}]}),
            r"loss\.decode\[0\]\.smooth: expected float, got 'abc' \(a YAML string\)$",
        ),
        (
            _tree(loss={"decode": [{"type": "focal", "gamma": True}]}),
            r"loss\.decode\[0\]\.gamma: expected float, got true \(a YAML boolean\)$",
        ),
        (
            _tree(loss={"decode": [{"type": "dice", "log_loss": "yes"}]}),
            r"loss\.decode\[0\]\.log_loss: expected bool, got 'yes' .*write true or false",
        ),
        (
            _tree(model={"name": "nrd_r50", "options": {"mlp_bias_init": True}}),
            r"model\.options\.mlp_bias_init: expected str, got true \(a YAML boolean\); YAML 1\.1 "
            r"reads an unquoted yes, no, on, off, true or false as a boolean: quote it",
        ),
        (
            _tree(model={"name": "nrd_r50", "options": {"dilations": [1, "x"]}}),
            r"model\.options\.dilations\[1\]: expected int, got 'x'",
        ),
        (
            _tree(model={"name": "nrd_r50", "options": {"neck_channels": 1.5}}),
            r"model\.options\.neck_channels: expected int, got 1\.5 \(a YAML float\)$",
        ),
        (
            {"data": {"train": {"name": "synthetic", "options": {"size": [64, "x"]}}}},
            r"data\.train\.options\.size\[1\]: expected int, got 'x'",
        ),
        (
            {
                "data": {
                    "train": {"name": "folder", "root": "r", "options": {"label_map": {3: "x"}}}
                }
            },
            r"data\.train\.options\.label_map\.3: expected int, got 'x'",
        ),
        (
            {
                "data": {
                    "train": {"name": "folder", "root": "r", "options": {"reduce_zero_label": 1}}
                }
            },
            r"data\.train\.options\.reduce_zero_label: expected bool, got 1 \(a YAML integer\)",
        ),
        (
            _tree(loss={"decode": [{"type": "cross_entropy", "class_weight": [1, True]}]}),
            r"loss\.decode\[0\]\.class_weight\[1\]: expected float, got true",
        ),
    ],
)
def test_values_that_do_not_fit_the_receiver_are_refused_naming_the_key(tree, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(tree)


@pytest.mark.usefixtures(one_thread.__name__)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["flops", "nrd_r50", "--num-classes", "3", "--set", "controller_channels=abc"],
            "nrdseg flops: error: --set controller_channels: expected int, got 'abc'",
        ),
        (
            ["flops", "dlv3p_r50", "--num-classes", "3", "--set", "controller_channels=8"],
            "--set controller_channels: unknown option for model dlv3p_r50 (DeepLabV3PlusHead); "
            "it is an option of NRDHead",
        ),
        (
            ["data", "check", "synthetic", "--set", "size=[64, x]"],
            "nrdseg data: error: --set size[1]: expected int, got 'x' (a YAML string)",
        ),
        (
            ["data", "check", "camvid", "--set", "split=test"],
            "nrdseg data: error: --set root: required by dataset 'camvid'",
        ),
    ],
)
def test_cli_set_options_go_through_the_same_check(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


# -- 9. YAML coercion in typed keys ----------------------------------------------------
def test_a_split_name_yaml_made_a_boolean_is_explained(tmp_path):
    path = _write(tmp_path / "c.yaml", "data: {train: {name: folder, root: r, split: on}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert (
        "data.train.split: expected str, got true (a YAML boolean); YAML 1.1 reads an unquoted "
        "yes, no, on, off, true or false as a boolean: quote it to keep it as text"
    ) in str(err.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("010", r"010 is the octal number 8 in YAML 1\.1; write 10 without the leading zero"),
        ("3:30", r"3:30 is a base-60 \(sexagesimal\) number in YAML 1\.1"),
    ],
)
def test_octal_and_base_60_numbers_are_refused_in_files_and_overrides(tmp_path, value, message):
    path = _write(
        tmp_path / "c.yaml", f"data: {{train: {{name: synthetic}}}}\ntrain: {{seed: {value}}}\n"
    )
    with pytest.raises(
        ConfigError, match=rf"(?s)c\.yaml: not valid YAML \({message}.*c\.yaml\", line 2"
    ):
        load_config(path)
    with pytest.raises(
        ValueError, match=rf"--set train\.seed={value}: the value is not valid YAML .*{message}"
    ):
        parse_assignments([f"train.seed={value}"])


# -- 10. --set paths into lists ----------------------------------------------------------
def test_set_reaches_list_items_appends_and_replaces_whole_lists(tmp_path):
    path = _write(tmp_path / "c.yaml", "data: {train: {name: synthetic}}\n")
    # no loss section in the file: the list starts from the schema's default
    config = load_config(path, parse_assignments(["loss.decode[0].type=dice"]))
    assert config.loss.decode == ({"type": "dice"},)
    config = load_config(path, parse_assignments(["loss.decode[0].loss_weight=0.5"]))
    assert config.loss.decode == ({"type": "cross_entropy", "loss_weight": 0.5},)
    overrides = parse_assignments(
        ["loss.decode[1]={type: dice, smooth: 1e-5}", "loss.decode[-1].loss_weight=0.3"]
    )
    config = load_config(path, overrides)
    assert config.loss.decode == (
        {"type": "cross_entropy"},
        {"type": "dice", "smooth": 1e-5, "loss_weight": 0.3},
    )
    config = load_config(path, parse_assignments(["loss.decode=[{type: lovasz}, {type: dice}]"]))
    assert [term["type"] for term in config.loss.decode] == ["lovasz", "dice"]
    assert load_config(path, {"eval.scales[0]": 0.5}).eval.scales == (0.5,)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "loss.decode[3].type",
            r"--set loss\.decode\[3\]\.type: index \[3\] is out of range: loss\.decode has 1 "
            r"item\(s\) \(\[0\] to \[0\], \[-1\] the last, \[1\] appends\)",
        ),
        (
            "optim.lr[0]",
            r"--set optim\.lr\[0\]: optim\.lr holds 0\.01, not a list, so it has no item \[0\]",
        ),
        (
            "loss.decode[0][1]",
            r"loss\.decode\[0\] holds \{'type': 'cross_entropy'\}, not a list",
        ),
        (
            "loss.decode[x].type",
            r"--set loss\.decode\[x\]\.type: cannot read the part 'decode\[x\]'",
        ),
        # the typed part is not in the list of valid keys: that level's keys are
        (
            "loss.decod[0].type",
            r"loss\.decod: unknown key \(did you mean decode\?\); valid keys: decode, sampler$",
        ),
        (
            "loss.decode[0].smoth",
            r"loss\.decode\[0\]\.smoth: unknown option for loss 'cross_entropy'; valid: "
            r"loss_weight, loss_name, class_weight, avg_non_ignore, use_sigmoid$",
        ),
    ],
)
def test_set_path_errors_say_which_part_failed_and_why(tmp_path, key, message):
    path = _write(
        tmp_path / "c.yaml",
        "data: {train: {name: synthetic}}\noptim: {lr: 0.01}\nloss: {decode: [{type: cross_entropy}]}\n",
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path, {key: "dice"})


# -- 12. options of another model, and the other free-form keys, at config load -----------
@pytest.fixture
def nrd_config(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    return write_tiny_config(tmp_path / "configs" / "tiny.yaml")


@pytest.mark.usefixtures(one_thread.__name__)
@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.name=dlv3p_r50",
            "model.options.controller_channels: unknown option for model dlv3p_r50 "
            "(DeepLabV3PlusHead); it is an option of NRDHead (nrd_r101, nrd_r50, ",
        ),
        ("model.options.aux_weight=abc", "model.options.aux_weight: expected float, got 'abc'"),
        ("loss.decode[0].loss_weight=4e-1x", "loss.decode[0].loss_weight: expected float"),
        ("data.val.options.seed=x", "data.val.options.seed: expected int, got 'x'"),
        # a value of the right type that the constructor refuses: the model is built on the
        # meta device first (was: after the work dir and the label checks)
        (
            "model.options.frozen_stages=7",
            "model.options: nrd_r50 cannot be built: frozen_stages=7",
        ),
        (
            "model.options.mlp_bias_init=ones",
            "model.options: nrd_r50 cannot be built: mlp_bias_init",
        ),
    ],
)
def test_train_refuses_bad_options_before_any_work_dir_or_data(
    nrd_config, tmp_path, monkeypatch, capsys, override, message
):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the config was checked")

    monkeypatch.setattr("nrdseg.engine.build.build_split", no_data)
    work = tmp_path / "run"
    assert main(["train", *CPU, str(nrd_config), "--work-dir", str(work), "--set", override]) == 2
    err = capsys.readouterr().err
    assert f"nrdseg train: error: {nrd_config}: {message}" in err
    assert not work.exists()


def test_every_leftover_option_of_another_model_is_named_at_once(nrd_config, tmp_path):
    # A fresh user switched an NRD template to FreqFusion and got one leftover per run
    child = _write(
        tmp_path / "configs" / "ff.yaml",
        """
        _base_: tiny.yaml
        model: {name: freqfusion_r50, options: {mlp_bias_init: template}}
        """,
    )
    with pytest.raises(ConfigError) as error:
        load_config(child)
    lines = str(error.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{child}: model.options.controller_channels: unknown option")
    assert lines[1].startswith("model.options.mlp_bias_init: unknown option")
    assert all("--set model.options." in line for line in lines)


def test_null_drops_an_inherited_option_of_another_model(nrd_config, tmp_path):
    child = _write(
        tmp_path / "configs" / "dlv3p.yaml",
        """
        _base_: tiny.yaml
        model: {name: dlv3p_r50, options: {controller_channels: null}}
        """,
    )
    config = load_config(child)
    assert "controller_channels" not in config.model.options
    assert config.model.options["neck_channels"] == tiny_options("nrd_r50")["neck_channels"]
    overrides = parse_assignments(
        ["model.name=dlv3p_r50", "model.options.controller_channels=null"]
    )
    assert "controller_channels" not in load_config(nrd_config, overrides).model.options
    # where the receiving parameter takes null, null is passed on
    config = config_from_dict(_tree(loss={"decode": [{"type": "focal", "alpha": None}]}))
    assert config.loss.decode == ({"type": "focal", "alpha": None},)


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            _tree(model={"name": "nrd_r50", "options": {"pretrained": True}}),
            r"model\.options\.pretrained: set model\.pretrained instead",
        ),
        (
            _tree(model={"name": "nrd_r50", "options": {"loss_decode": [{"type": "dice"}]}}),
            r"model\.options\.loss_decode: set the loss in the loss section",
        ),
        (
            _tree(model={"name": "nrd_r50", "options": {"neck_chanels": 32}}),
            r"model\.options\.neck_chanels: unknown option for model nrd_r50 \(NRDHead\) "
            r"\(did you mean neck_channels\?\)",
        ),
        (
            _tree(model={"name": "nrd_r5"}),
            r"model\.name: unknown model 'nrd_r5' \(did you mean nrd_r50\?\); valid models: ",
        ),
        (
            {"data": {"train": {"name": "synthetc"}}},
            r"data\.train\.name: unknown dataset 'synthetc'",
        ),
        (
            {"data": {"train": {"name": "synthetic", "root": "data/x"}}},
            r"data\.train\.root: dataset 'synthetic' takes no root; remove it",
        ),
        (
            {"data": {"train": {"name": "camvid"}}},
            r"data\.train\.root: required by dataset 'camvid'",
        ),
        (
            {"data": {"train": {"name": "synthetic", "options": {"sizes": [64, 64]}}}},
            r"data\.train\.options\.sizes: unknown option for dataset 'synthetic' \(did you mean "
            r"size\?\); valid: split, size, length, seed$",
        ),
        (
            {"data": {"train": {"name": "camvid", "root": "r", "options": {"root": "s"}}}},
            r"data\.train\.options\.root: set root itself, not as an option",
        ),
    ],
)
def test_free_form_keys_are_checked_at_config_load(tree, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(tree)
