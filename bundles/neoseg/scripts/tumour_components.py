"""Print the sizes of the tumour components in a cohort's label maps, as ``MIN_TUMOUR_VOLUME_ML``'s comment and
the NeoSeg docs quote them (the smallest primary tumour, the smallest satellite).

    python bundles/neoseg/scripts/tumour_components.py --dataset_dir output/cohort [--max_cases N]

``--dataset_dir`` is a cohort folder of the generator (or any folder with ``labelsTr/*.nii.gz``, labels
0 background, 1 liver, 2 tumour). Components are 26-connected, as ``CleanTumourLabel`` counts them.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import nibabel as nib
import numpy as np

from neonet_ext.transforms.tumour_mask import component_volumes_ml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_dir", type=Path, required=True)
    parser.add_argument("--max_cases", type=int, help="only the first N label maps (sorted by name)")
    args = parser.parse_args()
    labels = sorted((args.dataset_dir / "labelsTr").glob("*.nii.gz"))[: args.max_cases]
    if not labels:
        raise SystemExit(f"{args.dataset_dir / 'labelsTr'}: no *.nii.gz label maps")
    largest, others = [], []
    for path in labels:
        image = nib.load(path)
        volumes = component_volumes_ml(np.asarray(image.dataobj), image.header.get_zooms()[:3])
        if volumes:
            largest.append(volumes[0])
            others.extend(volumes[1:])
    print(f"{len(labels)} label maps in {args.dataset_dir}; {len(largest)} with a tumour, "
          f"{sum(1 for _ in others)} further components")
    print(f"largest component per case: smallest {min(largest):.3f} ml, median {statistics.median(largest):.2f} ml")
    if others:
        print(f"further components (satellites): smallest {min(others):.3f} ml, median {statistics.median(others):.3f} ml")


if __name__ == "__main__":
    main()
