"""Settings of the synthetic cohort: :class:`SyntheticCohortConfig`, the generator version and the
random streams a case draws from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GENERATOR_VERSION",
    "STREAM_ANATOMY",
    "STREAM_BLOCK",
    "STREAM_LATENTS",
    "STREAM_NOISE",
    "SyntheticCohortConfig",
]

#: Version of the generator, recorded in ``dataset.json``. Raise it with any change that makes the
#: same (seed, config) give other bytes; a change that keeps every byte (a refactor) keeps it.
GENERATOR_VERSION = "1.0.0"

# Distinct third words of the rng seed sequence ``[seed, index, stream]``: the latents, the
# anatomy and the noise of a case are independent streams, so e.g. changing the effect size
# changes the tumour and its signs but not the organs drawn before it. ``STREAM_BLOCK`` seeds
# the PNI permutation of a block, ``[seed, block, STREAM_BLOCK]``.
STREAM_LATENTS, STREAM_ANATOMY, STREAM_NOISE, STREAM_BLOCK = 0, 1, 2, 3


@dataclass(frozen=True)
class SyntheticCohortConfig:
    """Arguments of the synthetic cohort; with a seed they fix every byte written.

    Attributes:
        shape: volume size in voxels (X, Y, Z), Z the slice axis.
        inplane_spacing_mm: range of the (square) in-plane pixel size, drawn per case.
        slice_spacing_mm: range of the slice spacing, drawn per case.
        effect: PNI signal strength; 0 makes ``pni_risk`` independent of ``pni``.
        prevalence: fraction of PNI+ cases, exact per block of ``block_size``.
        block_size: size of the permuted blocks the PNI status is assigned in.
        intensity_scale: range of the liver signal (arbitrary units), log-uniform.
        snr: range of the liver signal-to-noise ratio (liver signal / noise sigma).
        bias_strength: standard deviation of the log coil-bias field.
        crop_size: TLCR crop (voxels) that the peritumoral signs must fall inside.
        image_dtype: dtype of the written images, "float32" or "int16" (rounded, as
            many scanners store them).
    """

    shape: tuple[int, int, int] = (160, 128, 64)
    inplane_spacing_mm: tuple[float, float] = (1.5, 2.0)
    slice_spacing_mm: tuple[float, float] = (2.5, 3.5)
    effect: float = 1.0
    prevalence: float = 44 / 128
    block_size: int = 128
    intensity_scale: tuple[float, float] = (200.0, 1500.0)
    snr: tuple[float, float] = (18.0, 35.0)
    bias_strength: float = 0.12
    crop_size: tuple[int, int, int] = (64, 64, 32)
    image_dtype: str = "float32"

    def __post_init__(self) -> None:
        # JSON and argparse hand in lists; the frozen dataclass stores tuples.
        for name in ("shape", "inplane_spacing_mm", "slice_spacing_mm", "intensity_scale", "snr", "crop_size"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise ValueError(f"shape must be three sizes >= 16, got {self.shape}.")
        for name in ("inplane_spacing_mm", "slice_spacing_mm", "intensity_scale", "snr"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {(lo, hi)}.")
        if not 0.0 <= self.prevalence <= 1.0:
            raise ValueError(f"prevalence must lie in [0, 1], got {self.prevalence}.")
        if self.image_dtype not in ("float32", "int16"):
            raise ValueError(f"image_dtype must be 'float32' or 'int16', got {self.image_dtype!r}.")
        if self.effect < 0 or self.block_size < 1:
            raise ValueError("effect must be >= 0 and block_size >= 1.")

    @classmethod
    def full_size(cls, **overrides) -> SyntheticCohortConfig:
        """Scanner-like matrix: 320 x 260 x 80 at 1.15-1.35 mm in plane (~40 cm field of view)."""
        return cls(**{"shape": (320, 260, 80), "inplane_spacing_mm": (1.15, 1.35), **overrides})
