"""NeoGen's building blocks in neonet_ext.generative, at tiny size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.networks.nets import AutoencoderKL
from monai.networks.schedulers import DDPMScheduler, RFlowScheduler

from neonet_ext.data.patches import load_patch_datalist, patches_with_tumour, relative_to_folder
from neonet_ext.generative import (
    EdgeWeightedL1Loss,
    LatentDiffusionPrepareBatch,
    LatentScale,
    check_condition_masks,
    estimate_latent_scale,
    kl_divergence,
    masked_patch,
    zero_edge,
)
from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.transforms import TLCR, UNCONDITIONAL, ClassContext, ClassContextd


def tiny_autoencoder() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(spatial_dims=3, in_channels=1, out_channels=1, channels=(4, 4), latent_channels=2,
                         num_res_blocks=1, norm_num_groups=2, attention_levels=(False, False),
                         with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False)


def test_class_context_is_one_hot_and_checks_the_class():
    np.testing.assert_array_equal(ClassContext(2)(1), [[0.0, 1.0]])
    np.testing.assert_array_equal(ClassContext(2)(np.array([0])), [[1.0, 0.0]])
    for bad in (2, -1, 0.5, [0, 1]):
        with pytest.raises(ValueError, match="class label must be one integer"):
            ClassContext(2)(bad)


def test_class_context_dropout_gives_the_unconditional_token():
    always = ClassContextd("pni", drop_prob=1.0)({"pni": 1})["class_context"]
    assert torch.all(always == UNCONDITIONAL)
    never = ClassContextd("pni", drop_prob=0.0)({"pni": 1})["class_context"]
    np.testing.assert_array_equal(never, [[0.0, 1.0]])
    dropper = ClassContextd("pni", drop_prob=0.3)
    dropper.set_random_state(seed=0)
    dropped = [bool((dropper({"pni": 0})["class_context"] == UNCONDITIONAL).all()) for _ in range(400)]
    assert 0.22 < np.mean(dropped) < 0.38


def test_kl_divergence_is_zero_for_the_prior():
    assert float(kl_divergence(torch.zeros(2, 3, 4, 4, 4), torch.ones(2, 3, 4, 4, 4))) == pytest.approx(0.0)
    assert float(kl_divergence(torch.ones(1, 1, 2, 2, 2), torch.ones(1, 1, 2, 2, 2))) == pytest.approx(4.0)


def test_masked_patch_matches_tlcr():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (1, 12, 12, 8)).astype(np.float32)
    label = np.zeros((1, 12, 12, 8), np.uint8)
    label[0, 2:10, 2:10, 1:7] = LIVER
    label[0, 4:7, 5:8, 3:5] = TUMOUR
    patch, masks, _ = TLCR(roi_size=(12, 12, 8)).crop(image, label)
    np.testing.assert_array_equal(masked_patch(torch.from_numpy(image), torch.from_numpy(masks)).numpy(), patch)


@pytest.mark.parametrize(
    "scheduler, target",
    [
        (DDPMScheduler(num_train_timesteps=100), "noise"),
        (DDPMScheduler(num_train_timesteps=100, prediction_type="v_prediction"), "v"),
        (RFlowScheduler(num_train_timesteps=100), "velocity"),
    ],
)
def test_prepare_batch_encodes_and_picks_the_target(scheduler, target):
    autoencoder = tiny_autoencoder()
    prepare = LatentDiffusionPrepareBatch(autoencoder, LatentScale(0.5), scheduler, condition_name="class_context",
                                          control_name="patch_mask")
    batch = {"image": torch.rand(2, 1, 8, 8, 8), "class_context": torch.zeros(2, 1, 2),
             "patch_mask": torch.ones(2, 2, 8, 8, 8)}
    torch.manual_seed(1)
    z, label, args, kwargs = prepare(batch, torch.device("cpu"))
    assert z.shape == (2, 2, 4, 4, 4) and args == ()
    assert set(kwargs) == {"noise", "timesteps", "condition", "cn_cond"}
    assert kwargs["cn_cond"].shape == (2, 2, 8, 8, 8) and kwargs["condition"].shape == (2, 1, 2)
    with torch.no_grad():  # the scaled posterior mean, not a sample: the same latents every time
        torch.testing.assert_close(z, 0.5 * autoencoder.encode(batch["image"])[0])
    noise, t = kwargs["noise"], kwargs["timesteps"]
    if target == "v":
        alpha = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
        expected = alpha.sqrt() * noise - (1 - alpha).sqrt() * z
    else:
        expected = noise if target == "noise" else z - noise
    torch.testing.assert_close(label, expected)
    assert not any(p.requires_grad for p in autoencoder.parameters())  # frozen


def test_latent_scale_brings_latents_to_unit_variance():
    autoencoder = tiny_autoencoder()
    batches = [{"image": torch.rand(2, 1, 8, 8, 8)} for _ in range(3)]
    scale = estimate_latent_scale(autoencoder, batches)
    with torch.no_grad():
        z = torch.cat([scale(autoencoder.encode(b["image"])[0]) for b in batches])
    assert float(z.std()) == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ValueError, match="no batches"):
        estimate_latent_scale(autoencoder, [])


def test_condition_mask_checks_name_the_source():
    good = torch.zeros(2, 8, 8, 4)
    good[0, 2:6, 2:6, 1:3] = 1
    good[1, 3:5, 3:5, 1:2] = 1
    check_condition_masks(good, "x.nii.gz")
    with pytest.raises(ValueError, match="x.nii.gz: condition masks must have 2 channels"):
        check_condition_masks(good[:1], "x.nii.gz")
    with pytest.raises(ValueError, match=r"x.nii.gz: condition masks are \(8, 8, 4\), the generator makes \(64, 64, 32\)"):
        check_condition_masks(good, "x.nii.gz", (64, 64, 32))
    with pytest.raises(ValueError, match="only 0 and 1"):
        check_condition_masks(good * 2, "x.nii.gz")
    empty = good.clone()
    empty[1] = 0
    with pytest.raises(ValueError, match="tumour mask .* is empty"):
        check_condition_masks(empty, "x.nii.gz")
    outside = good.clone()
    outside[1, 0, 0, 0] = 1
    with pytest.raises(ValueError, match="outside the liver-or-tumour mask"):
        check_condition_masks(outside, "x.nii.gz")


def test_patch_datalist_paths_and_errors(tmp_path):
    (tmp_path / "a").mkdir()
    assert relative_to_folder(tmp_path / "a" / "m.nii.gz", tmp_path) == "a/m.nii.gz"
    assert relative_to_folder("/elsewhere/m.nii.gz", tmp_path) == "/elsewhere/m.nii.gz"
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"training": [{"case_id": "a", "patch_mask": "a/m.nii.gz", "pni": 1}]}))
    (item,) = load_patch_datalist(good)
    assert item["patch_mask"] == str(tmp_path / "a" / "m.nii.gz") and item["pni"] == 1
    with pytest.raises(FileNotFoundError, match="nope.json does not exist"):
        load_patch_datalist(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        load_patch_datalist(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="has no list under 'validation'"):
        load_patch_datalist(good, data_list_key="validation")
    with pytest.raises(ValueError, match=r"item 0 \(a\) lacks \['patch_image'\]"):
        load_patch_datalist(good, required_keys=["patch_image"])


def _phantom_set(n: int, cls: int, seed: int, follow_masks: bool = True):
    """Crops with a dark tumour inside a bright liver (or, if not follow_masks, flat noise)."""
    from neonet_ext.generative.quality import PatchSet

    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        tissue = np.zeros((32, 32, 16), bool)
        tissue[4:28, 4:28, 2:14] = True
        tumour = np.zeros_like(tissue)
        c = rng.integers(12, 20, 3) // np.array([1, 1, 2])
        r = rng.integers(3, 6) + 2 * cls
        tumour[c[0] - r:c[0] + r, c[1] - r:c[1] + r, max(c[2] - r // 2, 3):c[2] + r // 2] = True
        image = rng.normal(0.5, 0.05, tissue.shape)
        if follow_masks:
            image = np.where(tissue, 0.8, 0.1) + rng.normal(0, 0.03, tissue.shape)
            image[tumour] = 0.35 + rng.normal(0, 0.03, int(tumour.sum()))
        images.append(np.clip(image, 0, 1))
        masks.append(np.stack([tissue, tumour]))
    return PatchSet(np.array(images), np.array(masks), np.full(n, cls))


def test_quality_report_tells_good_copies_and_mask_blind_generators_apart():
    from neonet_ext.generative.quality import PatchSet, quality_report

    train = _phantom_set(8, 0, 1)
    train_pos = _phantom_set(8, 1, 2)
    train = PatchSet(np.concatenate([train.images, train_pos.images]), np.concatenate([train.masks, train_pos.masks]),
                     np.concatenate([train.classes, train_pos.classes]))
    real = _phantom_set(6, 1, 3)
    faithful = quality_report(_phantom_set(6, 1, 4), real, train)
    blind = quality_report(_phantom_set(6, 1, 5, follow_masks=False), real, train)
    copies = quality_report(PatchSet(train_pos.images[:6], train_pos.masks[:6], train_pos.classes[:6]), real, train)
    assert faithful["contrast_synthetic"] < -0.3 and abs(blind["contrast_synthetic"]) < 0.05
    assert faithful["mmd"] < blind["mmd"]
    assert copies["nearest_train_distance_synthetic"] == 0 < faithful["nearest_train_distance_synthetic"]
    assert faithful["class_positive_rate_synthetic"] == pytest.approx(faithful["class_positive_rate_real"], abs=0.34)
    with pytest.raises(ValueError, match="several classes"):
        quality_report(train, real, train)


def test_patches_with_tumour_frees_the_image_key():
    items = [{"case_id": "a", "image": "/mri/a.nii.gz", "patch_image": "a.nii.gz", "tumour_found": True},
             {"case_id": "b", "image": "/mri/b.nii.gz", "patch_image": "b.nii.gz", "tumour_found": False},
             {"case_id": "c", "patch_image": "c.nii.gz"}]
    kept = patches_with_tumour(items)
    assert [k["case_id"] for k in kept] == ["a", "c"]
    assert "image" not in kept[0] and kept[0]["source_image"] == "/mri/a.nii.gz"
    assert items[0]["image"] == "/mri/a.nii.gz"  # the input is left as it was


def test_patch_grid_is_written_atomically(tmp_path):
    from neonet_ext.visualize import save_patch_grid

    real, generated = _phantom_set(3, 1, 0), _phantom_set(2, 1, 1)
    out = tmp_path / "grid.png"
    save_patch_grid([("real", real.images, real.masks), ("generated", generated.images, generated.masks)], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and list(tmp_path.iterdir()) == [out]


def tiny_unet_and_controlnet() -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """A tiny diffusion UNet and ControlNet for ``tiny_autoencoder``'s latents, and condition masks (1, 2, 8, 8, 8)."""
    from monai.networks.nets import ControlNet, DiffusionModelUNet

    torch.manual_seed(0)
    kw = dict(spatial_dims=3, in_channels=2, channels=(8, 8), attention_levels=(False, True), num_head_channels=(0, 8),
              num_res_blocks=1, norm_num_groups=4, with_conditioning=True, cross_attention_dim=2)
    unet = DiffusionModelUNet(out_channels=2, **kw)
    controlnet = ControlNet(conditioning_embedding_in_channels=2, conditioning_embedding_num_channels=(4, 8), **kw)
    torch.nn.init.normal_(controlnet.controlnet_cond_embedding.conv_out.conv.weight, std=0.1)  # not zero: masks matter
    masks = torch.zeros(1, 2, 8, 8, 8)
    masks[:, 0, 1:7, 1:7, 1:7] = 1
    masks[:, 1, 3:5, 3:5, 3:5] = 1
    return unet, controlnet, masks


