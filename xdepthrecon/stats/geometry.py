"""Positions and distances on the sphere: unit vectors of latitudes and longitudes, chord and great-circle km."""

from __future__ import annotations

import numpy as np

#: Mean Earth radius (km) used for every distance on the sphere.
EARTH_RADIUS_KM = 6371.0
#: Kilometres per degree of latitude (of longitude at the equator).
KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180.0


def unit_vectors(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Points on the unit sphere ``(..., 3)`` for latitudes and longitudes in degrees."""
    lat, lon = np.deg2rad(np.asarray(latitude, dtype="float64")), np.deg2rad(np.asarray(longitude, dtype="float64"))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def great_circle_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle distance (km) from the chord length between unit vectors."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0))


def chord_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chord distances (km) between unit vectors ``a (..., n, 3)`` and ``b (..., m, 3)``: ``(..., n, m)``."""
    return EARTH_RADIUS_KM * np.sqrt(np.clip(2.0 - 2.0 * (a @ np.swapaxes(b, -1, -2)), 0.0, None))
