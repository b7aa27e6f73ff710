"""A synthetic run-to-failure fleet with the schema and scale of CMAPSS FD001.

For a fresh machine without NASA's files: 100 training engines run to failure,
100 test engines cut off before failure with their true RUL, 3 operational settings
and 21 sensors. Sensors drift from their healthy level towards their end-of-life
level along an accelerating wear curve, plus noise; the sensors that are flat in
FD001 (1, 5, 6, 10, 16, 18, 19) are flat here too. Levels are FD001's early-life and
end-of-life means. Deterministic: the same seed gives the same bytes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .cmapss import CMAPSS, COLUMNS

# (healthy level, end-of-life level, noise std) per sensor, read off FD001.
_SENSORS = [
    (518.67, 518.67, 0.0), (642.37, 643.59, 0.35), (1586.7, 1601.4, 4.5), (1402.5, 1427.2, 5.5),
    (14.62, 14.62, 0.0), (21.61, 21.61, 0.0), (553.98, 551.64, 0.6), (2388.056, 2388.217, 0.05),
    (9056.1, 9096.7, 15.0), (1.3, 1.3, 0.0), (47.346, 48.093, 0.18), (521.93, 519.95, 0.5),
    (2388.054, 2388.218, 0.05), (8137.6, 8166.3, 12.0), (8.417, 8.515, 0.025), (0.03, 0.03, 0.0),
    (392.25, 396.02, 1.1), (2388.0, 2388.0, 0.0), (100.0, 100.0, 0.0), (38.937, 38.473, 0.13),
    (23.363, 23.085, 0.08),
]


def _lifetimes(rng, count):
    # FD001: 128 to 362 cycles, mean 206, std 46.
    return np.minimum(128 + np.round(rng.gamma(2.9, 27.0, count)).astype(int), 362)


def _engine(rng, unit, cycles):
    healthy, worn, noise = (np.array(column) for column in zip(*_SENSORS))
    fraction = cycles[:, None] / cycles[-1]
    wear = np.expm1(3.0 * fraction) / np.expm1(3.0)
    offset = rng.normal(0.0, 0.5, healthy.size) * noise
    sensors = healthy + offset + (worn - healthy) * wear + rng.normal(0.0, 1.0, (cycles.size, healthy.size)) * noise
    settings = np.column_stack([rng.normal(0, 0.0022, cycles.size), rng.normal(0, 0.0003, cycles.size),
                                np.full(cycles.size, 100.0)])
    return np.column_stack([np.full(cycles.size, unit), cycles, settings, sensors])


def synthetic_fleet(seed: int = 0, engines: int = 100) -> CMAPSS:
    """Train and test fleets plus true RUL, generated from ``seed``."""
    rng = np.random.default_rng(seed)
    train_blocks, test_blocks, rul = [], [], []
    for unit, life in enumerate(_lifetimes(rng, engines), start=1):
        train_blocks.append(_engine(rng, unit, np.arange(1, life + 1)))
    for unit, life in enumerate(_lifetimes(rng, engines), start=1):
        remaining = int(rng.integers(7, min(146, life - 30)))
        full = _engine(rng, unit, np.arange(1, life + 1))
        test_blocks.append(full[: life - remaining])
        rul.append(remaining)
    train, test = (_frame(np.concatenate(blocks)) for blocks in (train_blocks, test_blocks))
    return CMAPSS(train, test, pd.DataFrame({"unit": range(1, engines + 1), "rul": rul}),
                  source=f"SYNTHETIC fleet (seed {seed}), not NASA data", synthetic=True)


def _frame(rows: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(np.round(rows, 4), columns=COLUMNS)
    frame[["unit", "cycle"]] = frame[["unit", "cycle"]].astype(int)
    return frame
