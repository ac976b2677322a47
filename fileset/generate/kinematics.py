"""Vectorised four-vector helpers for the synthetic generators (px, py, pz, E arrays; GeV)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class P4:
    """A batch of four-momenta in Cartesian components."""

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray

    @property
    def pt(self) -> np.ndarray:
        """Transverse momentum."""
        return np.hypot(self.px, self.py)

    @property
    def eta(self) -> np.ndarray:
        """Pseudorapidity."""
        return np.arcsinh(self.pz / np.maximum(self.pt, 1e-9))

    @property
    def phi(self) -> np.ndarray:
        """Azimuth in (-π, π]."""
        return np.arctan2(self.py, self.px)

    @property
    def mass(self) -> np.ndarray:
        """Invariant mass (clipped at zero)."""
        m2 = self.e**2 - self.px**2 - self.py**2 - self.pz**2
        return np.sqrt(np.maximum(m2, 0.0))

    def __add__(self, other: "P4") -> "P4":
        return P4(self.px + other.px, self.py + other.py, self.pz + other.pz, self.e + other.e)

    def scaled(self, factor: np.ndarray) -> "P4":
        """Scale the whole four-vector (energy-scale/resolution effect)."""
        return P4(self.px * factor, self.py * factor, self.pz * factor, self.e * factor)


def from_ptetaphim(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> P4:
    """Build Cartesian four-vectors from (pT, η, φ, m)."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    return P4(px, py, pz, e)


def two_body_decay(parent: P4, m1: float | np.ndarray, m2: float | np.ndarray, rng: np.random.Generator) -> tuple[P4, P4]:
    """Isotropic two-body decay in the parent rest frame, boosted to the lab."""
    n = parent.px.shape[0]
    m = parent.mass
    m1 = np.broadcast_to(m1, (n,)).astype(float)
    m2 = np.broadcast_to(m2, (n,)).astype(float)
    m = np.maximum(m, m1 + m2 + 1e-6)
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2 * m)
    cos_t = rng.uniform(-1.0, 1.0, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = rng.uniform(-np.pi, np.pi, n)
    qx, qy, qz = p * sin_t * np.cos(phi), p * sin_t * np.sin(phi), p * cos_t
    d1 = P4(qx, qy, qz, np.sqrt(p**2 + m1**2))
    d2 = P4(-qx, -qy, -qz, np.sqrt(p**2 + m2**2))
    return boost(d1, parent), boost(d2, parent)


def boost(v: P4, parent: P4) -> P4:
    """Boost ``v`` from the rest frame of ``parent`` to the frame where ``parent`` has its momentum."""
    m = np.maximum(parent.mass, 1e-9)
    bx, by, bz = parent.px / parent.e, parent.py / parent.e, parent.pz / parent.e
    b2 = bx**2 + by**2 + bz**2
    gamma = parent.e / m
    bp = bx * v.px + by * v.py + bz * v.pz
    gamma2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    px = v.px + gamma2 * bp * bx + gamma * bx * v.e
    py = v.py + gamma2 * bp * by + gamma * by * v.e
    pz = v.pz + gamma2 * bp * bz + gamma * bz * v.e
    e = gamma * (v.e + bp)
    return P4(px, py, pz, e)
