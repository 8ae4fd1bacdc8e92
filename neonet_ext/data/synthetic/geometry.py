"""Geometry of the synthetic cohort's painter: the voxel grid, implicit shapes and trees.

Shapes are signed distances in millimetres (negative inside) evaluated on world
coordinates (RAS+, volume centred on 0); :func:`partial_volume` turns a distance into the
fraction of a voxel a shape fills. :class:`Tubes` draws unions of tapered capsules
(vessels, ducts, tracks), :func:`grow_tree` grows a bifurcating vessel tree inside an organ
and :func:`smooth_noise` gives cheap smooth random fields.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "FULL_VOLUME",
    "Branch",
    "Grid",
    "Tubes",
    "ancestors",
    "ellipsoid_distance",
    "elliptic_cylinder_distance",
    "grow_tree",
    "partial_volume",
    "random_perpendicular",
    "rotate",
    "rotation_matrix",
    "smooth_intersection",
    "smooth_noise",
    "smooth_union",
    "unit",
]


class Grid:
    """Voxel grid: world coordinates (mm, RAS+) of voxel centres, volume centred on 0."""

    def __init__(self, shape: Sequence[int], spacing: Sequence[float]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.origin = -(np.asarray(self.shape) - 1) / 2.0 * self.spacing
        self.axes = [
            (self.origin[k] + np.arange(n) * self.spacing[k]).astype(np.float32) for k, n in enumerate(self.shape)
        ]

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) voxel-to-world matrix: diagonal spacing, origin at voxel (0, 0, 0)."""
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = self.origin
        return affine

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering the world box [lo, hi] (mm), clipped; None if it misses the grid."""
        start = np.maximum(np.ceil((np.asarray(lo) - self.origin) / self.spacing), 0).astype(int)
        stop = np.minimum(np.floor((np.asarray(hi) - self.origin) / self.spacing) + 1, self.shape).astype(int)
        if np.any(stop <= start):
            return None
        return tuple(slice(a, b) for a, b in zip(start, stop))

    def coords(self, sl: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates of the box ``sl`` as broadcastable (nx,1,1), (1,ny,1), (1,1,nz) arrays."""
        x, y, z = (a[s] for a, s in zip(self.axes, sl))
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def index(self, point: np.ndarray) -> tuple[int, int, int] | None:
        """Index of the voxel nearest the world ``point`` (mm); None outside the grid."""
        ijk = np.rint((np.asarray(point) - self.origin) / self.spacing).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= self.shape):
            return None
        return tuple(int(v) for v in ijk)


#: The box of the whole grid, for :meth:`Grid.coords` and painting everywhere.
FULL_VOLUME = (slice(None), slice(None), slice(None))


@lru_cache(maxsize=64)
def _noise_basis(n: int, n_ctrl: int) -> np.ndarray:
    # Gaussian bumps on a control lattice one step beyond each edge; rows have unit
    # L2 norm, so a field built from iid unit coefficients has unit variance everywhere.
    step = n / n_ctrl
    centres = (np.arange(-1, n_ctrl + 1) + 0.5) * step
    basis = np.exp(-0.5 * ((np.arange(n)[:, None] + 0.5 - centres[None]) / (0.7 * step)) ** 2)
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)
    return basis.astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], n_ctrl: Sequence[int]) -> np.ndarray:
    """Smooth Gaussian random field of the given (X, Y, Z) shape with unit variance.

    Built as a separable tensor product of Gaussian bumps (three small matrix
    products), far cheaper than filtering or zooming a full-size volume.
    """
    n_ctrl = [max(1, int(round(c))) for c in n_ctrl]
    coeffs = rng.standard_normal([c + 2 for c in n_ctrl]).astype(np.float32)
    bx, by, bz = (_noise_basis(int(n), c) for n, c in zip(shape, n_ctrl))
    field = np.tensordot(bx, coeffs, axes=(1, 0))  # (X, cy, cz)
    field = np.tensordot(field, by, axes=(1, 1))  # (X, cz, Y)
    field = np.tensordot(field, bz, axes=(1, 1))  # (X, Y, Z)
    return np.ascontiguousarray(field, dtype=np.float32)


