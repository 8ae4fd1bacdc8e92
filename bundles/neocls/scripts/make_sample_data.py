"""Rebuild bundles/neocls/sample_data from NeoGen's sample: the 2-channel TLCR patch of each case,
formed from its crop and masks exactly as TLCR forms it. Run from the repository root:

    python bundles/neocls/scripts/make_sample_data.py
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np

SOURCE, TARGET = Path("bundles/neogen/sample_data"), Path("bundles/neocls/sample_data")

entries = []
for item in json.loads((SOURCE / "patches.json").read_text())["testing"]:
    case = item["case_id"]
    crop = nib.load(SOURCE / item["patch_image"])
    masks = np.asarray(nib.load(SOURCE / item["patch_mask"]).dataobj) > 0
    patch = np.asarray(crop.dataobj, dtype=np.float32)[..., None] * masks
    (TARGET / case).mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(patch.astype(np.float32), crop.affine), TARGET / case / f"{case}_tlcr.nii.gz")
    entries.append({"case_id": case, "patch": f"{case}/{case}_tlcr.nii.gz", "pni": item["pni"],
                    "tumour_found": item["tumour_found"]})
doc = {"description": "NeoCls sample: the 2-channel TLCR patches of NeoGen's sample (8 synthetic cases, 4 PNI+; "
       "NeoSeg found no tumour in one), formed from its crops and masks by "
       "bundles/neocls/scripts/make_sample_data.py; no patient data.", "testing": entries}
(TARGET / "patches.json").write_text(json.dumps(doc, indent=2) + "\n")
