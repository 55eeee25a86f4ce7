"""CT display presets: MPR window/level and volume-rendering transfer functions (HU)."""

from __future__ import annotations

#: name -> (window width, window level) in HU
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "Soft tissue": (400.0, 40.0),
    "Bone": (1800.0, 400.0),
    "Lung": (1500.0, -600.0),
    "Brain": (80.0, 40.0),
    "Angio": (600.0, 150.0),
}

#: name -> (HU points, opacities, RGB colours 0-1) for volume rendering
VOLUME_PRESETS: dict[str, tuple[list[float], list[float], list[tuple[float, float, float]]]] = {
    "Bone": ([-1000, 150, 300, 1000, 3000], [0.0, 0.0, 0.15, 0.8, 0.9],
             [(0, 0, 0), (0.55, 0.25, 0.15), (0.9, 0.8, 0.6), (1, 1, 0.95), (1, 1, 1)]),
    "Angio": ([-1000, 100, 180, 400, 3000], [0.0, 0.0, 0.3, 0.7, 0.8],
              [(0, 0, 0), (0.6, 0.1, 0.1), (0.9, 0.3, 0.25), (1, 0.9, 0.8), (1, 1, 1)]),
    "Soft tissue": ([-1000, -200, 20, 80, 400, 3000], [0.0, 0.0, 0.06, 0.15, 0.5, 0.8],
                    [(0, 0, 0), (0.55, 0.3, 0.2), (0.85, 0.5, 0.4), (0.95, 0.7, 0.6), (1, 0.95, 0.85), (1, 1, 1)]),
}
