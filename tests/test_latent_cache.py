"""The frozen-latent cache: what training on cached latents relies on."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.networks.nets import AutoencoderKL

from neonet_ext.data import LatentCache, autoencoder_fingerprint
from neonet_ext.networks import PattenNet, PattenNetFromLatents
from neonet_ext.networks.nets.pattennet import region_fractions
from neonet_ext.transforms import LoadLatentd, PatchView, PatchViewd, SelectLatentViewd, patch_views

SHAPE = (16, 16, 8)


def tiny_autoencoder(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(spatial_dims=3, in_channels=1, out_channels=1, channels=(8, 8, 8), latent_channels=4,
                         num_res_blocks=1, norm_num_groups=4, attention_levels=(False, False, False),
                         with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False)


def write_patch(path: Path, seed: int, channels: int = 2) -> Path:
    data = np.random.default_rng(seed).random((*SHAPE, channels)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)
    return path


def load(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture
def patches(tmp_path) -> list[dict]:
    return [{"case_id": f"case_{i}", "patch": str(write_patch(tmp_path / "patches" / f"case_{i}.nii.gz", i)), "pni": i % 2}
            for i in range(3)]


def patch_tensor(item: dict) -> torch.Tensor:
    """(C, X, Y, Z) as MONAI's LoadImage(ensure_channel_first=True) gives it."""
    return torch.from_numpy(np.asarray(nib.load(item["patch"]).dataobj)).permute(3, 0, 1, 2).float()


def test_training_on_cached_latents_gives_the_full_models_logits(tmp_path, patches):
    autoencoder = tiny_autoencoder()
    network = PattenNet(autoencoder, num_blocks=2, features=8, pooling="avg").eval()
    items = LatentCache(autoencoder, tmp_path / "cache", views=3)(patches)
    load_view = [LoadLatentd("latent"), SelectLatentViewd("latent", random_view=False)]
    latents = []
    for item in items:
        for transform in load_view:
            item = transform(item)
        assert item["view"] == 0
        latents.append(item["image"])
    with torch.no_grad():
        full = network(torch.stack([patch_tensor(p) for p in patches]))
        cached = PattenNetFromLatents(network)(torch.stack(latents))
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)


def test_region_pooling_trains_on_cached_latents_with_each_views_fractions(tmp_path):
    """TLCR-like patches (image zero outside the tissue, tumour channel zero outside a box): the cached
    latent carries the view's fractions after it, and gives the full region-pooling model's logits."""
    items = []
    for i in range(3):
        data = np.random.default_rng(i).random((*SHAPE, 2)).astype(np.float32) + 0.1
        data[: 4 + i, :, :, :] = 0.0  # outside the tissue
        data[..., 1] = 0.0
        data[6 + i : 12, 5:11, 2:6, 1] = data[6 + i : 12, 5:11, 2:6, 0]  # the tumour
        path = tmp_path / f"tlcr_{i}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)
        items.append({"case_id": f"case_{i}", "patch": str(path), "pni": i % 2})
    autoencoder = tiny_autoencoder()
    network = PattenNet(autoencoder, num_blocks=2, features=8, pooling="regions").eval()
    cache = LatentCache(autoencoder, tmp_path / "cache", views=patch_views(3, seed=1))
    cached_items = cache(items)
    for item in cached_items:  # each view's fractions are those of that view of the patch
        for view, entry_path in zip(cache.views, item["latent"]):
            entry = load(entry_path)
            expected = region_fractions(view(patch_tensor(item))[None], entry["mu"].shape[1:])[0]
            torch.testing.assert_close(entry["regions"], expected)
    load_view = [LoadLatentd("latent", with_regions=True), SelectLatentViewd("latent", random_view=False)]
    latents = []
    for item in cached_items:
        for transform in load_view:
            item = transform(item)
        latents.append(item["image"])
    with torch.no_grad():
        full = network(torch.stack([patch_tensor(p) for p in items]))
        cached = PattenNetFromLatents(network)(torch.stack(latents))
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)


def test_entries_without_regions_get_them_added_when_required_keeping_their_latent(tmp_path, patches, monkeypatch, capsys):
    autoencoder = tiny_autoencoder()
    items = LatentCache(autoencoder, tmp_path / "cache", views=1)(patches[:1])
    entry_path = items[0]["latent"][0]
    old = {k: v for k, v in load(entry_path).items() if k != "regions"}  # as written before regions were
    torch.save(old, entry_path)
    assert LatentCache(autoencoder, tmp_path / "cache", views=1).build(patches[:1]) == 0
    with pytest.raises(ValueError, match="require_regions=True"):
        LoadLatentd("latent", with_regions=True)(items[0])
    upgrading = LatentCache(autoencoder, tmp_path / "cache", views=1, require_regions=True)
    monkeypatch.setattr(upgrading, "encode", lambda _: pytest.fail("a kept latent was encoded again"))
    assert upgrading.build(patches[:1]) == 1
    torch.save(old, entry_path)
    upgrading(patches[:1])
    assert "0 entries encoded, 1 given their region fractions, 0 reused" in capsys.readouterr().out
    upgraded = load(entry_path)
    torch.testing.assert_close(upgraded["mu"], old["mu"], atol=0, rtol=0)
    torch.testing.assert_close(upgraded["regions"], region_fractions(patch_tensor(patches[0])[None], old["mu"].shape[1:])[0])


