"""NeoCls inference: a PNI probability and an attention map per TLCR patch, and the page that shows them.

These are the classification end of the MRI -> NeoSeg -> TLCR -> NeoCls chain. They are
dictionary transforms, so the chain is one post-processing ``Compose`` that
:class:`~neonet_ext.engines.CaseRunner` runs case by case.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from monai.data import MetaTensor
from monai.data.utils import create_file_basename
from monai.transforms import MapTransform, ScaleIntensity
from monai.utils import ImageMetaKey
from monai.visualize import GradCAM

from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.metrics import attention_share, label_volume_ml
from neonet_ext.networks.nets.pattennet import upsample_attention_map
from neonet_ext.utils.writers import case_output_name

__all__ = [
    "ATTENTION_METHODS",
    "PNIPredictor",
    "PNIPredictord",
    "SaveCaseReportd",
    "average_attention_maps",
    "gradcam_target_layer",
    "tumour_volume_ml",
]

#: How an attention map is made: PattenNet's spatial attention, Grad-CAM, or no map.
ATTENTION_METHODS = ("spatial", "gradcam", "none")


def tumour_volume_ml(case: Mapping[Hashable, torch.Tensor], seg_key: str = "pred", mask_key: str = "patch_mask") -> float | None:
    """Tumour volume of a case in ml: from its whole segmentation ``seg_key`` (label map) when
    there is one, else from the tumour channel of its patch masks (the tumour inside the
    crop), else None."""
    if isinstance(case.get(seg_key), torch.Tensor):
        return label_volume_ml(case[seg_key], TUMOUR)
    if isinstance(case.get(mask_key), torch.Tensor):
        return label_volume_ml(case[mask_key][1:], 1)
    return None


def liver_volume_ml(case: Mapping[Hashable, torch.Tensor], seg_key: str = "pred") -> float | None:
    """Volume in ml of the segmented liver, tumour included (the organ), from the case's label map
    ``seg_key``; None when the case has no label map (a run on precomputed patches)."""
    seg = case.get(seg_key)
    if not isinstance(seg, torch.Tensor):
        return None
    return label_volume_ml(seg, LIVER) + label_volume_ml(seg, TUMOUR)


def _scale_to_unit(cam: torch.Tensor) -> torch.Tensor:
    """Each Grad-CAM map of a batch (B, 1, X, Y, Z) scaled linearly so that its minimum is 0 and
    its maximum 1. MONAI's default post-processing maps them to 1 and 0, which flips the map: its
    highest values would mark where the class's evidence is lowest."""
    return torch.stack([torch.as_tensor(ScaleIntensity(minv=0.0, maxv=1.0)(m)) for m in cam])


def _has_spatial_attention(network: nn.Module) -> bool:
    return hasattr(network, "forward_with_attention") and any(
        getattr(getattr(stage, "attention", None), "spatial_attention", None) is not None
        for stage in getattr(network, "stages", ())
    )


def gradcam_target_layer(network: nn.Module, example: torch.Tensor) -> str:
    """The layer Grad-CAM reads by default: the convolution of PattenNet's last stage (its
    gradients pass through that stage's attention gates), else the last trainable layer (in
    execution order) whose output still has several channels and a spatial extent, found
    with one forward pass of ``example`` (B, C, X, Y, Z)."""
    stages = getattr(network, "stages", None)
    if isinstance(stages, nn.ModuleList) and len(stages):
        return f"stages.{len(stages) - 1}.conv"
    order: list[str] = []

    def record(name: str):
        def hook(module, inputs, output):
            if (
                isinstance(output, torch.Tensor)
                and output.ndim == example.ndim
                and output.shape[1] > 1
                and output.shape[2:].numel() > 1
                and any(p.requires_grad for p in module.parameters(recurse=False))
            ):
                order.append(name)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in network.named_modules() if not list(m.children())]
    try:
        with torch.no_grad():
            network(example)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ValueError(f"no layer of {type(network).__name__} has a spatial output with gradients for Grad-CAM.")
    return order[-1]


def average_attention_maps(maps: Sequence[torch.Tensor], spatial_size: Sequence[int]) -> torch.Tensor:
    """The map :class:`PNIPredictor` shows: a batch of one's spatial gates (each (1, 1, x, y, z), on its block's
    grid) resized to the patch's ``spatial_size`` and averaged, as (1, X, Y, Z) float32."""
    # blocks after a strided stage sit on coarser grids: bring each to the patch before averaging
    return torch.stack([upsample_attention_map(m, spatial_size) for m in maps]).mean(0)[0].float()


