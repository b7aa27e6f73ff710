"""A ``keras.distribution`` layout as plain data: how a run is laid out over devices, which
is one of its inputs (``model/distribution.py``) and how such an object is fingerprinted
(``keras_values.py``). Light: ``model.distribution`` imports it when the extension loads."""
from __future__ import annotations

import sys
from typing import Optional


def describe_distribution(value) -> Optional[dict]:
    """A ``keras.distribution`` object (Distribution, DeviceMesh, LayoutMap, TensorLayout)
    as plain data, the same in every process: what it lays out where, not which process
    holds it. None for anything else."""
    module = sys.modules.get("keras.src.distribution.distribution_lib")
    if module is None or value is None:
        return None
    if isinstance(value, module.Distribution):
        described = {"distribution": type(value).__name__, "mesh": describe_distribution(value.device_mesh),
                     "batch axis": value.batch_dim_name, "auto shard": bool(value.auto_shard_dataset)}
        layout_map = getattr(value, "_layout_map", None)
        if layout_map is not None:
            described["layout map"] = describe_distribution(layout_map)
        return described
    if isinstance(value, module.DeviceMesh):
        return {"shape": [int(n) for n in value.shape], "axes": list(value.axis_names),
                "devices": [str(d) for d in value.devices.flat]}
    if isinstance(value, module.LayoutMap):
        return {key: describe_distribution(layout) for key, layout in value.items()}
    if isinstance(value, module.TensorLayout):
        return {"axes": [a if a is None else str(a) for a in value.axes]}
    return None