def test_each_view_is_the_encoding_of_that_view_of_the_patch(tmp_path, patches):
    autoencoder = tiny_autoencoder().eval()
    views = patch_views(4, seed=3)
    items = LatentCache(autoencoder, tmp_path / "cache", views=views)(patches[:1])
    patch = patch_tensor(patches[0])
    for view, entry_path in zip(views, items[0]["latent"]):
        with torch.no_grad():
            mu, sigma = autoencoder.encode(view(patch).unsqueeze(1))
        entry = load(entry_path)
        torch.testing.assert_close(entry["mu"], mu.flatten(0, 1), atol=1e-5, rtol=0)
        torch.testing.assert_close(entry["sigma"], sigma.flatten(0, 1), atol=1e-5, rtol=0)
    # the views differ from one another, so their latents do too
    assert not torch.allclose(load(items[0]["latent"][0])["mu"], load(items[0]["latent"][1])["mu"])


def test_views_are_deterministic_and_the_flip_mirrors_the_slice_axis():
    patch = torch.rand(2, *SHAPE)
    assert PatchView()(patch).equal(patch)
    assert PatchView(flip=True)(patch).equal(patch.flip(3))
    assert [v.spec for v in patch_views(6, seed=1)] == [v.spec for v in patch_views(6, seed=1)]
    assert [v.spec for v in patch_views(6, seed=1)] != [v.spec for v in patch_views(6, seed=2)]
    assert [v.name for v in patch_views(3)][:2] == ["identity", "flip"]
    # the first views of a longer list are the shorter list: a cache of 8 views holds the 1-view cache
    assert [v.spec for v in patch_views(8)[:3]] == [v.spec for v in patch_views(3)]
    rotated = patch_views(3, seed=0)[2]
    assert not rotated(patch).equal(patch) and rotated(patch).shape == patch.shape
    with pytest.raises(ValueError, match="num_views"):
        patch_views(0)


def test_a_mask_follows_the_view_its_latent_was_encoded_from():
    views = patch_views(3)
    mask = (torch.rand(2, *SHAPE) > 0.5).float()
    out = PatchViewd("mask", views, nearest="mask")({"mask": mask, "view": 1})
    assert out["mask"].equal(mask.flip(3))
    rotated = PatchViewd("mask", views, nearest="mask")({"mask": mask, "view": 2})["mask"]
    assert set(rotated.unique().tolist()) <= {0.0, 1.0}


def test_a_second_call_reuses_every_entry(tmp_path, patches, capsys):
    cache = LatentCache(tiny_autoencoder(), tmp_path / "cache", views=2)
    first = cache(patches)
    stamps = {p: os.stat(p).st_mtime_ns for item in first for p in item["latent"]}
    assert cache.build(patches) == 0
    second = LatentCache(tiny_autoencoder(), tmp_path / "cache", views=2)(patches)
    assert [i["latent"] for i in second] == [i["latent"] for i in first]
    assert {p: os.stat(p).st_mtime_ns for item in second for p in item["latent"]} == stamps
    assert "0 entries encoded, 6 reused" in capsys.readouterr().out


def test_other_autoencoder_weights_never_use_the_entries(tmp_path, patches, capsys):
    old = LatentCache(tiny_autoencoder(seed=0), tmp_path / "cache", views=1)(patches)
    retrained = tiny_autoencoder(seed=1)
    assert autoencoder_fingerprint(retrained) != autoencoder_fingerprint(tiny_autoencoder(seed=0))
    cache = LatentCache(retrained, tmp_path / "cache", views=1)
    new = cache(patches)
    out = capsys.readouterr().out
    assert "other autoencoder weights" in out and "3 entries encoded" in out
    assert all(n["latent"] != o["latent"] for n, o in zip(new, old))
    with torch.no_grad():
        expected = retrained.encode(patch_tensor(patches[0]).unsqueeze(1))[0].flatten(0, 1)
    torch.testing.assert_close(load(new[0]["latent"][0])["mu"], expected, atol=1e-5, rtol=0)
    # an old entry copied where the new weights look is refused: the entry names its weights
    Path(new[1]["latent"][0]).write_bytes(Path(old[1]["latent"][0]).read_bytes())
    assert cache.read_entry(new[1]["latent"][0]) is None
    assert cache.build(patches) == 1


