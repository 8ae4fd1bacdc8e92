"""NeoCls's inference pieces: probability and attention per patch, patch checks, volumes, the per-case table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from monai.data import MetaTensor
from monai.networks.nets import AutoencoderKL
from monai.transforms import SaveImaged

from attention_maps import gradcam_map, spatial_gate_map
from neonet_ext.engines import PNIPredictor, PNIPredictord, SaveCaseReportd, gradcam_target_layer
from neonet_ext.metrics import attention_share, label_volume_ml
from neonet_ext.networks import PattenNet
from neonet_ext.transforms import CheckPatch, CheckPatchd

SHAPE = (2, 16, 16, 8)


def pattennet(**kwargs) -> PattenNet:
    torch.manual_seed(0)
    ae = AutoencoderKL(spatial_dims=3, in_channels=1, out_channels=1, channels=(8, 8), latent_channels=4,
                       num_res_blocks=1, attention_levels=(False, False), norm_num_groups=4)
    return PattenNet(ae, features=8, reduction=4, **kwargs).eval()


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3, 4)))


class EvidenceNet(nn.Module):
    """A classifier whose answer is known: its PNI logit is the mean of patch channel 0 minus the
    mean of channel 1, read through a 1x1x1 identity convolution (the layer Grad-CAM reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(2, 2, 1)
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(2).view(2, 2, 1, 1, 1))
            self.features.bias.zero_()

    def forward(self, x):
        pooled = self.features(x).mean((2, 3, 4))
        evidence = pooled[:, 0] - pooled[:, 1]
        return torch.stack([-evidence, evidence], 1)


def patch(seed: int = 0) -> MetaTensor:
    x = torch.from_numpy(np.random.default_rng(seed).uniform(size=SHAPE).astype(np.float32))
    return MetaTensor(x, affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])), meta={"filename_or_obj": "p.nii.gz"})


def test_spatial_attention_is_pattennets_gates_on_the_patch_grid():
    """The map is the mean of the two blocks' spatial-attention gates, read off the network with
    hooks here and resized trilinearly to the patch; the probability is the PNI softmax."""
    network = pattennet()
    p, attention = PNIPredictor(network, attention="spatial")(patch())
    assert attention.shape == (1, *SHAPE[1:]) and attention.std() > 0
    torch.testing.assert_close(attention, spatial_gate_map(network, patch()))
    assert p == pytest.approx(torch.softmax(network(patch()[None].as_tensor()), 1)[0, 1].item(), abs=1e-6)


def test_spatial_attention_of_a_strided_pattennet_averages_gates_of_every_grid_on_the_patch():
    network = pattennet(strides=(1, 2))
    p, attention = PNIPredictor(network, attention="spatial")(patch())
    assert attention.shape == (1, *SHAPE[1:]) and attention.std() > 0
    torch.testing.assert_close(attention, spatial_gate_map(network, patch()))


@pytest.mark.parametrize("network", [SmallCNN(), pattennet(use_spatial_attention=False), pattennet(num_blocks=0)])
def test_spatial_attention_is_refused_without_spatial_gates(network):
    with pytest.raises(ValueError, match="use --attention gradcam"):
        PNIPredictor(network, attention="spatial")


def test_gradcam_reads_the_last_spatial_layer():
    """Grad-CAM reads the last stage's convolution of PattenNet and the last spatial layer of a CNN,
    and its map is Grad-CAM as its definition computes it at that layer."""
    assert gradcam_target_layer(pattennet(), patch()[None]) == "stages.1.conv"
    assert gradcam_target_layer(SmallCNN(), patch()[None]) == "features.2"
    for network, layer in ((SmallCNN(), "features.2"), (pattennet(), "stages.1.conv")):
        _, attention = PNIPredictor(network, attention="gradcam")(patch())
        assert attention.shape == (1, *SHAPE[1:]) and attention.std() > 0
        torch.testing.assert_close(attention, gradcam_map(network, layer, patch()))
    with pytest.raises(ValueError, match="'nope' is not a module"):
        PNIPredictor(SmallCNN(), attention="gradcam", target_layer="nope")(patch())


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # EvidenceNet's input needs no gradient
def test_gradcam_puts_its_mass_on_the_pni_evidence():
    """A patch whose PNI evidence is known: EvidenceNet's PNI logit rises with channel 0 and falls
    with channel 1, and the patch has one block in each. Grad-CAM of the PNI logit is 1 on channel
    0's block and 0 everywhere else, channel 1's block (evidence against PNI) included."""
    x = torch.zeros(SHAPE)
    for_pni, against = torch.zeros(SHAPE[1:], dtype=torch.bool), torch.zeros(SHAPE[1:], dtype=torch.bool)
    for_pni[2:6, 2:6, 1:3], against[10:14, 10:14, 5:7] = True, True
    x[0][for_pni], x[1][against] = 1.0, 1.0
    network = EvidenceNet()
    assert gradcam_target_layer(network, x[None]) == "features"
    p, attention = PNIPredictor(network, attention="gradcam")(x)
    assert p == pytest.approx(0.5)  # blocks of one size: as much evidence for PNI as against
    torch.testing.assert_close(attention[0], for_pni.float())


