"""Smoke check on a CUDA machine: TLCR on CUDA tensors and a PattenNet training step on the GPU.

    python benchmarks/check_cuda.py
"""

from __future__ import annotations

import torch
from monai.data import MetaTensor


from neonet_ext.networks import PattenNet, neogen_autoencoder
from neonet_ext.transforms import TLCR_ROI_SIZE, TLCRd


def main() -> None:
    device = torch.device("cuda")
    label = torch.zeros(1, 160, 128, 64, dtype=torch.uint8, device=device)
    label[0, 40:120, 30:100, 10:50] = 1
    label[0, 70:90, 50:70, 25:35] = 2
    image = MetaTensor(torch.rand(1, 160, 128, 64, device=device), affine=torch.eye(4, dtype=torch.float64))
    out = TLCRd(roi_size=TLCR_ROI_SIZE)({"image": image, "label": label})
    assert out["patch"].device.type == "cuda" and out["patch"].shape == (2, *TLCR_ROI_SIZE)
    assert int(out["patch_mask"][1].sum()) == 20 * 20 * 10
    print("TLCRd on CUDA tensors: ok, patch on", out["patch"].device)

    net = PattenNet(neogen_autoencoder()).to(device)
    frozen = {k: v.clone() for k, v in net.latent_encoder.state_dict().items()}
    optimizer = torch.optim.Adam(net.trainable_parameters(), 1e-3)
    x = torch.randn(4, 2, *TLCR_ROI_SIZE, device=device)
    loss = torch.nn.functional.cross_entropy(net.train()(x), torch.tensor([0, 1, 0, 1], device=device))
    loss.backward()
    optimizer.step()
    assert all(torch.equal(frozen[k], v) for k, v in net.latent_encoder.state_dict().items())
    print(f"PattenNet training step on {torch.cuda.get_device_name(device)}: ok, loss {loss.item():.3f}, encoder unchanged")


if __name__ == "__main__":
    main()
