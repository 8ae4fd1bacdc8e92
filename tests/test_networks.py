"""Tests of neonet_ext.networks: Dual Attention Block, PattenNet and the baseline classifiers."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from monai.networks.nets import AutoencoderKL
from neonet_ext.networks.nets.pattennet import (
    REGION_CHANNELS,
    PattenNetFromLatents,
    attention_means,
    region_fractions,
    region_means,
)
from neonet_ext.networks import (
    CLASSIFIER_NAMES,
    ChannelAttention,
    DualAttentionBlock,
    PattenNet,
    SpatialAttention,
    SwinClassifier,
    get_classifier,
    upsample_attention_map,
)

LATENT = 4
PATCH = (16, 16, 8)
LATENT_GRID = (8, 8, 4)  # one downsampling level in the tiny autoencoder


def tiny_autoencoder(seed: int = 0, channels: tuple[int, ...] = (8, 16)) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        channels=channels,
        latent_channels=LATENT,
        num_res_blocks=1,
        attention_levels=(False,) * len(channels),
        norm_num_groups=4,
    )


def tiny_pattennet(seed: int = 0, **kwargs) -> PattenNet:
    kwargs.setdefault("features", 8)
    kwargs.setdefault("reduction", 2)
    kwargs.setdefault("pooling", "avg")  # the plain pooling; region pooling is tested where named
    return PattenNet(tiny_autoencoder(seed), **kwargs)


def test_pattennet_pools_by_region_by_default_and_its_encoding_carries_the_fractions():
    net = PattenNet(tiny_autoencoder(), features=8, reduction=2)
    assert net.pooling == "regions" and net.head[0].p == 0.5  # the shipped weights' recipe (NeoCls docs)
    assert net.encode(patches()).shape == (2, 2 * LATENT + 2, *LATENT_GRID)  # + tissue and tumour fractions


def patches(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 2, *PATCH, generator=torch.Generator().manual_seed(seed))


def features(shape=(2, 8, 5, 6, 7), seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------------------------
# Dual Attention Block


def reference_channel_gate(module: ChannelAttention, x: torch.Tensor) -> torch.Tensor:
    fc1, fc2 = module.mlp[0], module.mlp[2]

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return F.linear(torch.relu(F.linear(v, fc1.weight, fc1.bias)), fc2.weight, fc2.bias)

    dims = tuple(range(2, x.ndim))
    gate = torch.sigmoid(mlp(x.mean(dim=dims)) + mlp(x.amax(dim=dims)))
    return gate[:, :, None, None, None]


def reference_spatial_gate(module: SpatialAttention, x: torch.Tensor) -> torch.Tensor:
    pooled = torch.cat([x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True).values], dim=1)
    conv = module.conv
    return torch.sigmoid(F.conv3d(pooled, conv.weight, conv.bias, padding=conv.weight.shape[-1] // 2))


def test_channel_gate_matches_formula_and_is_constant_over_space():
    x = features()
    module = ChannelAttention(8, reduction=2)
    gate = module(x)
    assert gate.shape == (2, 8, 1, 1, 1)
    torch.testing.assert_close(gate, reference_channel_gate(module, x))


def test_spatial_gate_matches_formula_and_is_constant_over_channels():
    x = features()
    module = SpatialAttention(kernel_size=7)
    gate = module(x)
    assert gate.shape == (2, 1, 5, 6, 7)
    assert module.conv.weight.shape == (1, 2, 7, 7, 7)
    torch.testing.assert_close(gate, reference_spatial_gate(module, x))


def test_dual_attention_block_matches_cbam_formula():
    x = features()
    block = DualAttentionBlock(8, reduction=2, kernel_size=3)
    out, gate = block.forward_with_attention(x)

    refined = reference_channel_gate(block.channel_attention, x) * x
    ref_gate = reference_spatial_gate(block.spatial_attention, refined)
    assert out.shape == x.shape
    assert gate.shape == (2, 1, 5, 6, 7)
    assert 0 < gate.min() and gate.max() < 1
    torch.testing.assert_close(gate, ref_gate)
    torch.testing.assert_close(out, ref_gate * refined)
    torch.testing.assert_close(block(x), out)


def test_gates_broadcast_as_the_formula_says():
    x = features()
    channel_ratio = DualAttentionBlock(8, reduction=2, use_spatial_attention=False)(x) / x
    torch.testing.assert_close(channel_ratio, channel_ratio[..., :1, :1, :1].expand_as(x))
    assert not torch.allclose(channel_ratio[:, :1], channel_ratio[:, 1:2])

    spatial_ratio = DualAttentionBlock(8, use_channel_attention=False)(x) / x
    torch.testing.assert_close(spatial_ratio, spatial_ratio[:, :1].expand_as(x))
    assert not torch.allclose(spatial_ratio[..., :1, :1, :1], spatial_ratio[..., 1:2, :1, :1])


def test_dual_attention_block_switches_off_is_identity():
    x = features()
    block = DualAttentionBlock(8, use_channel_attention=False, use_spatial_attention=False)
    out, gate = block.forward_with_attention(x)
    assert torch.equal(out, x)
    assert gate is None
    assert not list(block.parameters())


def test_channel_mlp_is_shared():
    channels, reduction = 32, 4
    module = ChannelAttention(channels, reduction=reduction)
    hidden = channels // reduction
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(channels, hidden), (hidden, channels)]
    assert sum(p.numel() for p in module.parameters()) == 2 * channels * hidden + hidden + channels
    assert ChannelAttention(4, reduction=16).mlp[0].out_features == 1


def test_spatial_attention_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        SpatialAttention(kernel_size=4)


# ---------------------------------------------------------------------------------------------------------------------
# PattenNet


@pytest.mark.parametrize("num_blocks", [0, 1, 2, 3])
def test_pattennet_shapes(num_blocks):
    net = tiny_pattennet(num_blocks=num_blocks).eval()
    x = patches()
    logits, maps = net.forward_with_attention(x)
    assert logits.shape == (2, 2)
    assert len(net.stages) == num_blocks
    assert [m.shape for m in maps] == [(2, 1, *LATENT_GRID)] * num_blocks
    assert [m.shape for m in net.attention_maps(x)] == [(2, 1, *PATCH)] * num_blocks
    torch.testing.assert_close(net(x), logits)


def test_pattennet_attention_maps_are_its_blocks_spatial_gates():
    """The maps are the spatial-attention gates of the blocks, in order (read here with hooks on
    the gates), and ``attention_maps`` resizes each to the patch trilinearly."""
    net = tiny_pattennet(num_blocks=2).eval()
    x = patches()
    gates = []
    for stage in net.stages:
        stage.attention.spatial_attention.register_forward_hook(lambda _m, _i, out: gates.append(out))
    _, maps = net.forward_with_attention(x)
    assert len(gates) == 2 and not torch.allclose(gates[0], gates[1])
    for m, gate in zip(maps, gates):
        torch.testing.assert_close(m, gate)
    for m, gate in zip(net.attention_maps(x), gates[2:]):
        torch.testing.assert_close(m, F.interpolate(gate, size=PATCH, mode="trilinear", align_corners=False))


def test_pattennet_without_spatial_attention_has_no_maps():
    net = tiny_pattennet(use_spatial_attention=False).eval()
    logits, maps = net.forward_with_attention(patches())
    assert logits.shape == (2, 2)
    assert maps == []


def test_pattennet_per_stage_features():
    net = tiny_pattennet(num_blocks=2, features=(8, 12), out_channels=3)
    assert net.head[-1].in_features == 12
    assert net.eval()(patches()).shape == (2, 3)


def test_pattennet_strided_stages_halve_the_grid_and_maps_still_reach_the_patch():
    net = tiny_pattennet(num_blocks=2, strides=(1, 2)).eval()
    x = patches()
    _, maps = net.forward_with_attention(x)
    half = tuple((s + 1) // 2 for s in LATENT_GRID)
    assert [m.shape for m in maps] == [(2, 1, *LATENT_GRID), (2, 1, *half)]
    assert [m.shape for m in net.attention_maps(x)] == [(2, 1, *PATCH)] * 2


def test_pattennet_avgmax_pooling_reads_the_strongest_voxel_too():
    """With ``pooling="avgmax"`` the head sees [mean, max] of the last stage: raising one voxel's
    feature changes the max half by the full step and the mean half by a voxel's share of it."""
    net = tiny_pattennet(num_blocks=0, pooling="avgmax").eval()
    channels = 2 * LATENT  # two patch channels' latents
    assert net.head[-1].in_features == 2 * channels  # mean and max
    pooled = []
    net.head.register_forward_hook(lambda _m, inputs, _o: pooled.append(inputs[0]))
    z = torch.zeros(1, channels, *LATENT_GRID)
    bumped = z.clone()
    bumped[0, 3, 0, 0, 0] = 5.0
    net.classify_latents_with_attention(z)
    net.classify_latents_with_attention(bumped)
    step = pooled[1] - pooled[0]
    assert step[0, channels + 3] == pytest.approx(5.0) and step[0, 3] == pytest.approx(5.0 / math.prod(LATENT_GRID))
    assert torch.count_nonzero(step) == 2
    with pytest.raises(ValueError, match="pooling"):
        tiny_pattennet(pooling="median")