def test_attention_none_and_probability_match_softmax():
    network = SmallCNN().eval()
    p, attention = PNIPredictor(network, attention="none")(patch())
    expected = torch.softmax(network(patch()[None].as_tensor()), 1)[0, 1].item()
    assert attention is None and p == pytest.approx(expected, abs=1e-6)


def test_case_without_tumour_gets_no_probability():
    predictor = PNIPredictord("patch", PNIPredictor(pattennet()))
    masks = torch.zeros(SHAPE, dtype=torch.uint8)
    d = predictor({"patch": patch(), "patch_mask": masks, "case_id": "c7"})
    assert d["pni_probability"] is None and d["tumour_found"] is False
    assert not d["attention"].any() and d["attention"].meta["filename_or_obj"] == "p.nii.gz"  # named as the patch
    masks[1, 4:8, 4:8, 2:4] = 1
    d = predictor({"patch": patch(), "patch_mask": masks, "case_id": "c7"})
    network = predictor.predictor.network
    expected = torch.softmax(network(patch()[None].as_tensor()), 1)[0, 1].item()
    assert d["pni_probability"] == pytest.approx(expected, abs=1e-6) and d["tumour_found"] is True
    assert torch.equal(d["attention"].affine, patch().affine)


@pytest.mark.parametrize("case", ["c1", "1.2.840.10008"])
def test_case_report_page_is_written_per_case(case, tmp_path):
    predictor = PNIPredictord("patch", PNIPredictor(pattennet()), case_key="case_id")
    d = SaveCaseReportd("patch", output_dir=tmp_path)(predictor({"patch": patch(), "case_id": case}))
    assert d["report"] == str(tmp_path / case / f"{case}_report.png")
    assert (tmp_path / case / f"{case}_report.png").read_bytes()[:4] == b"\x89PNG"
    SaveImaged("attention", output_dir=tmp_path, output_postfix="attention", print_log=False)(d)
    assert sorted(p.name for p in (tmp_path / case).iterdir()) == [f"{case}_attention.nii.gz", f"{case}_report.png"]


def test_check_patch_names_the_file_and_the_problem():
    CheckPatch((16, 16, 8))(patch())
    with pytest.raises(ValueError, match=r"p.nii.gz: wrong patch size: shape \(2, 16, 16, 8\).*expected \(2, 32, 32, 16\)"):
        CheckPatch((32, 32, 16))(patch())
    with pytest.raises(ValueError, match="wrong patch channel count"):
        CheckPatch((16, 16, 8), channels=3)(patch())
    bad = patch()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        CheckPatchd("patch", (16, 16, 8))({"patch": bad})


def test_label_volume_uses_the_voxel_size():
    label = MetaTensor(torch.zeros(1, 10, 10, 10), affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    label[0, :5, :2, :1] = 2  # 10 voxels of 12 mm^3
    assert label_volume_ml(label, 2) == pytest.approx(0.12)
    assert label_volume_ml(label.as_tensor(), 2) == pytest.approx(0.01)


def test_attention_share_has_known_answers():
    tumour = np.zeros((20, 20, 10), bool)
    tumour[8:12, 8:12, 4:6] = True
    spacing = (2.0, 2.0, 3.0)
    on_tumour = tumour.astype(float)
    assert attention_share(on_tumour, tumour, spacing) == (1.0, pytest.approx(attention_share(on_tumour, tumour, spacing)[1]))
    mass, region = attention_share(np.ones(tumour.shape), tumour, spacing)
    assert mass == pytest.approx(region)  # an even map scores the region's share of the patch
    corner = np.zeros(tumour.shape)
    corner[0, 0, 0] = 1.0  # 8 voxels x 2 mm = 16 mm from the tumour in x and y: outside a 10 mm rim
    assert attention_share(corner, tumour, spacing)[0] == 0.0
    # the rim is in mm: every voxel within 10 mm (Euclidean, voxel centres) of a tumour voxel, counted by brute force
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in tumour.shape], indexing="ij"), -1).reshape(-1, 3) * spacing
    nearest = np.linalg.norm(grid[:, None] - (np.argwhere(tumour) * spacing)[None], axis=-1).min(1)
    assert attention_share(on_tumour, tumour, spacing)[1] == pytest.approx(float((nearest <= 10.0).mean()))
    assert attention_share(on_tumour, tumour, spacing, rim_mm=0.0)[1] == pytest.approx(tumour.mean())
    assert all(np.isnan(attention_share(on_tumour, np.zeros_like(tumour), spacing)))


def test_the_attention_share_of_a_case_is_measured_on_its_own_map_and_tumour():
    masks = torch.zeros(SHAPE, dtype=torch.uint8)
    masks[0, 2:14, 2:14, 1:7], masks[1, 6:10, 6:10, 3:5] = 1, 1
    d = PNIPredictord("patch", PNIPredictor(pattennet()))({"patch": patch(), "patch_mask": masks})
    expected = attention_share(d["attention"][0].numpy(), masks[1].numpy(), (2.0, 2.0, 3.0))
    assert (d["attention_in_tumour_rim"], d["tumour_rim_share"]) == pytest.approx(expected)
    assert 0 < d["tumour_rim_share"] < 1
    empty = PNIPredictord("patch", PNIPredictor(pattennet()))({"patch": patch(), "patch_mask": torch.zeros_like(masks)})
    assert empty["attention_in_tumour_rim"] is None and empty["tumour_rim_share"] is None
