"""Checks on the bundles' config files themselves, without running them: configs stay readable
(short expressions) and the definitions written in two configs stay the same."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from bundle_runs import parse_configs

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted([*REPO.glob("bundles/*/configs/**/*.json"), *REPO.glob("neonet_ext/study/configs/*.json")])
#: Longer than this, an expression belongs in a named, tested helper of neonet_ext (or in plain config).
MAX_EXPRESSION_LENGTH = 200


def expressions(node, path: str = "") -> Iterator[tuple[str, str]]:
    """``(config id, expression)`` of every string value that starts with ``$``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from expressions(value, f"{path}#{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from expressions(value, f"{path}#{i}")
    elif isinstance(node, str) and node.startswith("$"):
        yield path, node


def test_config_files_are_found():
    assert len(CONFIG_FILES) > 20 and all(f.suffix == ".json" for f in CONFIG_FILES)


def test_no_config_expression_is_longer_than_200_characters():
    too_long = [
        f"{len(text)} characters: {file.relative_to(REPO)} {config_id}"
        for file in CONFIG_FILES
        for config_id, text in expressions(json.loads(file.read_text()))
        if len(text) > MAX_EXPRESSION_LENGTH
    ]
    assert not too_long, "move these into a named helper of neonet_ext:\n" + "\n".join(too_long)


# ------------------------------------------------------------------ NeoSeg: one preprocessing in two configs

NEOSEG = REPO / "bundles" / "neoseg" / "configs"
#: Arguments given once per key (``mode``, ``dtype``): the image's entry is the one inference uses.
PER_KEY_ARGUMENTS = ("mode", "dtype")


def for_the_image_alone(transform: dict) -> dict:
    """A transform of training's ``load_image`` (image and label) as it applies to the image alone,
    which is all that inference loads."""
    keys = transform["keys"] if isinstance(transform["keys"], list) else [transform["keys"]]
    image = keys.index("image")
    image_only = {**transform, "keys": "image"}
    for name in PER_KEY_ARGUMENTS:
        if isinstance(transform.get(name), list):
            image_only[name] = transform[name][image]
    return image_only


def loading_steps(config, key: str) -> list[dict]:
    """The raw transform entries of a loading list that train.json composes from named pieces
    (``"$@read_pair + [@resample_labels] + ..."``), in order."""
    steps = []
    for name in re.findall(r"@(\w+)", config[key]):
        piece = config[name]
        steps.extend(piece if isinstance(piece, list) else [piece])
    return steps


def image_steps(steps: list[dict]) -> list[dict]:
    return [for_the_image_alone(t) for t in steps if "image" in (t["keys"] if isinstance(t["keys"], list) else [t["keys"]])]


def test_neoseg_inference_preprocesses_the_image_as_training_does():
    """inference.json stands alone (a model-zoo bundle's inference config must), so it repeats the
    image steps of train.json's ``load_image``; a change to one copy alone fails here."""
    train, inference = parse_configs(NEOSEG, ["train.json"]), parse_configs(NEOSEG, ["inference.json"])
    trained_on, inferred_on = loading_steps(train, "load_image"), inference["preprocessing#transforms"]
    # the loaders differ on purpose: inference reads DICOM series as well as NIfTI files
    assert trained_on[0]["_target_"] == "LoadImaged" and inferred_on[0]["_target_"] == "neonet_ext.transforms.LoadScand"
    # and inference keeps a copy of the image as read, on its own grid, for the tumour refiner
    keep_input = {"_target_": "CopyItemsd", "keys": "image", "names": "input_image"}
    assert inferred_on[2] == keep_input
    assert [for_the_image_alone(t) for t in trained_on[1:]] == [t for t in inferred_on[1:] if t != keep_input]
    settings = set(re.findall(r"@(\w+)", json.dumps(inferred_on)))
    assert settings >= {"spacing", "intensity_percentiles", "body_threshold"}
    for name in settings - {"series"}:  # series: which DICOM series to read, inference's alone
        assert train[name] == inference[name], name


def test_neoseg_training_targets_load_the_image_as_validation_does():
    """Training reads class fractions (the one-hot label resampled linearly) where validation and the
    studies read the label map (nearest): the image must go through the same steps in both."""
    train = parse_configs(NEOSEG, ["train.json"])
    labels, fractions = loading_steps(train, "load_image"), loading_steps(train, "load_class_fractions")
    assert image_steps(fractions) == image_steps(labels)
    assert [t["_target_"] for t in fractions if t not in labels] == ["AsDiscreted", "Spacingd", "EnsureTyped"]