def test_region_means_have_known_answers():
    """A 1x1x1-cell tumour in a 7x7x7 tissue grid: rim = its 26 neighbours, far = beyond 2 cells."""
    fractions = torch.zeros(1, 2, 7, 7, 7)
    fractions[:, 0] = 1.0
    fractions[:, 1, 3, 3, 3] = 1.0
    zone = torch.full((7, 7, 7), 3.0)  # far liver
    zone[1:6, 1:6, 1:6] = 0.0  # neither rim nor far: 2 cells from the tumour
    zone[2:5, 2:5, 2:5] = 2.0  # rim
    zone[3, 3, 3] = 1.0  # tumour
    features = torch.stack([zone, 10 * zone])[None]
    pooled = region_means(features, fractions, rim=1, far=2)
    expected = [1, 10, 2, 20, 3, 30, -1, -10, -2, -20, math.log(2)]
    torch.testing.assert_close(pooled, torch.tensor([expected], dtype=torch.float32))


def test_region_means_keep_a_tumour_smaller_than_half_a_cell_and_read_fractions_on_any_grid():
    fractions = torch.zeros(1, 2, 8, 8, 8)
    fractions[:, 0] = 1.0
    fractions[:, 1, 2, 2, 2] = 0.5  # at most 1/16 of a cell of the 4x4x4 feature grid
    features = torch.zeros(1, 1, 4, 4, 4)
    features[0, 0, 1, 1, 1] = 7.0
    pooled = region_means(features, fractions, rim=1, far=2)
    assert pooled[0, 0] == 7.0 and pooled[0, -1] == pytest.approx(math.log(1.5))