@pytest.mark.parametrize("name", ["DDPMScheduler", "DDIMScheduler", "RFlowScheduler"])
def test_sampler_denoises_with_the_scheduler_it_is_given(name):
    """Every denoising step is a step of the scheduler passed in (so NeoGen's scheduler overrides
    reach the sampling), num_inference_steps of them, at the timesteps that scheduler set."""
    from monai.networks import schedulers

    from neonet_ext.generative import MaskConditionedSampler

    unet, controlnet, masks = tiny_unet_and_controlnet()
    scheduler = getattr(schedulers, name)(num_train_timesteps=100)
    steps, step = [], scheduler.step

    def recorded_step(output, timestep, sample, *args, **kwargs):
        steps.append(timestep)
        return step(output, timestep, sample, *args, **kwargs)

    scheduler.step = recorded_step
    sampler = MaskConditionedSampler(tiny_autoencoder(), unet, controlnet, LatentScale(1.0), scheduler,
                                     num_inference_steps=3)
    sampler(masks, class_index=1, seed=3)
    assert len(steps) == 3 and [float(t) for t in steps] == [float(t) for t in scheduler.timesteps]


def test_sampler_embeds_the_masks_once_and_gives_the_same_image():
    from monai.networks.schedulers import DDIMScheduler

    from neonet_ext.generative import MaskConditionedSampler

    unet, controlnet, masks = tiny_unet_and_controlnet()
    calls = []
    embedding = controlnet.controlnet_cond_embedding
    embedding.conv_in.register_forward_hook(lambda *_: calls.append(1))
    images = {}
    for cache in (True, False):
        calls.clear()
        sampler = MaskConditionedSampler(tiny_autoencoder(), unet, controlnet, LatentScale(1.0),
                                         DDIMScheduler(num_train_timesteps=100), num_inference_steps=5,
                                         cache_condition_embedding=cache)
        images[cache] = sampler(masks, class_index=1, seed=3)
        assert len(calls) == (1 if cache else 5)
    torch.testing.assert_close(images[True], images[False])
    assert controlnet.controlnet_cond_embedding is embedding  # the ControlNet is left as it was