def rotation_matrix(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """3x3 rotation Rz(yaw) @ Ry(pitch) @ Rx(roll); its columns are a shape's local axes."""
    cz, sz, cy, sy, cx, sx = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ ry @ rx


def ellipsoid_distance(coords, centre, radii, rotation: np.ndarray | None = None) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an ellipsoid.

    ``(q - 1) / |grad q|`` with ``q`` the normalised radius: exact on the axes and
    first-order accurate near the surface, which is all the partial-volume ramp needs.
    """
    d = [c - float(v) for c, v in zip(coords, centre)]
    if rotation is not None:
        d = [d[0] * rotation[0, k] + d[1] * rotation[1, k] + d[2] * rotation[2, k] for k in range(3)]
    a = [di / float(r) for di, r in zip(d, radii)]
    q = np.sqrt(a[0] ** 2 + a[1] ** 2 + a[2] ** 2)
    grad = np.sqrt((a[0] / radii[0]) ** 2 + (a[1] / radii[1]) ** 2 + (a[2] / radii[2]) ** 2)
    return ((q - 1.0) * q / np.maximum(grad, 1e-6)).astype(np.float32)


def elliptic_cylinder_distance(x, y, centre, radii) -> np.ndarray:
    """Approximate signed distance (mm) to an infinite elliptic cylinder along Z; shape (nx, ny, 1)."""
    return ellipsoid_distance((x, y, np.zeros((1, 1, 1), np.float32)), (*centre, 0.0), (*radii, 1e6))


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two implicit shapes (polynomial smooth minimum over ``k`` mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smooth_intersection(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth intersection of two implicit shapes."""
    return -smooth_union(-a, -b, k)


def partial_volume(f: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume fraction from a signed distance: a linear ramp ``width`` mm wide."""
    return np.clip(0.5 - f / width, 0.0, 1.0).astype(np.float32, copy=False)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1 (a zero vector stays ~0)."""
    return v / max(float(np.linalg.norm(v)), 1e-9)


def rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about unit ``axis``."""
    return v * math.cos(angle) + np.cross(axis, v) * math.sin(angle) + axis * np.dot(axis, v) * (1 - math.cos(angle))


def random_perpendicular(rng: np.random.Generator, v: np.ndarray) -> np.ndarray:
    """A random unit vector perpendicular to unit ``v``."""
    w = rng.standard_normal(3)
    return unit(w - np.dot(w, v) * v)


class Tubes:
    """Partial-volume fraction (X, Y, Z) of a union of tapered capsules (vessels, ducts, tracks)."""

    def __init__(self, grid: Grid, width: float) -> None:
        self.grid, self.width = grid, width
        self.frac = np.zeros(grid.shape, np.float32)
        self.lo, self.hi = np.array(grid.shape), np.zeros(3, int)

    def capsule(self, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> None:
        """Add the capsule from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``), world mm."""
        pad = max(r0, r1) + self.width
        sl = self.grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
        if sl is None:
            return
        x, y, z = self.grid.coords(sl)
        d = p1 - p0
        length2 = max(float(d @ d), 1e-9)
        px, py, pz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / length2, 0.0, 1.0)
        dist = np.sqrt((px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2)
        frac = partial_volume(dist - (r0 + t * (r1 - r0)), self.width)
        np.maximum(self.frac[sl], frac, out=self.frac[sl])
        self.lo = np.minimum(self.lo, [s.start for s in sl])
        self.hi = np.maximum(self.hi, [s.stop for s in sl])

    def polyline(self, points: np.ndarray, radii: np.ndarray) -> None:
        """Add capsules along ``points`` (k, 3), radius ``radii`` (k,) at each point."""
        for k in range(len(points) - 1):
            self.capsule(points[k], points[k + 1], float(radii[k]), float(radii[k + 1]))

    def region(self) -> tuple[slice, slice, slice] | None:
        """The box holding every capsule added so far; None when none touched the grid."""
        if np.any(self.hi <= self.lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(self.lo, self.hi))



@dataclass
class Branch:
    """One branch of a tree of :func:`grow_tree`."""

    points: np.ndarray  # (k, 3) centreline, mm
    radii: np.ndarray  # (k,) mm
    generation: int
    parent: int  # index of the parent branch, -1 for a trunk


def grow_tree(
    rng: np.random.Generator,
    depth_at: Callable[[np.ndarray], float],
    trunks: Sequence[tuple[np.ndarray, np.ndarray, float, float]],
    max_generation: int,
    min_radius: float,
    step: float,
) -> list[Branch]:
    """Bifurcating, tapering vessel tree that stays inside the liver.

    Args:
        depth_at: depth (mm) of a world point inside the liver, negative outside.
        trunks: (start, direction, length, radius) of each generation-0 branch.
        max_generation: last generation that is still drawn.
        min_radius: branches thinner than this are not drawn (sub-voxel).
        step: centreline step (mm); each step turns a little, so branches curve.
    """
    branches: list[Branch] = []
    stack = [
        (np.asarray(p, float), unit(np.asarray(d, float)), length, radius, 0, -1) for p, d, length, radius in trunks
    ]
    while stack:
        start, direction, length, radius, generation, parent = stack.pop()
        n_steps = max(2, int(math.ceil(length / step)))
        ds = length / n_steps
        points, p, d = [start], start, direction
        for _ in range(n_steps):
            new_d = unit(d + rng.normal(0.0, 0.12, 3))
            # Trunks start at the hilum or the IVC, outside the parenchyma: only
            # branches are kept inside, by turning toward deeper liver or stopping.
            if generation > 0 and depth_at(p + ds * new_d) < radius + 1.0:
                options = [unit(d + rng.normal(0.0, 0.6, 3)) for _ in range(4)]
                depths = [depth_at(p + ds * o) for o in options]
                best = int(np.argmax(depths))
                if depths[best] < 0.5 * radius + 0.5:
                    break
                new_d = options[best]
            p, d = p + ds * new_d, new_d
            points.append(p)
        if len(points) < 2:
            continue
        index = len(branches)
        radii = np.linspace(radius, 0.95 * radius, len(points))
        branches.append(Branch(np.array(points), radii, generation, parent))
        if len(points) == n_steps + 1 and generation < max_generation:
            axis = random_perpendicular(rng, d)
            # asymmetric bifurcation (Murray-like): a main continuation and a thinner side branch
            children = ((1.0, (0.8, 0.92), (0.15, 0.45)), (-1.0, (0.6, 0.8), (0.5, 1.0)))
            for side, (lo, hi), (turn_lo, turn_hi) in children:
                child_radius = 0.95 * radius * rng.uniform(lo, hi)
                if child_radius >= min_radius:
                    child_d = rotate(d, axis, side * rng.uniform(turn_lo, turn_hi))
                    stack.append((p, child_d, length * rng.uniform(0.7, 0.9), child_radius, generation + 1, index))
    return branches


def ancestors(branches: Sequence[Branch], index: int) -> list[int]:
    """``index`` and the indices of its parent, grandparent... up to its trunk."""
    chain = []
    while index >= 0:
        chain.append(index)
        index = branches[index].parent
    return chain