def test_attention_means_read_what_the_gate_points_at():
    """The first vector is the gate-weighted mean of the ungated features: moving the gate moves it."""
    fractions = torch.zeros(1, 2, 7, 7, 7)
    fractions[:, 0] = 1.0
    fractions[:, 1, 3, 3, 3] = 1.0
    features = torch.full((1, 1, 7, 7, 7), 3.0)
    features[0, 0, 3, 3, 3] = 1.0  # the tumour
    on_tumour = torch.full((1, 1, 7, 7, 7), 0.01)
    on_tumour[0, 0, 3, 3, 3] = 1.0
    pooled = attention_means(features * on_tumour, on_tumour, fractions, rim=1, far=2)
    weighted = (1.0 + 3.0 * 0.01 * 342) / (1.0 + 0.01 * 342)
    torch.testing.assert_close(pooled, torch.tensor([[weighted, 3.0 * 0.01, weighted - 0.03, math.log(2)]]))
    even = torch.full((1, 1, 7, 7, 7), 0.5)
    assert attention_means(features * even, even, fractions)[0, 0] == pytest.approx((1.0 + 3.0 * 342) / 343)
    assert attention_means(features, None, fractions)[0, 0] == pytest.approx((1.0 + 3.0 * 342) / 343)


def test_pattennet_attention_pooling_reaches_the_logits_through_the_last_gate():
    net = tiny_pattennet(num_blocks=2, pooling="attention").eval()
    x = patches()
    x[:, 1] *= (x[:, 1] > 1.0)
    z = net.encode(x)
    assert z.shape[1] == 2 * LATENT + REGION_CHANNELS and net.masked_pooling
    assert net.head[-1].in_features == 3 * 8 + 1
    torch.testing.assert_close(PattenNetFromLatents(net)(z), net(x))
    logits = net(x)
    with torch.no_grad():
        net.stages[-1].attention.spatial_attention.conv.bias += 3.0  # every cell's gate nearer 1: another weighting
    assert not torch.allclose(net(x), logits)


