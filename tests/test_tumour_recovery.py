"""A tumour recovered from the probabilities when the argmax has none; the detection rate that counts it."""

from __future__ import annotations

import math

import pytest
import torch

from neonet_ext.labels import BACKGROUND, LIVER, TUMOUR
from neonet_ext.metrics import TumourDetectionMetric
from neonet_ext.transforms import RecoverTumour, RecoverTumourd


def probabilities(tumour_peak: float, weak_spot: float = 0.0) -> torch.Tensor:
    """(3, 24, 24, 12) softmax-like probabilities: a liver block (background 0.05), a 3x3x2 spot of tumour
    probability ``tumour_peak`` in a 5x5x2 ring of 0.7 times that, and a 2x2x2 spot of ``weak_spot``; the
    liver takes the rest."""
    p = torch.zeros(3, 24, 24, 12)
    p[BACKGROUND] = 1.0
    p[:, 4:20, 4:20, 2:10] = torch.tensor([0.05, 0.95, 0.0])[:, None, None, None]
    for (x, y, z), peak, size in (((13, 13, 4), tumour_peak, 3), ((6, 6, 6), weak_spot, 2)):
        p[TUMOUR, x - 1:x + size + 1, y - 1:y + size + 1, z:z + 2] = 0.7 * peak
        p[TUMOUR, x:x + size, y:y + size, z:z + 2] = peak
    p[LIVER] = torch.where(p[BACKGROUND] < 1, 0.95 - p[TUMOUR], 0.0)
    return p


def test_the_most_likely_tumour_region_becomes_the_argmax_when_none_is_tumour():
    p = probabilities(tumour_peak=0.41, weak_spot=0.25)
    assert not (p.argmax(0) == TUMOUR).any()
    recovered, found = RecoverTumour(threshold=0.2)(p)
    tumour = recovered.argmax(0) == TUMOUR
    assert found
    # the 5x5x2 region >= 0.2 around the 0.41 peak, not the weaker spot, and nothing outside the liver
    assert int(tumour.sum()) == 5 * 5 * 2 and bool(tumour[12:17, 12:17, 4:6].all())
    assert not tumour[5:9, 5:9, 6:8].any()  # labelled first, so a first-found choice would fail
    assert torch.equal(recovered[:, ~tumour], p[:, ~tumour])


def test_probabilities_with_a_tumour_or_below_the_threshold_are_left_alone():
    p = probabilities(tumour_peak=0.9)  # the spot wins its voxels already
    assert (p.argmax(0) == TUMOUR).any()
    out, found = RecoverTumour(threshold=0.2)(p)
    assert out is p and not found
    faint = probabilities(tumour_peak=0.15)
    out, found = RecoverTumour(threshold=0.2)(faint)
    assert out is faint and not found
    with pytest.raises(ValueError, match=r"expected \(C, X, Y, Z\) class probabilities"):
        RecoverTumour()(torch.zeros(2, 4, 4, 4))


def test_dictionary_form_writes_the_flag_and_can_be_turned_off():
    data = {"pred": probabilities(tumour_peak=0.41)}
    out = RecoverTumourd("pred", threshold=0.2)(data)
    assert out["tumour_recovered"] is True and (out["pred"].argmax(0) == TUMOUR).any()
    off = RecoverTumourd("pred", threshold=None)(data)
    assert off["tumour_recovered"] is False and off["pred"] is data["pred"]


def test_detection_counts_a_tumour_found_elsewhere_as_missed():
    truth = torch.zeros(4, 3, 8, 8, 4)
    truth[:, TUMOUR, 2:4, 2:4, 1:3] = 1
    truth[3, TUMOUR] = 0  # no tumour in the ground truth: not counted
    pred = torch.zeros_like(truth)
    pred[0, TUMOUR, 3:5, 3:5, 2] = 1  # overlaps
    pred[1, TUMOUR, 6:8, 6:8, 3] = 1  # elsewhere
    metric = TumourDetectionMetric(channel=TUMOUR)
    metric(pred, truth)  # case 2: no tumour predicted
    buffer = metric.get_buffer()[:, 0].tolist()
    assert buffer[:3] == [1.0, 0.0, 0.0] and math.isnan(buffer[3])
    assert float(metric.aggregate()) == pytest.approx(1 / 3)