class _CountingMasks:
    """A mask transform that gives good masks for the first ``good`` calls, then an empty tumour."""

    def __init__(self, good: int) -> None:
        self.good, self.calls = good, 0

    def __call__(self, data: dict) -> dict:
        self.calls += 1
        masks = torch.zeros(2, 8, 8, 4)
        masks[0, 2:6, 2:6, 1:3] = 1
        if self.calls <= self.good:
            masks[1, 3:5, 3:5, 1:2] = 1
        return {"patch_mask": masks}


def test_a_reused_mask_whose_augmentation_fails_stops_the_run_before_anything_is_written(tmp_path):
    from neonet_ext.generative import PatchSynthesizer

    sources = [{"case_id": f"case_{i}", "patch_mask": str(tmp_path / f"m{i}.nii.gz"), "pni": 1} for i in range(2)]
    for item in sources:
        open(item["patch_mask"], "w").close()
    generated = []

    def sampler(masks, class_index, seed):
        generated.append(seed)
        return torch.rand(1, 1, *masks.shape[2:])

    out = tmp_path / "out"
    # 2 sources, 3 samples: the third reuses a source with a new augmentation, which leaves no tumour
    synthesizer = PatchSynthesizer(sampler, sources, num_samples=3, class_index=1, output_dir=out,
                                   mask_transform=_CountingMasks(good=2))
    with pytest.raises(ValueError, match=r"m0.nii.gz \(reused for sample 2\): the tumour mask .* is empty"):
        synthesizer.run()
    assert not generated and not out.exists()
    PatchSynthesizer(sampler, sources, num_samples=3, class_index=1, output_dir=out,
                     mask_transform=_CountingMasks(good=3)).run()
    assert len(generated) == 3 and len(load_patch_datalist(out / "synthetic_patches.json", required_keys=["patch"])) == 3