def test_region_fractions_read_the_tlcr_masks_off_the_patch():
    patch = torch.zeros(1, 2, 4, 4, 4)
    patch[0, 0, :2] = 0.7  # tissue: half the patch
    patch[0, 1, 0, 0, 0] = patch[0, 0, 0, 0, 0] = 0.3  # one tumour voxel
    fractions = region_fractions(patch, (2, 2, 2))
    assert fractions.shape == (1, 2, 2, 2, 2)
    torch.testing.assert_close(fractions[0, 0, :, 0, 0], torch.tensor([1.0, 0.0]))
    assert fractions[0, 1].sum() == pytest.approx(1 / 8)


def test_pattennet_region_pooling_carries_the_fractions_with_the_latent():
    net = tiny_pattennet(num_blocks=2, pooling="regions").eval()
    x = patches()
    x[:, 1] *= (x[:, 1] > 1.0)  # TLCR's tumour channel: zero outside a tumour
    z = net.encode(x)
    assert z.shape[1] == 2 * LATENT + REGION_CHANNELS
    assert net.head[-1].in_features == 5 * 8 + 1
    torch.testing.assert_close(PattenNetFromLatents(net)(z), net(x))
    moved = z.clone()
    moved[:, -1] = torch.roll(moved[:, -1], 2, dims=1)  # the tumour elsewhere: another answer
    assert not torch.allclose(PattenNetFromLatents(net)(moved), net(x))


@pytest.mark.parametrize("pooling", ["avg", "avgmax", "regions", "attention"])
def test_pattennet_scripts_with_every_pooling(pooling):
    """TorchScript (the zoo's export) compiles every pooling branch and gives the eager logits."""
    from neonet_ext.networks import neogen_autoencoder

    torch.manual_seed(0)
    net = PattenNet(neogen_autoencoder(channels=(8, 8, 8), norm_num_groups=4), features=8, reduction=4, pooling=pooling,
                    strides=(1, 2)).eval()
    x = torch.rand(1, 2, 32, 32, 16)
    x[:, 0, :6] = 0.0  # outside the tissue
    x[:, 1] = 0.0
    x[:, 1, 10:20, 10:20, 4:10] = x[:, 0, 10:20, 10:20, 4:10]  # the tumour
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


