"""What bringing NeoSeg's output back to the input grid costs, four ways side by side on the same case: the
network grid's argmax resampled by nearest neighbour (before bundle 0.3.0); the probabilities resampled linearly
by ``Invertd``, then the argmax (0.3.0 to 0.4.1); ``InputGridArgmaxd``, which gives the same labels as the
latter but resamples only around the non-background voxels (0.4.2); and ``TumourRefined`` with the shipped
tumour refiner (``models/refiner.pt``), which also labels the tumour's box again on the input grid: one pass
(0.6.0) and averaged over the config's ``refiner_flips`` mirror images (0.6.1).

    .venv/bin/python benchmarks/bench_neoseg_inversion.py [--rounds 5] [--full-size]

The case is synthetic case_000 (seed 0; ``--full-size``: the scanner-size 320x260x80 matrix). Its
preprocessing and sliding-window forward run once with the shipped weights; then each inversion
(on a copy of the network's softmax output) is timed in turn every round, next to the forward pass for scale.
Medians. The script also counts the voxels where the last two label maps differ.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nibabel as nib
import torch
from monai.bundle import ConfigParser
from monai.transforms import AsDiscreted, Invertd

from neonet_ext.data.synthetic import SyntheticCohortConfig, generate_case
from neonet_ext.engines import load_weights
from neonet_ext.networks import tumour_refiner
from neonet_ext.transforms import InputGridArgmaxd, TumourRefined
from neonet_ext.utils.timing import median_table, median_times_in_turn

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "neoseg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--full-size", action="store_true")
    args = parser.parse_args()
    config = SyntheticCohortConfig(shape=(320, 260, 80), inplane_spacing_mm=(1.2, 1.2)) if args.full_size else None
    case = generate_case(0, 0, config)
    folder = Path(tempfile.mkdtemp())
    nib.save(nib.Nifti1Image(case.image, case.affine), folder / "case_000.nii.gz")

    bundle = ConfigParser()
    bundle.read_config(str(BUNDLE / "configs" / "inference.json"))
    bundle.update({"bundle_root": str(BUNDLE), "device": "$torch.device('cpu')"})
    network = bundle.get_parsed_content("network").eval()
    load_weights(network, BUNDLE / "models" / "model.pt", what="NeoSeg")
    preprocessing, inferer = bundle.get_parsed_content("preprocessing"), bundle.get_parsed_content("inferer")
    data = preprocessing({"image": str(folder / "case_000.nii.gz")})

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(inferer(data["image"][None], network)[0], 0)

    probabilities = forward()

    def network_output() -> dict:
        item = {**data, "pred": probabilities.clone()}
        item["pred"].applied_operations = list(data["image"].applied_operations)
        return item

    def invertd(nearest_labels: bool) -> torch.Tensor:
        item = network_output()
        if nearest_labels:
            item = AsDiscreted("pred", argmax=True)(item)
        item = Invertd("pred", transform=preprocessing, orig_keys="image", nearest_interp=nearest_labels, to_tensor=True)(item)
        return item["pred"] if nearest_labels else AsDiscreted("pred", argmax=True)(item)["pred"]

    def input_grid_argmax() -> torch.Tensor:
        return InputGridArgmaxd("pred", orig_key="image")(network_output())["pred"]

    refiner = load_weights(tumour_refiner().eval(), BUNDLE / "models" / "refiner.pt", what="tumour refiner")
    bfloat16 = bundle.get_parsed_content("refiner_bfloat16")
    refine_once, refine_mirrored = (
        TumourRefined("pred", image_key="input_image", orig_key="image", network=refiner, bfloat16=bfloat16, flips=flips)
        for flips in ([()], bundle.get_parsed_content("refiner_flips")))

    differing = int((invertd(False).as_tensor().to(torch.uint8) != input_grid_argmax().as_tensor()).sum())
    steps = {"forward (sliding window)": forward, "labels, nearest (before 0.3.0)": lambda: invertd(True),
             "probabilities, linear (Invertd), then argmax (0.3.0-0.4.1)": lambda: invertd(False),
             "the same labels by InputGridArgmaxd (0.4.2)": input_grid_argmax,
             "InputGridArgmaxd, then the tumour refiner, one pass (0.6.0)": lambda: refine_once(network_output())["pred"],
             "the same, mirror images averaged (0.6.1)": lambda: refine_mirrored(network_output())["pred"]}
    medians = median_times_in_turn(steps, args.rounds)
    print(f"case_000 (seed 0), {'x'.join(map(str, case.image.shape))} voxels; network grid "
          f"{'x'.join(map(str, probabilities.shape[1:]))}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"medians of {args.rounds}")
    print(f"InputGridArgmaxd's labels differ from Invertd's then argmax in {differing} of {case.image.size} voxels "
          "(near-ties that the two resampling routes round apart)")
    print(median_table(medians, "step", digits=3))


if __name__ == "__main__":
    main()
