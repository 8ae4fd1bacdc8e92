"""Print the parameters and patch size of each NeoSeg network override, as the docs' Networks table quotes them.

    python bundles/neoseg/scripts/network_sizes.py

Each row is ``inference.json`` layered with ``configs/networks/<name>.json``, parsed as the bundle parses it;
the network is built on the CPU and its parameters counted.
"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.bundle import ConfigParser

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def network_size(override: Path) -> tuple[int, list[int]]:
    """``(parameters, patch_size)`` of the network that ``inference.json`` + ``override`` builds."""
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(override)])
    parser["device"] = "$torch.device('cpu')"
    network: torch.nn.Module = parser.get_parsed_content("network_def")
    return sum(p.numel() for p in network.parameters()), list(parser.get_parsed_content("patch_size"))


def main() -> None:
    print("| override | network | parameters | patch |\n| --- | --- | --- | --- |")
    for override in sorted((CONFIGS / "networks").glob("*.json")):
        parameters, patch = network_size(override)
        target = ConfigParser.load_config_file(override)["network_def"]["_target_"]
        print(f"| networks/{override.name} | {target} | {parameters / 1e6:.1f}M | {'x'.join(map(str, patch))} |")


if __name__ == "__main__":
    main()