def test_upsample_attention_map():
    attention = torch.rand(2, 1, *LATENT_GRID)
    up = upsample_attention_map(attention, PATCH)
    assert up.shape == (2, 1, *PATCH)
    assert attention.min() <= up.min() and up.max() <= attention.max()
    constant = upsample_attention_map(torch.full((1, 1, 2, 2, 2), 0.3), PATCH)
    torch.testing.assert_close(constant, torch.full((1, 1, *PATCH), 0.3))
    # a step from 0 to 1 along x, 2 -> 4 voxels: voxel centres at -0.25, 0.25, 0.75 and 1.25 of the
    # source grid (align_corners=False), clamped at the edges
    step = upsample_attention_map(torch.tensor([0.0, 1.0]).view(1, 1, 2, 1, 1).expand(1, 1, 2, 2, 2), (4, 3, 2))
    torch.testing.assert_close(step, torch.tensor([0.0, 0.25, 0.75, 1.0]).view(1, 1, 4, 1, 1).expand(1, 1, 4, 3, 2))


def test_pattennet_encodes_both_channels_with_the_shared_mean_latent():
    net = tiny_pattennet()
    x = patches()
    z = net.encode(x)
    assert z.shape == (2, 2 * LATENT, *LATENT_GRID)

    swapped = net.encode(x.flip(1))
    torch.testing.assert_close(swapped[:, :LATENT], z[:, LATENT:])
    torch.testing.assert_close(swapped[:, LATENT:], z[:, :LATENT])

    # Deterministic: the latent is z_mu of the source autoencoder, no sampling.
    source = tiny_autoencoder().eval()
    with torch.no_grad():
        for c in range(2):
            z_mu, _ = source.encode(x[:, c : c + 1])
            torch.testing.assert_close(z[:, c * LATENT : (c + 1) * LATENT], z_mu)


