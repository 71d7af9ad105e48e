"""Optional packages: one helper says whether one is there and names the extra that installs it."""

from __future__ import annotations

import builtins
import subprocess
import sys

import pytest

from nrdseg.utils.optional import is_installed, lazy_import, missing_message, optional_import


def test_optional_import_returns_the_module_or_names_the_extra(monkeypatch):
    assert optional_import("json", extra="x").dumps({}) == "{}"
    assert optional_import("os.path", extra="x").join("a", "b") == "a/b"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(
        ImportError, match=r"^this needs onnxruntime: pip install 'nrdseg\[onnx\]'$"
    ):
        optional_import("onnxruntime", extra="onnx")


def test_is_installed_looks_without_importing():
    assert is_installed("json") and is_installed("torch.utils.tensorboard") == is_installed("torch")
    assert not is_installed("nrdseg_no_such_package")
    assert "nrdseg_no_such_package" not in sys.modules


def test_missing_message_is_the_sentence_every_caller_prints():
    assert missing_message("matplotlib", extra="plot") == (
        "needs matplotlib: pip install 'nrdseg[plot]'"
    )


def test_lazy_import_runs_the_module_at_its_first_attribute_access(tmp_path, monkeypatch):
    (tmp_path / "nrdseg_lazy_probe.py").write_text("RUNS.append(1)\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("builtins.RUNS", [], raising=False)
    module = lazy_import("nrdseg_lazy_probe")
    try:
        assert builtins.RUNS == []  # not run yet
        assert "nrdseg_lazy_probe" not in sys.modules  # scans of sys.modules do not run it
        assert module.VALUE == 42 and builtins.RUNS == [1]
        assert lazy_import("nrdseg_lazy_probe") is sys.modules["nrdseg_lazy_probe"]  # once
        assert module.VALUE == 42 and builtins.RUNS == [1]
    finally:
        sys.modules.pop("nrdseg_lazy_probe", None)
    with pytest.raises(ImportError, match="nrdseg_no_such_package"):
        lazy_import("nrdseg_no_such_package")


def test_a_deferred_timm_lets_torch_finish_its_own_imports():
    """With timm a LazyLoader module in sys.modules, torch.testing.assert_close (which
    imports torch.distributed.tensor, whose operator registration scans sys.modules) ran
    timm's import inside torch's: 'cannot import name DeviceMesh' (circular import)."""
    script = (
        "import nrdseg.models, torch, sys\n"
        "assert 'timm' not in sys.modules\n"
        "torch.testing.assert_close(torch.ones(1), torch.ones(1))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-800:]
