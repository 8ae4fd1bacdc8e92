#!/usr/bin/env bash
# Rebuild bundles/neogen/sample_data: 8 synthetic cases (4 PNI+), cut by NeoSeg's shipped
# weights; keeps the unmasked TLCR crop and the masks of each case. Run from the repository root.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash bundles/neoseg/scripts/cohort_patches.sh "$work" 8 9002 --prevalence 0.5 --block-size 8
python - "$work/patches" bundles/neogen/sample_data <<'PY'
import json, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
entries = []
for item in json.loads((src / "patches.json").read_text())["testing"]:
    case = item["case_id"]
    (dst / case).mkdir(parents=True, exist_ok=True)
    entry = {"case_id": case}
    for key in ("patch_image", "patch_mask"):
        name = Path(item[key]).name
        shutil.copy(src / item[key], dst / case / name)
        entry[key] = f"{case}/{name}"
    entries.append({**entry, "pni": item["pni"], "tumour_found": item["tumour_found"]})
doc = {"description": "NeoGen sample: TLCR crops and masks that NeoSeg (shipped weights) cut from 8 synthetic "
       "HBP-MRI cases (python -m neonet_ext.data.synthetic --cases 8 --seed 9002 --prevalence 0.5 --block-size 8 --int16); "
       "no patient data. Made by bundles/neogen/scripts/make_sample_data.sh.", "testing": entries}
(dst / "patches.json").write_text(json.dumps(doc, indent=2) + "\n")
PY
