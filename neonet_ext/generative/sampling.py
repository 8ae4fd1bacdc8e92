"""Mask-conditioned, class-conditioned generation of TLCR patches with NeoGen's three networks."""

from __future__ import annotations

import torch
from monai.inferers import ControlNetDiffusionInferer
from monai.networks.schedulers import RFlowScheduler, Scheduler

from neonet_ext.generative.diffusion import LatentScale
from neonet_ext.transforms.conditioning import ClassContext


def masked_patch(image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The TLCR patch of an image crop: (1, *S) image, (2, *S) masks -> (2, *S).

    Channel 0 is the image inside liver or tumour, channel 1 the image inside tumour,
    exactly as :class:`neonet_ext.transforms.TLCR` forms a real patch.
    """
    return image * (masks > 0).to(image.dtype)


class _EmbedOnce(torch.nn.Module):
    """Stands in for a ControlNet's condition embedding during one sample, which embeds the same masks
    at every denoising step: the first call's embedding is returned for every call with masks of that shape.

    The embedding of the full-resolution masks is about a fifth of a step on CPU.
    """

    def __init__(self, embedding: torch.nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.value: torch.Tensor | None = None

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        if self.value is None or self.value.shape[0] != masks.shape[0]:
            self.value = self.embedding(masks)
        return self.value


class MaskConditionedSampler:
    """Sample image crops (B, 1, *S) for a class, given condition masks (B, 2, *S).

    Latent noise (B, C_z, *S / f) is denoised by the diffusion UNet with the ControlNet's
    residuals from the masks and the class as a one-token context, then decoded by the
    autoencoder (latents divided by the training ``latent_scale``). Sampling is seeded:
    the same masks, class, seed and scheduler give the same image.

    Args:
        autoencoder: trained ``AutoencoderKL``.
        diffusion_model: trained class-conditional ``DiffusionModelUNet``.
        controlnet: trained ``ControlNet``.
        latent_scale: the factor the UNet was trained with.
        scheduler: DDPM, DDIM or RFlow scheduler.
        num_inference_steps: denoising steps.
        num_classes: number of classes of the context.
        guidance_scale: classifier-free guidance weight; None samples with the class context only.
        verbose: show a progress bar over the steps.
        cache_condition_embedding: embed the masks once per sample instead of at every step
            (same result, faster).
    """

    def __init__(
        self,
        autoencoder: torch.nn.Module,
        diffusion_model: torch.nn.Module,
        controlnet: torch.nn.Module,
        latent_scale: LatentScale,
        scheduler: Scheduler,
        num_inference_steps: int = 50,
        num_classes: int = 2,
        guidance_scale: float | None = None,
        verbose: bool = False,
        cache_condition_embedding: bool = True,
    ) -> None:
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        self.autoencoder = autoencoder.eval()
        self.diffusion_model = diffusion_model.eval()
        self.controlnet = controlnet.eval()
        self.latent_scale = latent_scale
        self.scheduler = scheduler
        self.num_inference_steps = num_inference_steps
        self.to_context = ClassContext(num_classes)
        self.guidance_scale = guidance_scale
        self.verbose = verbose
        self.cache_condition_embedding = cache_condition_embedding
        self._latent_shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.inferer = ControlNetDiffusionInferer(scheduler)

    @property
    def device(self) -> torch.device:
        return next(self.diffusion_model.parameters()).device

    @torch.no_grad()
    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Latent (C_z, *S_z) of an image crop of spatial shape ``image_shape`` (one encoder pass per shape)."""
        if image_shape not in self._latent_shapes:
            z_mu, _ = self.autoencoder.encode(torch.zeros(1, 1, *image_shape, device=self.device))
            self._latent_shapes[image_shape] = tuple(z_mu.shape[1:])
        return self._latent_shapes[image_shape]

    @torch.no_grad()
    def __call__(self, masks: torch.Tensor, class_index: int, seed: int = 0) -> torch.Tensor:
        """Generate (B, 1, *S) crops with intensities clipped to [0, 1] for masks (B, 2, *S)."""
        masks = torch.as_tensor(masks, dtype=torch.float32, device=self.device)
        if masks.ndim != 5 or masks.shape[1] != 2:
            raise ValueError(f"condition masks must be (B, 2, X, Y, Z), got {tuple(masks.shape)}")
        context = self.to_context(class_index).to(self.device).expand(masks.shape[0], 1, -1)
        latent_shape = self.latent_shape(tuple(masks.shape[2:]))
        generator = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn((masks.shape[0], *latent_shape), generator=generator).to(self.device)
        if isinstance(self.scheduler, RFlowScheduler):
            numel = int(torch.prod(torch.tensor(latent_shape[1:])))
            self.scheduler.set_timesteps(self.num_inference_steps, device=self.device, input_img_size_numel=numel)
        else:
            self.scheduler.set_timesteps(self.num_inference_steps, device=self.device)
        embedding = getattr(self.controlnet, "controlnet_cond_embedding", None)
        embed_once = self.cache_condition_embedding and isinstance(embedding, torch.nn.Module)
        if embed_once:
            self.controlnet.controlnet_cond_embedding = _EmbedOnce(embedding)
        # DDPM and DDIM (eta > 0) draw step noise from the global generator: seed it too.
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(seed)
                z = self._sample(noise, masks, context)
        finally:
            if embed_once:
                self.controlnet.controlnet_cond_embedding = embedding
        image = self.autoencoder.decode_stage_2_outputs(z / self.latent_scale.value)
        return image.clamp(0.0, 1.0)

    def _sample(self, noise: torch.Tensor, masks: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.inferer.sample(
            input_noise=noise,
            diffusion_model=self.diffusion_model,
            controlnet=self.controlnet,
            cn_cond=masks,
            scheduler=self.scheduler,
            conditioning=context,
            cfg=self.guidance_scale,
            verbose=self.verbose,
        )
