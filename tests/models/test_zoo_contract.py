"""The contract every zoo model keeps, checked for each name of ``nrdseg.list_models()``.

The battery is parametrised over the zoo at collection time (test ids are the model
names), so a decoder added with ``nrdseg.register_model`` gets every case below from its
zoo line alone, with no new test code. Each case builds the model with
``create_model(name, num_classes=3, **tiny_options(name))`` (the snapshot: the paper's
model on the meta device) and uses the public API only:

1. ``test_train_forward_backward`` / ``test_eval_forward_backward_batch_one``: logits
   (B, C, H, W) at odd input sizes (in eval mode also one cell and a multiple of it), the
   loss terms, finite gradients on every trainable parameter the forward uses, none on
   frozen ones, and none on the auxiliary head in eval mode.
2. ``test_save_load_bit_exact``: ``save_pretrained`` + ``load_model`` give equal tensors
   and identical eval logits.
3. ``test_onnx_parity``: ``deploy.export.export_model`` to ONNX, run through
   ``load_exported`` (onnxruntime) at sizes and batches other than the export example's,
   down to an image smaller than one encoder cell.
4. ``test_compile_parity``: ``torch.compile(backend="aot_eager")`` against eager.
5. ``test_state_dict_snapshot``: the paper model's state_dict keys and shapes against
   ``zoo_state_dict_keys.json``; they are the checkpoint format. After an intended change
   (or a new zoo model), rewrite the snapshot and commit it with the change::

       NRDSEG_UPDATE_SNAPSHOT=1 python -m pytest tests/models/test_zoo_contract.py -k snapshot

Cost: ONNX export takes about 7 s per model and torch.compile about 2 s on one CPU thread,
too much for the whole zoo (15 models) in the default run's ~90 s. Both run there for the
first model of each parameter-name layout of the tiny model, one per decoder structure;
the names sharing a layout (the same decoder with other widths or options: C_r / C_m
variants, dlv3p_r50_d8's output stride, guidance_only's missing coordinates) are marked
``slow`` and run with ``--runslow`` / ``-m slow``; all passed when this file was written.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import onnxruntime
import pytest
import torch

import nrdseg
from nrdseg.deploy.export import export_model, load_exported
from tests.conftest import tiny_options

MODELS = nrdseg.list_models()
NUM_CLASSES = 3
#: Odd sizes: neither is a multiple of the 32-pixel cell, and 29 is below one cell.
TRAIN_SIZES = [(37, 53), (29, 70)]
EVAL_SIZE = (45, 70)
#: Eval-mode sizes besides: odd ones, one 32-pixel cell exactly (no padding to crop).
ANY_SIZES = [(70, 101), (32, 32), (33, 65)]
#: Traced through by the ONNX exporter; parity is checked at other sizes and batches.
ONNX_EXAMPLE = (64, 96)
#: (2, 17, 5) is below one encoder cell: every map of the graph has size 1 at stride 32.
ONNX_CHECKS = [(1, 45, 70), (3, 33, 97), (2, 17, 5)]
#: Parity tolerances relative to the largest logit: freshly initialised zoo models give
#: logits of 1e-4..0.5 (mmseg's small-std classifier init), so an absolute tolerance would
#: pass anything. Float32 reordering across ~40 layers measured <= 3e-6 (dlv3p, ONNX and
#: aot_eager): 1e-4 leaves a 30x margin, below the 4e-4 that nudging a single decoder
#: weight by 1% of its tensor's largest value gives (dlv3p, carafe).
ONNX_RTOL = 1e-4
COMPILE_RTOL = 1e-4
SNAPSHOT = Path(__file__).with_name("zoo_state_dict_keys.json")
UPDATE_ENV = "NRDSEG_UPDATE_SNAPSHOT"
REGENERATE = f"{UPDATE_ENV}=1 python -m pytest tests/models/test_zoo_contract.py -k snapshot"


def tiny(name: str) -> nrdseg.Segmentor:
    return nrdseg.create_model(name, num_classes=NUM_CLASSES, **tiny_options(name))


def _first_of_each_layout() -> set[str]:
    """The first zoo name of each parameter-name layout of the tiny model (see docstring)."""
    seen: dict[tuple[str, ...], str] = {}
    for name in MODELS:
        seen.setdefault(tuple(tiny(name).state_dict()), name)
    return set(seen.values())


FAST = _first_of_each_layout()
SLOW_REASON = "another zoo name with this parameter layout runs it by default"


def costly(name: str):
    """A param for the slow cases: default run for FAST names, ``slow`` for the others."""
    return pytest.param(name, id=name, marks=[] if name in FAST else [pytest.mark.slow])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread for this module (conftest sets 2): the budget is measured on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def eval_model():
    """``eval_model(name)``: a tiny model in eval mode, built once per module.

    One training-mode forward first moves the BatchNorm statistics off their 0 / 1 start,
    so that save/load and the exported graphs are checked with non-trivial buffers.
    Read-only for the tests that share it.
    """
    cache: dict[str, nrdseg.Segmentor] = {}

    def get(name: str) -> nrdseg.Segmentor:
        if name not in cache:
            model = tiny(name).train()
            with torch.no_grad():
                model(torch.randn(2, 3, 64, 64))
            cache[name] = model.eval()
        return cache[name]

    return get


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    scale = expected.abs().max().item()
    assert scale > 0, "reference logits are all zero: a relative tolerance would mean nothing"
    return (actual - expected).abs().max().item() / scale


def _labels(batch: int, height: int, width: int) -> torch.Tensor:
    labels = torch.randint(0, NUM_CLASSES, (batch, height, width))
    labels[:, :3] = 255  # some ignored pixels, as real label maps have
    return labels


def _missing_or_bad_grads(model: torch.nn.Module) -> tuple[list[str], list[str], list[str]]:
    """(trainable without grad, trainable with non-finite grad, frozen with a grad)."""
    params = list(model.named_parameters())
    no_grad = [n for n, p in params if p.requires_grad and p.grad is None]
    non_finite = [n for n, p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
    frozen_with_grad = [n for n, p in params if not p.requires_grad and p.grad is not None]
    return no_grad, non_finite, frozen_with_grad


# -- 1. forward and backward ---------------------------------------------------------------
@pytest.mark.parametrize("size", TRAIN_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", MODELS)
def test_train_forward_backward(name, size):
    model = tiny(name).train()
    images = torch.randn(2, 3, *size)
    logits = model(images)
    assert logits.shape == (2, NUM_CLASSES, *size), f"{name}: logits {tuple(logits.shape)}"
    assert torch.isfinite(logits).all(), f"{name}: non-finite logits at {size}"

    losses = model.loss(images, _labels(2, *size))
    assert "loss_aux" in losses, f"{name}: the auxiliary head did not run in train mode"
    assert set(losses) == {"loss", "loss_main", "loss_aux"}, f"{name}: terms {sorted(losses)}"
    assert torch.isfinite(losses["loss"]), f"{name}: non-finite loss at {size}"
    losses["loss"].backward()
    # In train mode every part runs (the aux head too), so the only parameters without a
    # gradient may be the frozen ones (requires_grad=False: nrd_x101's stem and layer1).
    no_grad, non_finite, frozen_with_grad = _missing_or_bad_grads(model)
    assert not no_grad, f"{name}: trainable parameters without a gradient: {no_grad}"
    assert not non_finite, f"{name}: non-finite gradients: {non_finite}"
    assert not frozen_with_grad, f"{name}: frozen parameters got gradients: {frozen_with_grad}"
    # Not per parameter: timm zero-initialises each residual block's last BatchNorm, so the
    # rest of that branch gets exactly zero gradient at init. Every part must get some.
    parts = {n.split(".")[0] for n, _ in model.named_parameters()}
    dead = sorted(
        part
        for part in parts
        if not any(
            p.grad is not None and p.grad.any()
            for n, p in model.named_parameters()
            if n.startswith(part + ".")
        )
    )
    assert not dead, f"{name}: all-zero gradients in {dead}"


@pytest.mark.parametrize("name", MODELS)
def test_eval_forward_backward_batch_one(name):
    """Batch 1 needs eval mode (BatchNorm cannot normalise one image's pooled value)."""
    model = tiny(name).eval()
    images = torch.randn(1, 3, *EVAL_SIZE)
    logits = model(images)
    assert logits.shape == (1, NUM_CLASSES, *EVAL_SIZE), f"{name}: logits {tuple(logits.shape)}"
    assert torch.isfinite(logits).all(), f"{name}: non-finite eval logits"
    with torch.no_grad():
        for size in ANY_SIZES:
            logits = model(torch.randn(1, 3, *size))
            assert logits.shape == (1, NUM_CLASSES, *size), f"{name}: {tuple(logits.shape)}"
            assert torch.isfinite(logits).all(), f"{name}: non-finite eval logits at {size}"

    losses = model.loss(images, _labels(1, *EVAL_SIZE))
    assert "loss_aux" not in losses, f"{name}: the auxiliary head ran in eval mode"
    losses["loss"].backward()
    no_grad, non_finite, frozen_with_grad = _missing_or_bad_grads(model)
    # The auxiliary head runs only in training, so exactly its parameters get no gradient.
    expected = sorted(n for n, p in model.named_parameters() if n.startswith("aux_head."))
    assert sorted(no_grad) == expected, (
        f"{name}: in eval mode parameters without a gradient should be the aux head's; "
        f"unexpected {sorted(set(no_grad) - set(expected))}, "
        f"aux with a gradient {sorted(set(expected) - set(no_grad))}"
    )
    assert not non_finite, f"{name}: non-finite gradients: {non_finite}"
    assert not frozen_with_grad, f"{name}: frozen parameters got gradients: {frozen_with_grad}"


# -- 2. save / load --------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_save_load_bit_exact(name, eval_model, tmp_path):
    model = eval_model(name)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = nrdseg.load_model(tmp_path / "ckpt").eval()

    assert loaded.config == model.config, f"{name}: config {loaded.config} != {model.config}"
    saved, restored = model.state_dict(), loaded.state_dict()
    assert list(restored) == list(saved), f"{name}: loaded model has other state_dict keys"
    differ = [
        k
        for k in saved
        if saved[k].dtype != restored[k].dtype or not torch.equal(saved[k], restored[k])
    ]
    assert not differ, f"{name}: tensors changed by save/load: {differ}"
    images = torch.randn(2, 3, *EVAL_SIZE)
    with torch.no_grad():
        same = torch.equal(loaded(images), model(images))
    assert same, f"{name}: eval logits differ after save_pretrained + load_model"


# -- 3. ONNX -------------------------------------------------------------------------------
@pytest.fixture
def one_thread_onnxruntime(monkeypatch):
    """``load_exported`` opens its session with onnxruntime's default, one thread per core;
    the suite shares its cores, so the sessions here get one thread."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = functools.partial(onnxruntime.InferenceSession, sess_options=options)
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)


@pytest.mark.parametrize("name", [costly(n) for n in MODELS])
def test_onnx_parity(name, eval_model, tmp_path, one_thread_onnxruntime):
    model = eval_model(name)
    # opset left to the exporter (its native 18): asking for 17 adds onnx's version
    # converter, which export.py says fails on this model's Resize and Pad.
    path = export_model(model, tmp_path / "m.onnx", format="onnx", example_size=ONNX_EXAMPLE)
    run = load_exported(path, format="onnx")
    for shape in ONNX_CHECKS:  # other batch sizes and odd sizes: the axes are dynamic
        images = torch.randn(shape[0], 3, *shape[1:])
        with torch.no_grad():
            expected = model(images)
        actual = torch.from_numpy(run(images.numpy()))
        assert actual.shape == expected.shape, f"{name}: ONNX logits {tuple(actual.shape)}"
        error = _relative_error(actual, expected)
        assert error <= ONNX_RTOL, f"{name}: ONNX logits off by {error:.2e} (relative) at {shape}"


# -- 4. torch.compile ----------------------------------------------------------------------
@pytest.mark.parametrize("name", [costly(n) for n in MODELS])
def test_compile_parity(name, eval_model):
    """aot_eager: dynamo captures the graph and AOTAutograd decomposes it to aten ops, which
    is where graph breaks and tracing failures show; inductor's C++ code generation would
    add tens of seconds per model on a CPU and test the compiler more than the model."""
    model = eval_model(name)
    torch._dynamo.reset()  # a fresh cache per model: no recompile limit across the zoo
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    images = torch.randn(2, 3, *EVAL_SIZE)
    with torch.no_grad():
        actual, expected = compiled(images), model(images)
    assert actual.shape == expected.shape, f"{name}: compiled logits {tuple(actual.shape)}"
    error = _relative_error(actual, expected)
    assert error <= COMPILE_RTOL, f"{name}: compiled logits off by {error:.2e} (relative)"


# -- 5. state_dict snapshot ----------------------------------------------------------------
def paper_layout(name: str) -> dict[str, list[int]]:
    """Keys and shapes of the paper model (defaults, 19 classes), built on the meta device:
    no memory and no initialisation time."""
    with torch.device("meta"):
        model = nrdseg.create_model(name, num_classes=19, pretrained=False)
    return {key: list(tensor.shape) for key, tensor in model.state_dict().items()}


def write_snapshot(path: Path) -> None:
    """One [key, shape] per line, so that a format change reads as a small diff."""
    blocks = []
    for name in MODELS:
        rows = ",\n".join(f"    {json.dumps([k, s])}" for k, s in paper_layout(name).items())
        blocks.append(f"  {json.dumps(name)}: [\n{rows}\n  ]")
    path.write_text("{\n" + ",\n".join(blocks) + "\n}\n")


@pytest.fixture(scope="module")
def snapshot() -> dict[str, dict[str, list[int]]]:
    if os.environ.get(UPDATE_ENV) == "1":
        write_snapshot(SNAPSHOT)
    if not SNAPSHOT.is_file():
        pytest.fail(f"{SNAPSHOT} is missing; write it with: {REGENERATE}")
    stored = json.loads(SNAPSHOT.read_text())
    return {name: {k: s for k, s in rows} for name, rows in stored.items()}


def _listed(items: list[str], limit: int = 10) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_snapshot(name, snapshot):
    if name not in snapshot:  # pytest.fail: an assert would print the whole snapshot
        pytest.fail(
            f"{name} is not in {SNAPSHOT.name}: a new zoo model's checkpoint format is "
            f"recorded there; add it with: {REGENERATE}"
        )
    live, stored = paper_layout(name), snapshot[name]
    added = sorted(set(live) - set(stored))
    removed = sorted(set(stored) - set(live))
    changed = sorted(
        f"{k} {stored[k]} -> {live[k]}" for k in set(live) & set(stored) if live[k] != stored[k]
    )
    problems = [
        f"{label} ({len(keys)}): {_listed(keys)}"
        for label, keys in (
            ("in the model, not the snapshot", added),
            ("in the snapshot, not the model", removed),
            ("shape changed (snapshot -> model)", changed),
        )
        if keys
    ]
    assert not problems, (
        f"{name}: the paper model's state_dict differs from {SNAPSHOT.name}: "
        + "; ".join(problems)
        + ". These keys and shapes are the checkpoint format: changing them makes existing "
        "checkpoints stop loading (load_model is strict). If the change is intended, "
        f"regenerate the snapshot ({REGENERATE}) and say so in the change log."
    )


def test_snapshot_lists_only_zoo_models(snapshot):
    stale = sorted(set(snapshot) - set(MODELS))
    assert not stale, f"{SNAPSHOT.name} lists {stale}, not in the zoo; regenerate: {REGENERATE}"
