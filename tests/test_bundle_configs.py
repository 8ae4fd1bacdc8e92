"""Checks on the bundles' config files themselves, without running them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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