def test_pattennet_encoder_stays_frozen_through_a_training_step():
    net = tiny_pattennet(num_blocks=2)
    encoder_before = copy.deepcopy(net.latent_encoder.state_dict())
    trainable_before = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}

    net.train()
    assert all(not m.training for m in net.latent_encoder.modules())
    assert all(m.training for m in net.stages.modules()) and net.head.training

    trainable = list(net.trainable_parameters())
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    loss = F.cross_entropy(net(patches()), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()

    for name, value in net.latent_encoder.state_dict().items():
        assert torch.equal(value, encoder_before[name]), name
    for p in net.latent_encoder.parameters():
        assert not p.requires_grad and p.grad is None
    assert all(not m.training for m in net.latent_encoder.modules())

    frozen = {id(p) for p in net.latent_encoder.parameters()}
    assert {id(p) for p in trainable} == {id(p) for p in net.parameters()} - frozen
    assert set(trainable_before) == {n for n, p in net.named_parameters() if id(p) not in frozen}
    for name, p in net.named_parameters():
        if name in trainable_before:
            assert not torch.equal(p, trainable_before[name]), f"{name} was not updated"


@pytest.mark.parametrize("wrapper", [None, "autoencoder", "model", "state_dict", "network"])
def test_pattennet_loads_autoencoder_checkpoint(tmp_path, wrapper):
    source = tiny_autoencoder(seed=1)
    state_dict = source.state_dict()
    checkpoint = state_dict if wrapper is None else {wrapper: state_dict, "optimizer": {"state": {}}}
    path = tmp_path / "neogen.pt"
    torch.save(checkpoint, path)

    fresh = tiny_pattennet(seed=2).latent_encoder.state_dict()
    loaded = PattenNet(tiny_autoencoder(seed=2), autoencoder_checkpoint=str(path)).latent_encoder.state_dict()
    assert set(loaded) == {k for k in state_dict if k.startswith(("encoder.", "quant_conv_mu."))}
    assert any(not torch.equal(fresh[k], state_dict[k]) for k in loaded)
    for key, value in loaded.items():
        assert torch.equal(value, state_dict[key]), key


def test_pattennet_checkpoint_errors_name_the_file(tmp_path):
    missing = tmp_path / "absent.pt"
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        PattenNet(tiny_autoencoder(), autoencoder_checkpoint=missing)

    other_shapes = tmp_path / "other_shapes.pt"
    torch.save({"autoencoder": tiny_autoencoder(channels=(8, 8)).state_dict()}, other_shapes)
    with pytest.raises(RuntimeError, match="(?s)other_shapes.pt.*size mismatch"):
        PattenNet(tiny_autoencoder(), autoencoder_checkpoint=other_shapes)

    partial = tmp_path / "partial.pt"
    state_dict = tiny_autoencoder().state_dict()
    del state_dict["quant_conv_mu.conv.weight"]
    torch.save(state_dict, partial)
    with pytest.raises(RuntimeError, match="(?s)partial.pt.*quant_conv_mu.conv.weight"):
        PattenNet(tiny_autoencoder(), autoencoder_checkpoint=partial)

    unrelated = tmp_path / "unrelated.pt"
    torch.save({"epoch": 3, "metrics": {"auc": 0.8}}, unrelated)
    with pytest.raises(ValueError, match="unrelated.pt"):
        PattenNet(tiny_autoencoder(), autoencoder_checkpoint=unrelated)


def test_pattennet_rejects_unsuitable_autoencoders():
    with pytest.raises(TypeError, match="AutoencoderKL"):
        PattenNet({"spatial_dims": 3})
    two_channel = AutoencoderKL(
        spatial_dims=3, in_channels=2, channels=(4,), attention_levels=(False,), num_res_blocks=1, norm_num_groups=4
    )
    with pytest.raises(ValueError, match="1-channel"):
        PattenNet(two_channel)
    with pytest.raises(ValueError, match="spatial_dims"):
        PattenNet(tiny_autoencoder(), spatial_dims=2)


# torch's group_norm checks the batch size with a Python bool inside the frozen encoder; it does not affect the trace.
@pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean:torch.jit.TracerWarning")
def test_pattennet_jit_trace_matches_eager():
    net = tiny_pattennet(num_blocks=2).eval()
    x = patches()
    traced = torch.jit.trace(net, x)
    torch.testing.assert_close(traced(x), net(x))
    other = patches(batch=3, seed=5)
    torch.testing.assert_close(traced(other), net(other))


def test_pattennet_torch_export_matches_eager():
    net = tiny_pattennet(num_blocks=1).eval()
    x = patches()
    exported = torch.export.export(net, (x,))
    torch.testing.assert_close(exported.module()(x), net(x))


# ---------------------------------------------------------------------------------------------------------------------
# Baselines


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_baseline_builds_and_runs(name):
    model = get_classifier(name, in_channels=2, out_channels=2, spatial_dims=3).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 2, 32, 32, 32))
    assert logits.shape == (1, 2)
    assert torch.isfinite(logits).all()


def test_classifier_names_cover_the_seed_study():
    expected = {f"resnet{d}" for d in (50, 101, 152, 200)}
    expected |= {f"densenet{d}" for d in (121, 169, 201, 264)}
    expected |= {f"efficientnet-b{i}" for i in range(4)}
    assert set(CLASSIFIER_NAMES) == expected | {"swin-transformer"}


def test_get_classifier_errors():
    with pytest.raises(ValueError, match="resnet50.*swin-transformer"):
        get_classifier("vgg16")
    with pytest.raises(ValueError, match="pretrained"):
        get_classifier("efficientnet-b0", pretrained=True)
    assert isinstance(get_classifier("Swin-Transformer", feature_size=12, out_channels=3), SwinClassifier)


def test_swin_classifier_requires_four_stages():
    with pytest.raises(ValueError, match="4 entries"):
        SwinClassifier(2, 2, depths=(2, 2), num_heads=(3, 6))