def test_prepare_batch_on_cached_latents_skips_the_encoder():
    autoencoder = tiny_autoencoder()
    scheduler = DDPMScheduler(num_train_timesteps=10)
    images = torch.rand(2, 1, 8, 8, 8)
    with torch.no_grad():
        mu = autoencoder.encode(images)[0]
    scale = LatentScale(0.5)
    torch.manual_seed(1)
    z_encoded, target_encoded, _, kwargs_encoded = LatentDiffusionPrepareBatch(autoencoder, scale, scheduler)({"image": images})
    torch.manual_seed(1)
    z_cached, target_cached, _, kwargs_cached = LatentDiffusionPrepareBatch(None, scale, scheduler)({"image": mu})
    torch.testing.assert_close(z_cached, z_encoded)
    torch.testing.assert_close(target_cached, target_encoded)
    assert torch.equal(kwargs_cached["timesteps"], kwargs_encoded["timesteps"])
    assert float(estimate_latent_scale(None, [{"image": mu}]).value) == pytest.approx(1 / float(mu.std()), rel=1e-5)


@pytest.mark.parametrize("loss", [torch.nn.L1Loss(), torch.nn.MSELoss()])
def test_autoencoder_trainer_reconstructs_with_the_loss_it_is_given(loss):
    from monai.networks.nets import PatchDiscriminator

    from neonet_ext.generative import AutoencoderGANTrainer

    autoencoder = tiny_autoencoder()
    discriminator = PatchDiscriminator(spatial_dims=3, num_layers_d=1, channels=4, in_channels=1, out_channels=1)
    image = torch.rand(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    trainer = AutoencoderGANTrainer(
        device="cpu", max_epochs=1, train_data_loader=[{"image": image}], autoencoder=autoencoder,
        discriminator=discriminator, g_optimizer=torch.optim.SGD(autoencoder.parameters(), lr=0.0),
        d_optimizer=torch.optim.SGD(discriminator.parameters(), lr=0.0), adversarial_start_epoch=1000,
        reconstruction_loss=loss,
    )
    trainer.run()
    output = trainer.state.output[0]
    assert output["recon_loss"] == pytest.approx(float(loss(output["pred"], image[0])), rel=1e-5)


def test_zero_edge_marks_one_voxel_either_side_of_a_masks_boundary():
    image = torch.zeros(1, 1, 7, 7, 7)
    image[..., 2:5, 2:5, 2:5] = 0.5  # a 3-voxel cube: its centre is not on the edge, the shell around it is
    edge = zero_edge(image)
    assert edge[0, 0, 3, 3, 3] == 0 and edge[0, 0, 2, 2, 2] == 1 and edge[0, 0, 1, 3, 3] == 1
    assert edge[0, 0, 0, 3, 3] == 0
    assert int(edge.sum()) == 5**3 - 1
    assert not zero_edge(torch.ones(1, 1, 7, 7, 7)).any()  # the volume's border is no edge


def test_edge_weighted_l1_weighs_errors_on_the_edge_and_is_l1_without_one():
    target = torch.zeros(1, 1, 7, 7, 7)
    target[..., 2:5, 2:5, 2:5] = 1.0
    on_edge, off_edge = torch.zeros_like(target), torch.zeros_like(target)
    on_edge[0, 0, 1, 3, 3] = 0.5
    off_edge[0, 0, 3, 3, 3] = 0.5
    loss = EdgeWeightedL1Loss(edge_weight=4.0)
    assert float(loss(target + on_edge, target)) == pytest.approx(5 * float(loss(target + off_edge, target)))
    noisy = target + torch.rand(target.shape, generator=torch.Generator().manual_seed(0))
    assert float(EdgeWeightedL1Loss(0.0)(noisy, target)) == pytest.approx(float(torch.nn.L1Loss()(noisy, target)))
    flat = torch.full_like(target, 0.3)
    assert float(loss(noisy, flat)) == pytest.approx(float(torch.nn.L1Loss()(noisy, flat)))
    with pytest.raises(ValueError, match="edge_weight"):
        EdgeWeightedL1Loss(-1.0)