def test_the_decoder_is_not_part_of_the_key(tmp_path):
    autoencoder = tiny_autoencoder()
    before = autoencoder_fingerprint(autoencoder)
    with torch.no_grad():
        next(autoencoder.decoder.parameters()).add_(1.0)
    assert autoencoder_fingerprint(autoencoder) == before
    with torch.no_grad():
        next(autoencoder.encoder.parameters()).add_(1.0)
    assert autoencoder_fingerprint(autoencoder) != before


def test_an_edited_patch_is_encoded_anew(tmp_path, patches):
    cache = LatentCache(tiny_autoencoder(), tmp_path / "cache", views=1)
    before = cache(patches)
    write_patch(Path(patches[0]["patch"]), seed=99)
    after = cache(patches)
    assert after[0]["latent"] != before[0]["latent"] and after[1:] == before[1:]
    with torch.no_grad():
        expected = cache.autoencoder.encode(patch_tensor(patches[0]).unsqueeze(1))[0].flatten(0, 1)
    torch.testing.assert_close(load(after[0]["latent"][0])["mu"], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("damage", ["truncated", "empty", "nan", "foreign"])
def test_a_damaged_entry_is_encoded_anew_not_trusted(tmp_path, patches, damage, capsys):
    cache = LatentCache(tiny_autoencoder(), tmp_path / "cache", views=1)
    entry = Path(cache(patches)[0]["latent"][0])
    good = load(str(entry))
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:200])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "nan":
        torch.save({**good, "mu": torch.full_like(good["mu"], float("nan"))}, entry)
    else:
        torch.save({"state_dict": good["mu"]}, entry)
    assert cache.build(patches) == 1
    assert "encoding it anew" in capsys.readouterr().out
    torch.testing.assert_close(load(str(entry))["mu"], good["mu"])


def test_an_interrupted_build_leaves_no_partial_entry(tmp_path, patches, monkeypatch):
    cache = LatentCache(tiny_autoencoder(), tmp_path / "cache", views=2)
    real_save, calls = torch.save, []

    def save_then_die(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 3:
            Path(f).write_bytes(b"half an entry")
            raise KeyboardInterrupt
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        cache(patches)
    monkeypatch.setattr(torch, "save", real_save)
    files = sorted(p.name for p in cache.folder.iterdir())
    assert len(files) == 2 and not any(name.startswith(".") for name in files)
    assert all(cache.read_entry(p) is not None for p in cache.folder.iterdir())
    assert cache.build(patches) == 4


def test_a_missing_or_unreadable_patch_is_named(tmp_path, patches):
    cache = LatentCache(tiny_autoencoder(), tmp_path / "cache", views=1)
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        cache([{"patch": str(tmp_path / "missing.nii.gz")}])
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match="bad.nii.gz"):
        cache([{"patch": str(bad)}])
    assert not list(cache.folder.glob("*.pt"))


def test_the_view_selection_samples_the_posterior_when_asked():
    mu, sigma = torch.randn(3, 8, 4, 4, 2), torch.rand(3, 8, 4, 4, 2) + 0.5
    data = {"latent_mu": mu, "latent_sigma": sigma}
    fixed = SelectLatentViewd("latent", random_view=False)(dict(data))
    assert fixed["view"] == 0 and fixed["image"].equal(mu[0]) and "latent_mu" not in fixed
    chosen = set()
    select = SelectLatentViewd("latent", posterior_prob=1.0)
    select.set_random_state(0)
    for _ in range(20):
        out = select(dict(data))
        chosen.add(out["view"])
        noise = (out["image"] - mu[out["view"]]) / sigma[out["view"]]
        assert 0.5 < float(noise.std()) < 1.5  # a draw of mu + sigma * eps
    assert chosen == {0, 1, 2}
    again = SelectLatentViewd("latent", posterior_prob=1.0)
    again.set_random_state(0)
    select.set_random_state(0)
    assert again(dict(data))["image"].equal(select(dict(data))["image"])


def test_a_removed_entry_is_named_when_loaded(tmp_path):
    with pytest.raises(ValueError, match="gone.pt"):
        LoadLatentd("latent")({"latent": [str(tmp_path / "gone.pt")]})


def test_latents_can_be_held_without_sigma_and_in_half_precision(tmp_path, patches):
    items = LatentCache(tiny_autoencoder(), tmp_path / "cache", views=2)(patches[:1])
    full = LoadLatentd("latent")(dict(items[0]))
    small = LoadLatentd("latent", with_sigma=False, dtype=torch.float16)(dict(items[0]))
    assert "latent_sigma" not in small and small["latent_mu"].dtype == torch.float16
    assert small["latent_mu"].nbytes * 4 == full["latent_mu"].nbytes + full["latent_sigma"].nbytes
    out = SelectLatentViewd("latent", random_view=False)(small)
    assert out["image"].dtype == torch.float32
    torch.testing.assert_close(out["image"], full["latent_mu"][0], atol=2e-3, rtol=1e-3)
    with pytest.raises(KeyError, match="with_sigma=True"):
        SelectLatentViewd("latent", posterior_prob=1.0)(LoadLatentd("latent", with_sigma=False)(dict(items[0])))