def test_the_controlnet_mirrors_the_diffusion_unet_it_is_given():
    from monai.networks.nets import DiffusionModelUNet

    from neonet_ext.networks import neogen_autoencoder, neogen_controlnet, neogen_diffusion_unet

    unet = neogen_diffusion_unet(latent_channels=4, num_classes=2, channels=(16, 16, 32), num_head_channels=(0, 16, 16),
                                 norm_num_groups=8)
    controlnet = neogen_controlnet(unet, neogen_autoencoder(channels=(8, 8, 8), norm_num_groups=4))
    # the UNet's weights initialise the ControlNet: every layer they share has the same shape (else load raises)
    result = controlnet.load_state_dict(unet.state_dict(), strict=False)
    assert all(key.startswith(("controlnet_", "conditioning_embedding")) for key in result.missing_keys)
    assert len(result.missing_keys) < len(controlnet.state_dict()) // 2
    plain = DiffusionModelUNet(spatial_dims=3, in_channels=4, out_channels=4, channels=(16, 16, 32),
                               attention_levels=(False, True, True), num_head_channels=(0, 16, 16), num_res_blocks=1,
                               norm_num_groups=8)
    with pytest.raises(TypeError, match="neogen_diffusion_unet"):
        neogen_controlnet(plain, neogen_autoencoder())


def test_a_folded_diffusion_unet_runs_on_the_block_grid_with_its_controlnet():
    from monai.networks.nets import ControlNet, DiffusionModelUNet
    from monai.networks.utils import pixelunshuffle

    from neonet_ext.networks import (
        SpaceToDepthControlNet,
        SpaceToDepthDiffusionUNet,
        neogen_autoencoder,
        neogen_controlnet,
        neogen_diffusion_unet,
    )

    small = {"channels": (16, 16, 32), "num_head_channels": (0, 16, 16), "norm_num_groups": 8}
    torch.manual_seed(0)
    unet = neogen_diffusion_unet(latent_channels=8, num_classes=2, block_size=2, **small).eval()
    assert isinstance(unet, SpaceToDepthDiffusionUNet)
    first_conv = next(m for m in unet.modules() if isinstance(m, torch.nn.Conv3d))
    assert first_conv.in_channels == 64  # a 2x2x2 block of 8 latent channels
    # exactly a plain UNet of 64 channels on the unshuffled latent, output shuffled back
    plain = DiffusionModelUNet(out_channels=64, **{**unet.neogen_arguments, "in_channels": 64}).eval()
    plain.load_state_dict(unet.state_dict())
    latent = torch.randn(2, 8, 16, 16, 8)
    timesteps, context = torch.tensor([3, 500]), torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    with torch.no_grad():
        prediction = unet(latent, timesteps, context)
        folded = plain(pixelunshuffle(latent, 3, 2), timesteps, context)
    assert prediction.shape == latent.shape
    assert torch.allclose(pixelunshuffle(prediction, 3, 2), folded, atol=1e-5)
    # the ControlNet folds the latent as the UNet does and embeds the masks (on the patch grid, 2x the latent's)
    # down to the folded grid: its residuals fit the UNet
    autoencoder = neogen_autoencoder(block_size=2, channels=(16,), latent_channels=8, norm_num_groups=8)
    controlnet = neogen_controlnet(unet, autoencoder).eval()
    assert isinstance(controlnet, SpaceToDepthControlNet) and isinstance(controlnet, ControlNet)
    assert controlnet.load_state_dict(unet.state_dict(), strict=False).unexpected_keys
    masks = torch.rand(2, 2, 32, 32, 16)
    with torch.no_grad():
        down, mid = controlnet(latent, timesteps, masks, context=context)
        controlled = unet(latent, timesteps, context, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid)
    assert down[0].shape[2:] == (8, 8, 4) and controlled.shape == latent.shape


