"""Snapshot capture and restore of a 100-million-parameter model vs a NumPy copy of its bytes."""
from __future__ import annotations

from common import Comparison, interleaved


def main(repeat: int = 5) -> list[Comparison]:
    import keras
    import numpy as np

    from jupyter_repro.model.snapshot import Snapshot, assign_variables

    model = keras.Sequential([keras.Input((10_000,)), keras.layers.Dense(10_000, use_bias=False)])
    model.compile(optimizer="adam", loss="mse")
    snapshot = Snapshot.capture(model, "big")
    assert snapshot.parameters == 100_000_000
    source = snapshot.values[0]
    copy = lambda: np.copy(source)  # noqa: E731 — the memory-bandwidth limit
    return [
        interleaved("snapshot capture, 100 M float32 (400 MB)", lambda: Snapshot.capture(model, "big"), copy,
                    repeat, goal="≤ 3"),
        interleaved("snapshot restore: variables only, 100 M float32", lambda: assign_variables(model, snapshot.values),
                    copy, repeat, goal="≤ 2"),
        interleaved("snapshot restore: check + fresh optimizer + recompile + variables",
                    lambda: snapshot.restore(model), copy, repeat, goal="≤ 2"),
    ]


if __name__ == "__main__":
    main()
