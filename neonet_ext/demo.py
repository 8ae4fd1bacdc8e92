"""`make demo`: generate a small synthetic HBP-MRI cohort, cut TLCR patches, draw a montage.

    python -m neonet_ext.demo --out output/demo --cases 6

Writes ``OUT/cohort/`` (the cohort, see :mod:`neonet_ext.data.synthetic`),
``OUT/tlcr/<case>_tlcr.nii.gz`` (2-channel patch) and ``<case>_tlcr_mask.nii.gz``
(liver-or-tumour and tumour masks), and ``OUT/montage.png``. A case that fails is
reported and skipped; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from monai.data import load_decathlon_datalist
from monai.transforms import Compose, LoadImaged, Orientationd, SaveImaged

from neonet_ext.data.discovery import describe_case_error
from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort
from neonet_ext.transforms import TLCR_ROI_SIZE, TLCRd
from neonet_ext.utils.writers import AtomicNibabelWriter
from neonet_ext.visualize import MontageRow, save_montage


def tlcr_pipeline(output_dir: Path, roi_size) -> Compose:
    """Load a case, orient it RAS, cut TLCR and save the patch and masks under ``output_dir``."""
    save = dict(output_dir=output_dir, writer=AtomicNibabelWriter, separate_folder=False, print_log=False, resample=False)
    return Compose(
        [
            LoadImaged("image", image_only=True, ensure_channel_first=True),
            LoadImaged("label", image_only=True, ensure_channel_first=True, dtype=np.uint8),
            Orientationd(["image", "label"], axcodes="RAS", labels=None),
            TLCRd(roi_size=roi_size),
            SaveImaged("patch", output_postfix="tlcr", **save),
            SaveImaged("patch_mask", output_postfix="tlcr_mask", output_dtype=np.uint8, **save),
        ]
    )


def cut_patches(datalist: list[dict], output_dir: Path, roi_size, keep: int = 0) -> tuple[list[dict], list[str]]:
    """Cut and save TLCR patches for every case of ``datalist``, going on past failures.

    Returns the transformed items of the first ``keep`` successful cases (for drawing)
    and one ``"<image file>: <error>"`` line per failed case.
    """
    pipeline = tlcr_pipeline(output_dir, roi_size)
    kept: list[dict] = []
    failures: list[str] = []
    for i, item in enumerate(datalist, 1):
        case = Path(item["image"]).name.removesuffix(".nii.gz")
        try:
            out = pipeline(item)
        except Exception as e:  # one bad case must not stop the batch
            failures.append(describe_case_error(item, e))
            print(f"[{i}/{len(datalist)}] {case}: FAILED: {failures[-1]}", file=sys.stderr)
            continue
        print(f"[{i}/{len(datalist)}] {case}: pni={item.get('pni', '?')} TLCR patch {tuple(out['patch'].shape)}, "
              f"{int(out['patch_mask'][1].sum())} tumour voxels in the crop")
        if len(kept) < keep:
            kept.append(out | {"case": case, "pni": item.get("pni")})
    return kept, failures


def _both_classes_first(items: list[dict]) -> list[dict]:
    """Alternate PNI+ and PNI- cases so a short montage shows both."""
    positive = [it for it in items if it["pni"]]
    negative = [it for it in items if not it["pni"]]
    mixed = [it for pair in zip(positive, negative) for it in pair]
    return mixed + positive[len(mixed) // 2 :] + negative[len(mixed) // 2 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("output/demo"), help="output folder")
    parser.add_argument("--cases", type=int, default=6, help="number of synthetic cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--roi-size", type=int, nargs=3, default=list(TLCR_ROI_SIZE), help="TLCR crop size X Y Z")
    parser.add_argument("--montage-cases", type=int, default=4, help="cases drawn in montage.png")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    cohort_dir = args.out / "cohort"
    # one permuted block for the whole demo cohort: its PNI+ share is the study's exactly
    write_cohort(cohort_dir, args.cases, args.seed, SyntheticCohortConfig(block_size=args.cases))
    datalist = load_decathlon_datalist(cohort_dir / "dataset.json", data_list_key="training")

    kept, failures = cut_patches(datalist, args.out / "tlcr", args.roi_size, keep=len(datalist))
    kept = _both_classes_first(kept)[: args.montage_cases]
    rows = [
        MontageRow(
            image=out["image"][0].numpy(),
            label=out["label"][0].numpy(),
            spacing=np.sqrt((out["image"].affine[:3, :3].numpy() ** 2).sum(0)),
            title=f"{out['case']}  PNI{'+' if out['pni'] else '-'}",
            patch=out["patch"].numpy(),
        )
        for out in kept
    ]
    if rows:
        save_montage(rows, args.out / "montage.png")
    print(
        f"demo: {len(datalist) - len(failures)} of {len(datalist)} cases cut into TLCR patches in "
        f"{time.perf_counter() - start:.1f} s; patches in {args.out / 'tlcr'}, montage {args.out / 'montage.png'}"
    )
    if failures:
        print("failed cases:\n  " + "\n  ".join(failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
