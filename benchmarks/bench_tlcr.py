"""TLCR speed against its floor and against MONAI's nearest composition, side by side.

    .venv/bin/python benchmarks/bench_tlcr.py [--rounds 200] [--small]

Data: one synthetic case from neonet_ext.data.synthetic (scanner-size 320x260x80 by
default, the small 160x128x64 geometry with --small), crop 64x64x32. Every method is
timed once per round, in turn, so drifts of a shared machine hit all of them alike;
the table gives medians and ratios to the one-pass floor (``label == 2``).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialCrop, SpatialPad
from monai.transforms.utils import generate_spatial_bounding_box

from neonet_ext.data.synthetic import SyntheticCohortConfig, generate_case
from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.transforms import TLCR, TLCR_ROI_SIZE, TLCRd


def monai_composition(image, label, roi_size):
    """The same crop from MONAI parts: bounding box, SpatialCrop, SpatialPad, masks, concatenate."""
    box_start, box_end = generate_spatial_bounding_box(label, select_fn=lambda x: x == TUMOUR)
    start = [max((a + b) // 2 - c // 2, 0) for a, b, c in zip(box_start, box_end, roi_size)]
    crop = SpatialCrop(roi_start=start, roi_end=[s + c for s, c in zip(start, roi_size)])
    pad = SpatialPad(roi_size, method="end")
    img, lab = pad(crop(image)), pad(crop(label))
    tumour = lab == TUMOUR
    tissue = tumour | (lab == LIVER)
    if isinstance(img, torch.Tensor):
        return torch.cat([img * tissue, img * tumour])
    return np.concatenate([img * tissue, img * tumour])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--small", action="store_true", help="use the default 160x128x64 geometry")
    args = parser.parse_args()

    config = SyntheticCohortConfig() if args.small else SyntheticCohortConfig.full_size()
    case = generate_case(0, seed=0, config=config)
    image = case.image[None].astype(np.float32)
    label = case.label[None].astype(np.uint8)
    affine = torch.as_tensor(case.affine, dtype=torch.float64)
    image_mt = MetaTensor(torch.from_numpy(image), affine=affine, meta={"filename_or_obj": "case_000.nii.gz"})
    label_mt = MetaTensor(torch.from_numpy(label), affine=affine)
    roi = TLCR_ROI_SIZE
    tlcr, tlcrd = TLCR(roi), TLCRd(roi_size=roi)
    start = tlcr.window(label)
    crop = tuple(slice(s, s + c) for s, c in zip(start, roi))

    np.testing.assert_array_equal(tlcr(image, label), monai_composition(image, label, roi))
    methods = {
        "floor: label == 2 (one pass)": lambda: label == TUMOUR,
        "memcpy of the image crop": lambda: image[(0, *crop)].copy(),
        "MONAI composition, numpy": lambda: monai_composition(image, label, roi),
        "MONAI composition, MetaTensor": lambda: monai_composition(image_mt, label_mt, roi),
        "TLCR, numpy": lambda: tlcr(image, label),
        "TLCR, MetaTensor": lambda: tlcr(image_mt, label_mt),
        "TLCRd, MetaTensor + masks": lambda: tlcrd({"image": image_mt, "label": label_mt}),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for fn in methods.values():
        fn()
    for _ in range(args.rounds):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    medians = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    floor = medians["floor: label == 2 (one pass)"]
    print(f"TLCR benchmark: volume {label.shape[1:]} {label.dtype}, crop {roi}, {args.rounds} rounds, "
          f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    print(f"{'method':34s} {'median ms':>10s} {'x floor':>8s}")
    for name, ms in medians.items():
        print(f"{name:34s} {ms:10.3f} {ms / floor:8.2f}")
    mt = medians["MONAI composition, MetaTensor"] / medians["TLCRd, MetaTensor + masks"]
    print(f"TLCRd is {mt:.1f}x faster than the MONAI composition on MetaTensors")


if __name__ == "__main__":
    main()
