"""The label convention: a binary model's decision and probabilities, the ignore label's range."""

from __future__ import annotations

import pytest
import torch

from nrdseg.ops.labels import (
    IGNORE_INDEX,
    check_ignore_index,
    label_classes,
    logits_to_labels,
    two_class_logits,
)


def test_one_logit_reads_as_two_classes_with_the_sigmoid_threshold():
    logits = torch.randn(2, 1, 7, 9) * 3
    logits[0, 0, 0, 0] = 0.0  # a tie goes to background, as argmax takes the first maximum
    probs = two_class_logits(logits).softmax(dim=1)
    torch.testing.assert_close(probs[:, 1:], torch.sigmoid(logits))
    torch.testing.assert_close(probs[:, :1], 1 - torch.sigmoid(logits))
    labels = logits_to_labels(logits)
    assert labels.shape == (2, 7, 9) and labels.dtype == torch.int64
    assert torch.equal(labels, two_class_logits(logits).argmax(dim=1))
    assert torch.equal(labels, (torch.sigmoid(logits[:, 0]) > 0.5).long())
    assert labels[0, 0, 0] == 0 and 0 < int(labels.sum()) < labels.numel()


def test_several_channels_are_left_to_argmax():
    logits = torch.randn(2, 4, 3, 5)
    assert two_class_logits(logits) is logits
    assert torch.equal(logits_to_labels(logits), logits.argmax(dim=1))
    assert [label_classes(n) for n in (1, 2, 19)] == [2, 2, 19]


@pytest.mark.parametrize(("num_classes", "ignore"), [(3, 0), (3, 2), (1, 1), (300, 255)])
def test_an_ignore_label_that_is_a_class_id_is_refused(num_classes, ignore):
    with pytest.raises(ValueError, match=rf"ignore_index: {ignore} is one of the class ids"):
        check_ignore_index(ignore, num_classes=num_classes)


@pytest.mark.parametrize(("num_classes", "ignore"), [(3, IGNORE_INDEX), (1, 2), (300, -1)])
def test_an_ignore_label_outside_the_class_ids_is_accepted(num_classes, ignore):
    check_ignore_index(ignore, num_classes=num_classes)
