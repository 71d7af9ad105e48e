"""A frozen backbone's maps served from the cache are the maps it computes, and a run
trained with the cache ends bit-identical to one without it."""

from __future__ import annotations

import pytest
import torch

import nrdseg
from nrdseg.analysis.feature_cache import FrozenBackboneCache
from tests.conftest import tiny_options


def _frozen(name: str = "nrd_r50") -> nrdseg.Segmentor:
    torch.manual_seed(0)
    return nrdseg.create_model(name, num_classes=3, **tiny_options(name), frozen_stages=4)


def test_cached_maps_equal_computed_ones_and_a_changed_pixel_misses():
    model = _frozen().train()
    cache = FrozenBackboneCache()
    x = torch.randn(2, 3, 64, 64)
    expected = model.backbone(x)
    cache.attach(model.backbone)
    first, again = model.backbone(x), model.backbone(x.clone())
    for name in expected:
        assert torch.equal(first[name], expected[name]) and torch.equal(again[name], expected[name])
    assert (cache.hits, cache.misses) == (1, 1)
    y = x.clone()
    y[0, 0, 0, 0] += 1e-3
    model.backbone(y)
    assert cache.misses == 2
    cache.clear()
    assert (cache.hits, cache.misses, cache.bytes) == (0, 0, 0)
    assert torch.equal(model.backbone(x)["stride4"], expected["stride4"]) and cache.misses == 1


def test_training_with_the_cache_is_bit_identical_and_reuses_maps_across_models():
    x, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    cache = FrozenBackboneCache()
    finals = []
    for cached in (False, True, True):
        model = _frozen().train()
        if cached:
            cache.attach(model.backbone)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            model.loss(x, labels)["loss"].backward()
            optimizer.step()
        finals.append(model.state_dict())
    for state in finals[1:]:
        assert all(torch.equal(state[k], finals[0][k]) for k in finals[0])
    assert (cache.misses, cache.hits) == (1, 5)  # the second cached model reused every batch


def test_a_backbone_that_trains_is_refused():
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50"))
    with pytest.raises(ValueError, match="needs a frozen backbone"):
        FrozenBackboneCache().attach(model.backbone)


def test_the_cache_is_bounded_by_bytes():
    model = _frozen().eval()
    cache = FrozenBackboneCache(max_bytes=1)
    cache.attach(model.backbone)
    for seed in range(3):
        model.backbone(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed)))
    assert len(cache._maps) == 1 and cache.misses == 3
