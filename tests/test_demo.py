"""`make demo`'s job end to end, and the per-case report page."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from attention_maps import neocls_network, saved_patch, spatial_gate_map
from neonet_ext import demo
from neonet_ext.data.synthetic import SyntheticCohortConfig


NEOCLS = Path(__file__).resolve().parents[1] / "bundles" / "neocls"


def test_demo_runs_the_chain_on_the_sample_and_points_at_the_pages(tmp_path, capsys):
    """The demo prints each case's PNI probability (the shipped network's softmax on the case's
    patch) and page; each case's attention map is the shipped network's spatial-attention gates."""
    assert demo.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    network = neocls_network([NEOCLS / "configs" / "inference.json"], NEOCLS / "models" / "model.pt")
    for case, truth in (("case_000", "PNI+"), ("case_001", "PNI-")):
        line = next(x for x in out.splitlines() if x.startswith(case) and "report.png" in x)
        patch = saved_patch(tmp_path / case / f"{case}_tlcr.nii.gz")
        with torch.no_grad():
            expected = torch.softmax(network(patch[None]), 1)[0, 1].item()
        assert abs(float(line.split()[1]) - expected) < 1e-4
        assert truth in line and str(tmp_path / case / f"{case}_report.png") in line
        assert (tmp_path / case / f"{case}_report.png").read_bytes()[:4] == b"\x89PNG"
        attention = nib.load(tmp_path / case / f"{case}_attention.nii.gz").get_fdata()
        assert np.allclose(attention, spatial_gate_map(network, patch)[0].numpy(), atol=1e-5)
    assert "not for clinical use" in out


def test_learning_curve_page(tmp_path):
    import matplotlib.image

    from neonet_ext.visualize import save_learning_curve

    out = tmp_path / "curve.png"
    save_learning_curve([1000, 96, 300], [0.72, 0.70, 0.69], [(0.63, 0.80), (0.61, 0.79), (0.60, 0.78)],
                        [0.83, 0.82, 0.85], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and list(tmp_path.iterdir()) == [out]
    assert matplotlib.image.imread(out).std() > 0.05  # lines drawn, not a blank page


def test_case_report_page(tmp_path):
    from neonet_ext.data.synthetic import generate_case
    from neonet_ext.transforms import TLCR
    from neonet_ext.visualize import save_case_report

    case = generate_case(0, 5, SyntheticCohortConfig(shape=(64, 56, 24)))
    patch = TLCR(roi_size=(32, 32, 16))(case.image[None], case.label[None])
    attention = np.random.default_rng(0).uniform(size=(32, 32, 16))
    out = tmp_path / "case.png"
    spacing = np.abs(np.diag(case.affine)[:3])
    save_case_report(case.image, case.label, spacing, patch, attention, 0.731, "case_000", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and list(tmp_path.iterdir()) == [out]
    save_case_report(case.image, case.label, spacing, patch, np.zeros((32, 32, 16)), 0.0, "flat", out)
