"""Training of NeoGen's AutoencoderKL: reconstruction, KL and patch-adversarial losses."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, default_prepare_batch
from monai.inferers import Inferer
from monai.losses import PatchAdversarialLoss
from torch.optim import Optimizer


def kl_divergence(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over latent voxels, averaged over the batch.

    Args:
        z_mu, z_sigma: (B, C, *S) posterior mean and standard deviation.
    """
    kl = 0.5 * (z_mu.pow(2) + z_sigma.pow(2) - torch.log(z_sigma.pow(2)) - 1)
    return kl.flatten(1).sum(1).mean()


class AutoencoderGANTrainer(Trainer):
    """One generator and one discriminator update per batch for an ``AutoencoderKL``.

    Generator loss: ``reconstruction_loss(x_hat, x) + kl_weight * KL + adversarial_weight * adv(D(x_hat))``
    (the reconstruction loss L1 unless given);
    discriminator loss: ``adversarial_weight * (adv(D(x_hat), fake) + adv(D(x), real)) / 2``
    with least-squares patch-adversarial losses. The adversarial terms start at epoch
    ``adversarial_start_epoch`` (1-based), after the autoencoder has learnt to reconstruct.
    No perceptual loss: the usual ones download weights at run time.

    ``engine.state.output`` holds ``image`` and ``pred`` (B, 1, *S) and the float losses
    ``loss`` (generator total), ``recon_loss``, ``kl_loss``, ``adv_loss`` and ``d_loss``;
    as with ``SupervisedTrainer`` it is decollated into one dictionary per batch item, so
    ``monai.handlers.from_engine(["loss"], first=True)`` reads it.

    Args:
        device: where to train.
        max_epochs: number of epochs.
        train_data_loader: yields dictionaries with ``image_key`` (B, 1, *S).
        autoencoder: ``monai.networks.nets.AutoencoderKL`` (forward returns recon, mu, sigma).
        discriminator: ``monai.networks.nets.PatchDiscriminator`` (last output = logits). Its
            step scores real and reconstructed images in one batch, so it must normalise
            per sample (instance norm), not per batch.
        g_optimizer, d_optimizer: optimisers of the two networks.
        kl_weight, adversarial_weight: loss weights.
        reconstruction_loss: ``loss(x_hat, x)`` between the reconstruction and the input (default
            ``torch.nn.L1Loss()``; e.g. ``torch.nn.MSELoss()``, which PSNR measures).
        adversarial_start_epoch: first epoch with adversarial terms.
        image_key: key of the image in each batch.
        train_handlers: handlers with ``attach``, as for ``SupervisedTrainer``.
        amp: mixed precision on CUDA.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        autoencoder: torch.nn.Module,
        discriminator: torch.nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        kl_weight: float = 1e-6,
        adversarial_weight: float = 0.05,
        adversarial_start_epoch: int = 1,
        image_key: str = "image",
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        prepare_batch: Callable = default_prepare_batch,
        key_train_metric: dict | None = None,
        reconstruction_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            prepare_batch=prepare_batch,
            key_metric=key_train_metric,
            handlers=train_handlers,
            amp=amp,
        )
        self.autoencoder = autoencoder
        self.discriminator = discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.kl_weight = kl_weight
        self.adversarial_weight = adversarial_weight
        self.adversarial_start_epoch = adversarial_start_epoch
        self.image_key = image_key
        self.adversarial_loss = PatchAdversarialLoss(criterion="least_squares")
        self.reconstruction_loss = reconstruction_loss or torch.nn.L1Loss()

    def _iteration(self, engine: AutoencoderGANTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        images = batchdata[self.image_key].to(engine.state.device, non_blocking=engine.non_blocking)
        adversarial = engine.state.epoch >= self.adversarial_start_epoch and self.adversarial_weight > 0
        autocast = torch.autocast(engine.state.device.type, enabled=engine.amp)
        self.autoencoder.train()
        self.discriminator.train()

        self.g_optimizer.zero_grad(set_to_none=True)
        with autocast:
            recon, z_mu, z_sigma = self.autoencoder(images)
            recon_loss = self.reconstruction_loss(recon.float(), images.float())
            kl_loss = kl_divergence(z_mu.float(), z_sigma.float())
            g_loss = recon_loss + self.kl_weight * kl_loss
            adv_loss = torch.zeros((), device=images.device)
            if adversarial:
                logits_fake = self.discriminator(recon.contiguous().float())[-1]
                adv_loss = self.adversarial_loss(logits_fake, target_is_real=True, for_discriminator=False)
                g_loss = g_loss + self.adversarial_weight * adv_loss
        self._step(engine, g_loss, self.g_optimizer)

        d_loss = torch.zeros((), device=images.device)
        if adversarial:
            self.d_optimizer.zero_grad(set_to_none=True)
            with autocast:
                # one forward pass for both halves: DistributedDataParallel allows one per backward
                both = torch.cat([recon.detach(), images]).contiguous().float()
                logits_fake, logits_real = self.discriminator(both)[-1].chunk(2)
                d_loss = 0.5 * (
                    self.adversarial_loss(logits_fake, target_is_real=False, for_discriminator=True)
                    + self.adversarial_loss(logits_real, target_is_real=True, for_discriminator=True)
                )
                d_loss = self.adversarial_weight * d_loss
            self._step(engine, d_loss, self.d_optimizer)

        engine.state.output = {
            "image": images,
            "pred": recon.detach(),
            "loss": g_loss.item(),
            "recon_loss": recon_loss.item(),
            "kl_loss": kl_loss.item(),
            "adv_loss": adv_loss.item(),
            "d_loss": d_loss.item(),
        }
        # as SupervisedTrainer does: handlers (and decollation) expect this event
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    @staticmethod
    def _step(engine: AutoencoderGANTrainer, loss: torch.Tensor, optimizer: Optimizer) -> None:
        if engine.scaler is not None:
            engine.scaler.scale(loss).backward()
            engine.scaler.step(optimizer)
            engine.scaler.update()
        else:
            loss.backward()
            optimizer.step()


class ReconstructionInferer(Inferer):
    """``network.reconstruct(x)``: the autoencoder's deterministic reconstruction (B, 1, *S).

    For evaluators, whose inferer must return one tensor where ``AutoencoderKL.forward``
    returns ``(recon, mu, sigma)``.
    """

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        return network.reconstruct(inputs)
