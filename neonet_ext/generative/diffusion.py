"""Latent diffusion training pieces for NeoGen: batches in latent space, the ControlNet inferer, the latent scale."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from monai.data import MetaTensor
from monai.engines.utils import DiffusionPrepareBatch
from monai.inferers import ControlNetDiffusionInferer, Inferer
from monai.networks.schedulers import RFlowScheduler, Scheduler

from neonet_ext.engines.checkpoints import load_checkpoint


class LatentScale(torch.nn.Module):
    """The factor that brings autoencoder latents to unit variance, kept as a buffer.

    It is saved in the diffusion checkpoint next to the UNet, so generation decodes with
    exactly the factor the UNet was trained with.
    """

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor(float(value)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.value


@torch.no_grad()
def estimate_latent_scale(
    autoencoder: torch.nn.Module | None, batches: Iterable[dict], image_key: str = "image", max_batches: int = 4
) -> LatentScale:
    """``1 / std`` of the posterior means of up to ``max_batches`` batches of ``image_key``: images (B, 1, *S)
    encoded by ``autoencoder``, or, with ``autoencoder=None``, posterior means already (from the latent cache)."""
    latents = []
    for i, batch in enumerate(batches):
        if i >= max_batches:
            break
        if autoencoder is None:
            z_mu = torch.as_tensor(batch[image_key])
        else:
            z_mu, _ = autoencoder.encode(batch[image_key].to(next(autoencoder.parameters()).device))
        latents.append(z_mu.flatten())
    if not latents:
        raise ValueError("cannot estimate the latent scale: the data loader yielded no batches")
    std = torch.cat(latents).std()
    if not torch.isfinite(std) or std <= 0:
        raise ValueError(f"latent standard deviation is {float(std)}: is the autoencoder trained?")
    return LatentScale(1.0 / float(std))


class LatentDiffusionPrepareBatch(DiffusionPrepareBatch):
    """Encode the batch with a frozen autoencoder, then draw noise, timesteps and the target.

    Returns ``(z, target, (), kwargs)`` for ``SupervisedTrainer``: ``z`` (B, C_z, *S_z) are the
    scaled posterior means, the latents that :func:`estimate_latent_scale` measures and that
    generation decodes. Posterior samples would add the encoder's sigma as noise the UNet has
    to model: a briefly trained autoencoder still has sigma near its initial 1, as large as
    the signal. ``kwargs`` holds ``noise`` and ``timesteps``, plus
    ``condition`` (the class context, ``condition_name``) and ``cn_cond`` (the ControlNet
    masks, ``control_name``) when those names are given. The target is the noise for
    DDPM/DDIM-style schedulers with ``prediction_type="epsilon"``, the velocity
    ``sqrt(a) * noise - sqrt(1 - a) * z`` with ``"v_prediction"``, ``z - noise`` for
    ``RFlowScheduler``, whose timesteps come from its own ``sample_timesteps``.

    With ``autoencoder=None`` the batch's ``image_key`` holds the posterior means already (read
    from :class:`neonet_ext.data.LatentCache`): nothing is encoded, the frozen encoder's forward
    pass that dominates a CPU update is skipped.

    Args:
        autoencoder: the trained ``AutoencoderKL``; kept in eval mode, no gradients. None: the batch
            holds cached latents.
        latent_scale: :class:`LatentScale` applied to the latents.
        scheduler: the training scheduler.
        image_key: key of the (B, 1, *S) image.
        condition_name: key of the (B, 1, num_classes) class context, or None.
        control_name: key of the (B, 2, *S) condition masks, or None.
    """

    def __init__(
        self,
        autoencoder: torch.nn.Module | None,
        latent_scale: LatentScale,
        scheduler: Scheduler,
        image_key: str = "image",
        condition_name: str | None = None,
        control_name: str | None = None,
    ) -> None:
        super().__init__(num_train_timesteps=scheduler.num_train_timesteps, condition_name=condition_name)
        self.autoencoder = autoencoder.eval().requires_grad_(False) if autoencoder is not None else None
        self.latent_scale = latent_scale
        self.scheduler = scheduler
        self.image_key = image_key
        self.control_name = control_name

    def get_timesteps(self, images: torch.Tensor) -> torch.Tensor:
        if isinstance(self.scheduler, RFlowScheduler):
            return self.scheduler.sample_timesteps(images)
        return super().get_timesteps(images)

    def get_target(self, images: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if isinstance(self.scheduler, RFlowScheduler):
            return images - noise
        if getattr(self.scheduler, "prediction_type", "epsilon") == "v_prediction":
            return self.scheduler.get_velocity(images, noise, timesteps)
        return noise

    def __call__(
        self, batchdata: dict[str, Any], device: str | torch.device | None = None, non_blocking: bool = False, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        images = batchdata[self.image_key]
        images = (images.as_tensor() if isinstance(images, MetaTensor) else images).to(device, non_blocking=non_blocking)
        with torch.no_grad():
            if self.autoencoder is None:
                z = self.latent_scale(images)
            else:
                self.autoencoder.eval()
                z = self.latent_scale(self.autoencoder.encode(images)[0])
        noise = self.get_noise(z)
        timesteps = self.get_timesteps(z).to(z.device)
        target = self.get_target(z, noise, timesteps)
        infer_kwargs: dict[str, Any] = {"noise": noise, "timesteps": timesteps}
        if self.condition_name is not None:
            infer_kwargs["condition"] = torch.as_tensor(batchdata[self.condition_name]).to(device).float()
        if self.control_name is not None:
            infer_kwargs["cn_cond"] = torch.as_tensor(batchdata[self.control_name]).to(device).float()
        return z, target, (), infer_kwargs


class ControlNetTrainingInferer(Inferer):
    """Training forward of a ControlNet on a frozen diffusion UNet, in latent space.

    ``SupervisedTrainer`` calls ``inferer(z, controlnet, noise=, timesteps=, cn_cond=,
    condition=)``; this passes the fixed ``diffusion_model`` to MONAI's
    ``ControlNetDiffusionInferer``, which adds the ControlNet residuals to the UNet's.

    Args:
        scheduler: the training scheduler (adds noise to ``z``).
        diffusion_model: the trained ``DiffusionModelUNet``; frozen here.
    """

    def __init__(self, scheduler: Scheduler, diffusion_model: torch.nn.Module) -> None:
        super().__init__()
        self.inferer = ControlNetDiffusionInferer(scheduler)
        self.diffusion_model = diffusion_model.eval().requires_grad_(False)

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.diffusion_model.eval()
        return self.inferer(inputs, self.diffusion_model, network, *args, **kwargs)


def load_diffusion_checkpoint(
    path: str, diffusion_model: torch.nn.Module, latent_scale: LatentScale, map_location: str | torch.device = "cpu"
) -> None:
    """Load a diffusion checkpoint ``{"model": ..., "latent_scale": ...}`` (as train_diffusion.json saves it).

    Read by :func:`neonet_ext.engines.load_checkpoint` onto ``map_location``; errors name the file.
    """
    try:
        state = load_checkpoint(path, map_location, what="NeoGen diffusion")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} Train the diffusion stage first.") from None
    if not isinstance(state, dict) or not {"model", "latent_scale"} <= set(state):
        raise ValueError(f"{path} is not a NeoGen diffusion checkpoint: expected the keys 'model' and 'latent_scale'")
    diffusion_model.load_state_dict(state["model"])
    latent_scale.load_state_dict(state["latent_scale"])
