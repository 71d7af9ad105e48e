"""Point labels of the study figure are spread so that none overlap."""

import itertools

import pytest

from nrdseg.analysis.figures import label_heights


def test_crowded_labels_are_spread_and_lone_ones_stay():
    # a cluster of five points within 0.3 of each other on x, one point far away
    xs = [1.3, 1.4, 1.2, 1.35, 1.3, -1.7]
    ys = [41.5, 41.3, 41.4, 39.6, 41.3, 32.6]
    heights = label_heights(xs, ys, min_gap=0.5, x_near=0.7)
    for i, j in itertools.combinations(range(5), 2):
        assert abs(heights[i] - heights[j]) >= 0.5 - 1e-9
    assert heights[5] == 32.6  # nothing near it
    assert heights[3] == 39.6  # the lowest of the cluster keeps its height
    assert all(h >= y for h, y in zip(heights, ys, strict=True))  # labels only move up


def test_equal_points_stack_one_gap_apart():
    # four labels at one spot: a float sum h + min_gap can land a hair below min_gap above
    # h, which must neither loop forever nor leave two labels on top of each other
    heights = label_heights([0.0] * 4, [0.1] * 4, min_gap=0.1, x_near=1.0)
    assert sorted(heights) == pytest.approx([0.1, 0.2, 0.3, 0.4])
