"""The detection rate evaluate.json reports: a tumour found only elsewhere is a missed tumour."""

from __future__ import annotations

import math

import pytest
import torch

from neonet_ext.labels import TUMOUR
from neonet_ext.metrics import TumourDetectionMetric


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