@pytest.mark.parametrize("channels, factor", [((16,), 2), ((16, 16), 4)])
def test_space_to_depth_autoencoder_works_on_the_block_grid(channels, factor):
    from monai.networks.nets import ControlNet

    from neonet_ext.networks import (
        SpaceToDepthAutoencoderKL,
        autoencoder_downsampling,
        controlnet_condition_channels,
        neogen_autoencoder,
    )

    autoencoder = neogen_autoencoder(block_size=2, channels=channels, latent_channels=8, norm_num_groups=8)
    assert isinstance(autoencoder, SpaceToDepthAutoencoderKL) and autoencoder_downsampling(autoencoder) == factor
    x = torch.rand(2, 1, 16, 16, 8)
    recon, z_mu, z_sigma = autoencoder(x)
    assert recon.shape == x.shape and z_mu.shape == z_sigma.shape == (2, 8, 16 // factor, 16 // factor, 8 // factor)
    # every convolution runs on the folded grid: the first one sees a 2x2x2 block as 8 channels
    first_conv = next(m for m in autoencoder.encoder.modules() if isinstance(m, torch.nn.Conv3d))
    assert first_conv.in_channels == 8
    # what PattenNet and the ControlNet read of an autoencoder
    assert autoencoder.encoder.in_channels == 1 and autoencoder.encoder.spatial_dims == 3
    patten = PattenNet(autoencoder, num_blocks=1, features=8)
    assert patten(torch.rand(2, 2, 16, 16, 8)).shape == (2, 2)
    condition = controlnet_condition_channels(autoencoder)
    assert len(condition) == factor.bit_length()  # one stage more than the halvings
    embedding = ControlNet(spatial_dims=3, in_channels=8, channels=(16, 16), attention_levels=(False, False), num_res_blocks=1,
                           norm_num_groups=8, conditioning_embedding_in_channels=2,
                           conditioning_embedding_num_channels=condition).controlnet_cond_embedding
    assert embedding(torch.rand(1, 2, 16, 16, 8)).shape[2:] == z_mu.shape[2:]


def test_the_default_autoencoder_folds_2x2x2_blocks_into_one_latent_value_and_its_masks_embed_in_two_stages():
    from neonet_ext.networks import (
        NEOGEN_BLOCK_SIZE,
        SpaceToDepthAutoencoderKL,
        autoencoder_downsampling,
        controlnet_condition_channels,
        neogen_autoencoder,
        neogen_diffusion_unet,
    )

    autoencoder = neogen_autoencoder()
    assert isinstance(autoencoder, SpaceToDepthAutoencoderKL) and autoencoder.block_size == NEOGEN_BLOCK_SIZE == 2
    assert autoencoder_downsampling(autoencoder) == 2 and len(controlnet_condition_channels(autoencoder)) == 2
    assert neogen_diffusion_unet(latent_channels=8, num_classes=2, channels=(16, 16, 32), num_head_channels=(0, 16, 16),
                                 norm_num_groups=8).neogen_block_size == 2
    # block_size 1 is the plain AutoencoderKL
    assert type(neogen_autoencoder(block_size=1, channels=(8, 8), norm_num_groups=4)) is AutoencoderKL


@pytest.mark.parametrize("shape", [(2, 3, 4, 6, 8), (1, 1, 2, 2, 2)])
def test_folding_blocks_matches_monai_pixel_shuffles_and_compiles_with_torchscript(shape):
    from monai.networks.utils import pixelshuffle, pixelunshuffle

    from neonet_ext.networks import fold_blocks, unfold_blocks

    x = torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape)
    folded = fold_blocks(x, 3, 2)
    assert torch.equal(folded, pixelunshuffle(x, 3, 2))  # weights trained with MONAI's fold load unchanged
    assert torch.equal(unfold_blocks(folded, 3, 2), x) and torch.equal(pixelshuffle(folded, 3, 2), x)
    scripted_fold, scripted_unfold = torch.jit.script(fold_blocks), torch.jit.script(unfold_blocks)
    assert torch.equal(scripted_fold(x, 3, 2), folded) and torch.equal(scripted_unfold(folded, 3, 2), x)
    with pytest.raises(ValueError, match="divisible by the block size 2"):
        fold_blocks(torch.zeros(1, 1, 3, 4, 4), 3, 2)
    with pytest.raises(ValueError, match="multiple of 2\\*\\*3"):
        unfold_blocks(torch.zeros(1, 4, 2, 2, 2), 3, 2)