class PNIPredictor:
    """PNI probability and attention map of one TLCR patch.

    Args:
        network: classifier mapping (B, C, X, Y, Z) to two logits (class 1 = PNI), weights
            loaded, on ``device``.
        attention: ``"spatial"``: PattenNet's spatial attention gates, averaged over its
            blocks and resized to the patch (trilinear); ``"gradcam"``: Grad-CAM of the PNI
            logit at ``target_layer``, scaled to [0, 1] (1 where the evidence for PNI is highest);
            ``"none"``: no map.
        target_layer: module name for Grad-CAM (see :func:`gradcam_target_layer` for the default).
        device: where the network runs.
        amp: autocast on CUDA for the probability.

    Raises:
        ValueError: ``"spatial"`` asked of a network without spatial attention (a baseline, the
            channel-only ablation or zero blocks), or an unknown method.
    """

    def __init__(
        self,
        network: nn.Module,
        attention: str = "spatial",
        target_layer: str | None = None,
        device: str | torch.device = "cpu",
        amp: bool = False,
    ) -> None:
        if attention not in ATTENTION_METHODS:
            raise ValueError(f"attention must be one of {ATTENTION_METHODS}, got {attention!r}.")
        if attention == "spatial" and not _has_spatial_attention(network):
            raise ValueError(
                f"attention='spatial' needs PattenNet's spatial attention, which this {type(network).__name__} "
                "does not have; use --attention gradcam (or none)."
            )
        self.network = network.eval()
        self.attention = attention
        self.target_layer = target_layer
        self.device = torch.device(device)
        self.amp = amp
        self._gradcam: GradCAM | None = None

    def probability(self, x: torch.Tensor) -> float:
        """PNI probability of a batch of one patch (1, C, X, Y, Z)."""
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.amp and self.device.type == "cuda"):
            logits = self.network(x)
        return float(torch.softmax(logits.float(), dim=1)[0, 1])

    def attention_map(self, x: torch.Tensor) -> torch.Tensor | None:
        """Attention map (1, X, Y, Z) on the patch grid of a batch of one patch, or None."""
        if self.attention == "spatial":
            with torch.no_grad():
                maps = self.network.attention_maps(x, upsample=False)
            return average_attention_maps(maps, x.shape[2:])
        if self.attention == "gradcam":
            if self._gradcam is None:
                layer = self.target_layer or gradcam_target_layer(self.network, x)
                if layer not in dict(self.network.named_modules()):
                    raise ValueError(f"Grad-CAM target layer {layer!r} is not a module of {type(self.network).__name__}.")
                self._gradcam = GradCAM(self.network, target_layers=layer, postprocessing=_scale_to_unit)
            with torch.enable_grad():
                return self._gradcam(x, class_idx=1)[0].detach().float()
        return None

    def __call__(self, patch: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """
        Args:
            patch: (C, X, Y, Z) TLCR patch.

        Returns:
            the PNI probability in [0, 1] and the attention map (1, X, Y, Z) on the CPU, or None.
        """
        x = torch.as_tensor(patch, dtype=torch.float32).unsqueeze(0).to(self.device)
        p = self.probability(x)
        attention = self.attention_map(x)
        return p, None if attention is None else attention.cpu()


class PNIPredictord(MapTransform):
    """Dictionary form of :class:`PNIPredictor`, for a case with a TLCR patch.

    Adds ``probability_key`` (a float, or None when the case has no tumour),
    ``tumour_found_key`` (bool) and ``attention_key``: a (1, X, Y, Z) MetaTensor with the
    patch's meta data and affine, zeros without a tumour or a map. ``SaveImaged`` names
    it, like every other output of the case, after its ``filename_or_obj``: the patch's
    own (in the chain, the input volume's), or, with ``case_key``, the case id (for patches
    loaded from files, whose names are the patches'). A case has no tumour when its
    ``mask_key`` tumour channel (channel 1) is empty, or, without masks, when the patch's
    tumour channel is all zero: a classifier trained on tumour patches says nothing about
    an empty one. A case whose ``refusal_key`` holds a reason (:class:`~neonet_ext.engines.InputGated`)
    gets no probability either.

    It also says where the map looks: ``attention_share_key`` is the share of the map's mass
    within the tumour and a ``rim_mm`` rim around it, ``region_share_key`` the share of the patch
    that region takes (what an even map would score); see :func:`neonet_ext.metrics.attention_share`.
    Both are None without a tumour or a map.

    Args:
        keys: the patch key (one).
        predictor: the :class:`PNIPredictor`.
        mask_key: (2, X, Y, Z) liver-or-tumour and tumour masks of the patch, if present.
        case_key: the key of the case id that names the outputs; None keeps the patch's name.
        rim_mm: width of the rim around the tumour, in mm.
    """

    def __init__(
        self,
        keys: Hashable = "patch",
        predictor: PNIPredictor | None = None,
        mask_key: str = "patch_mask",
        probability_key: str = "pni_probability",
        attention_key: str = "attention",
        tumour_found_key: str = "tumour_found",
        case_key: str | None = None,
        attention_share_key: str = "attention_in_tumour_rim",
        region_share_key: str = "tumour_rim_share",
        rim_mm: float = 10.0,
        refusal_key: str = "refused",
    ) -> None:
        super().__init__(keys)
        self.refusal_key = refusal_key
        self.attention_share_key = attention_share_key
        self.region_share_key = region_share_key
        self.rim_mm = rim_mm
        if predictor is None:
            raise ValueError("PNIPredictord needs a predictor.")
        self.predictor = predictor
        self.mask_key = mask_key
        self.probability_key = probability_key
        self.attention_key = attention_key
        self.tumour_found_key = tumour_found_key
        self.case_key = case_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            patch = d[key]
            tumour = d[self.mask_key][1] if self.mask_key in d else patch[1]
            found = bool(tumour.any())
            scored = found and not d.get(self.refusal_key)
            probability, attention = self.predictor(patch) if scored else (None, None)
            if attention is None:
                attention = torch.zeros((1, *patch.shape[1:]), dtype=torch.float32)
            meta = dict(patch.meta) if isinstance(patch, MetaTensor) else {}  # the patch's affine included
            if self.case_key is not None or ImageMetaKey.FILENAME_OR_OBJ not in meta:
                # SaveImage strips one extension from the name: the suffix keeps dots inside a case id
                meta[ImageMetaKey.FILENAME_OR_OBJ] = f"{d.get(self.case_key, key) if self.case_key else key}.nii.gz"
            shares = (None, None)
            if found and probability is not None and float(attention.abs().sum()) > 0:
                spacing = patch.pixdim.tolist() if isinstance(patch, MetaTensor) else [1.0, 1.0, 1.0]
                shares = attention_share(attention[0].numpy(), np.asarray(tumour.cpu()), spacing, self.rim_mm)
            d[self.probability_key] = probability
            d[self.tumour_found_key] = found
            d[self.attention_key] = MetaTensor(attention, meta=meta)
            d[self.attention_share_key], d[self.region_share_key] = shares
        return d


class SaveCaseReportd(MapTransform):
    """Write :func:`~neonet_ext.visualize.save_case_report`'s one-page PNG of a case.

    The page shows the tumour neighbourhood: ``image_key`` (the unmasked (1, X, Y, Z)
    crop) with the segmentation from ``mask_key`` ((2, X, Y, Z) liver-or-tumour and tumour
    masks), the two TLCR channels of ``keys``, the attention map and the probability.
    Without the crop or the masks it falls back to the patch's channel 0 and its non-zero
    voxels. Written atomically beside the attention map, named as
    :func:`~neonet_ext.utils.writers.case_output_name` names the case's other outputs
    (``output_dir/<case>/<case>_report.png``, from the attention map's meta data); the path
    goes into ``report_key``.

    Args:
        keys: the patch key (one).
        output_dir: root folder of the per-case outputs.
    """

    def __init__(
        self,
        keys: Hashable = "patch",
        output_dir: str | os.PathLike = ".",
        image_key: str = "patch_image",
        mask_key: str = "patch_mask",
        attention_key: str = "attention",
        probability_key: str = "pni_probability",
        case_key: str = "case_id",
        report_key: str = "report",
        attention_share_key: str = "attention_in_tumour_rim",
        region_share_key: str = "tumour_rim_share",
        refusal_key: str = "refused",
    ) -> None:
        super().__init__(keys)
        self.refusal_key = refusal_key
        self.attention_share_key = attention_share_key
        self.region_share_key = region_share_key
        self.output_dir = Path(output_dir)
        self.image_key = image_key
        self.mask_key = mask_key
        self.attention_key = attention_key
        self.probability_key = probability_key
        self.case_key = case_key
        self.report_key = report_key

    @staticmethod
    def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        from neonet_ext.visualize import save_case_report  # matplotlib only when a page is drawn

        d = dict(data)
        for key in self.key_iterator(d):
            patch = self._numpy(d[key]).astype(np.float32)
            image = self._numpy(d[self.image_key])[0] if self.image_key in d else patch[0]
            masks = self._numpy(d[self.mask_key]) > 0 if self.mask_key in d else patch != 0
            label = np.where(masks[1], TUMOUR, np.where(masks[0], LIVER, 0))
            spacing: Sequence[float] = (1.0, 1.0, 1.0)
            if isinstance(d[key], MetaTensor):
                spacing = d[key].pixdim.tolist()
            attention = d.get(self.attention_key)
            probability = d.get(self.probability_key)
            case = str(d.get(self.case_key, "case"))
            meta = attention.meta if isinstance(attention, MetaTensor) else {ImageMetaKey.FILENAME_OR_OBJ: f"{case}.nii.gz"}
            base = create_file_basename("report", case_output_name(meta)["subject"], self.output_dir, makedirs=True)
            path = Path(f"{base}.png")
            save_case_report(
                image,
                label,
                spacing,
                patch,
                None if attention is None or probability is None else self._numpy(attention)[0],
                probability,
                case,
                path,
                attention_shares=(d.get(self.attention_share_key), d.get(self.region_share_key)),
                refusal=d.get(self.refusal_key) or None,
            )
            d[self.report_key] = str(path)
        return d
