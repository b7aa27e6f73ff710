"""How a model is spread over devices and processes, and the setups a reproducible fit refuses.

Two engines are supported (docs/distributed.md says how each is tested):

* **tf.distribute** (TensorFlow backend): a fresh optimizer must be created inside the
  scope of the strategy the model was built under, or its slot variables would not be
  mirrored; variables assigned there reach every replica. Asynchronous strategies
  (parameter servers) are refused.
* **keras.distribution** (JAX backend): ``DataParallel`` / ``ModelParallel`` over a
  ``DeviceMesh``, in one process or in several (``keras.distribution.initialize()``,
  which starts JAX's distributed runtime). Keras fixes each variable's layout when it is
  created, so restoring a snapshot puts the values back in that layout on every device.

What a run depends on includes its layout (``layout``): the number of processes, the
mesh, the distribution's layout map and where each variable lives. A run on two
processes is then never compared with one on a single process, nor DataParallel with
ModelParallel. Nothing here imports a framework the user has not imported.
"""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import DistributionError, ModelError
from ..values.keras_distribution import describe_distribution

#: tf.distribute strategies whose fits op determinism covers (tested: Mirrored, MultiWorkerMirrored).
REPRODUCIBLE_STRATEGIES = {"_DefaultDistributionStrategy", "OneDeviceStrategy", "MirroredStrategy",
                           "MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy"}


# -- tf.distribute ------------------------------------------------------------------
def strategy_scope(model):
    """The scope of the strategy ``model`` was built under (a no-op context without
    one). Refuses strategies that cannot be made reproducible."""
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None:
        return contextlib.nullcontext()
    _refuse_unreproducible(strategy)
    return strategy.scope()


def _refuse_unreproducible(strategy) -> None:
    name = type(strategy).__name__
    if "ParameterServer" in name:
        raise ModelError(f"{name} cannot be made reproducible: its workers update variables "
                         "asynchronously and TensorFlow's op determinism does not support it; use "
                         "MirroredStrategy or MultiWorkerMirroredStrategy")
    if name not in REPRODUCIBLE_STRATEGIES:
        raise ModelError(f"{name} is not known to be reproducible; supported: MirroredStrategy, "
                         "MultiWorkerMirroredStrategy, OneDeviceStrategy")


def _strategy_layout(strategy) -> dict:
    resolver = getattr(strategy, "cluster_resolver", None)
    workers = 1
    if resolver is not None:
        try:
            workers = max(1, len(resolver.cluster_spec().as_dict().get("worker", [])))
        except (AttributeError, ValueError):  # a resolver without a cluster (one machine)
            workers = 1
    return {"engine": "tf.distribute", "strategy": type(strategy).__name__,
            "replicas": int(strategy.num_replicas_in_sync), "workers": workers}


# -- processes ----------------------------------------------------------------------
def jax_distributed() -> bool:
    """True once JAX's multi-process runtime is up (``keras.distribution.initialize()``)."""
    jax = sys.modules.get("jax")
    distributed = getattr(jax, "distributed", None)
    return distributed is not None and distributed.is_initialized()


def processes() -> Tuple[int, int]:
    """(how many processes train together, this one's index); (1, 0) in a single process."""
    if not jax_distributed():
        return 1, 0
    jax = sys.modules["jax"]
    return jax.process_count(), jax.process_index()


# -- keras.distribution ---------------------------------------------------------------
def current():
    """The ``keras.distribution`` distribution in effect (set or scoped), or None."""
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "distribution"):
        return None
    try:
        return keras.distribution.distribution()
    except AttributeError:  # a backend without keras.distribution support
        return None


def _placement(variable) -> Optional[dict]:
    """Where a variable's value lives: a mesh and how its axes split it, or None for one
    device (JAX); its Keras layout elsewhere."""
    value = getattr(variable, "_value", None)
    sharding = getattr(value, "sharding", None)
    spec = getattr(sharding, "spec", None)
    mesh = getattr(sharding, "mesh", None)
    if spec is not None and mesh is not None:
        return {"mesh": {str(k): int(v) for k, v in dict(mesh.shape).items()},
                "spec": [a if a is None else str(a) for a in spec]}
    if sharding is not None:
        devices = len(sharding.device_set)
        return None if devices == 1 else {"devices": devices, "sharding": type(sharding).__name__}
    return describe_distribution(getattr(variable, "_layout", None))


def layout(model) -> Optional[dict]:
    """How ``model`` is trained across devices and processes, as plain data; None on one
    device in one process (so single-device runs keep the inputs they always had)."""
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is not None and type(strategy).__name__ != "_DefaultDistributionStrategy":
        _refuse_unreproducible(strategy)  # before asking it anything: a refused strategy may not answer
        return _strategy_layout(strategy)
    count, _ = processes()
    distribution = current()
    placements = [_placement(v) for v in model.variables]
    if count == 1 and distribution is None and not any(placements):
        return None
    return {"engine": "keras.distribution", "processes": count, "distribution": describe_distribution(distribution),
            "variables": placements}


def summary() -> Dict[str, str]:
    """Environment facts: how many processes, and the distribution in effect, in words.
    Which process this is stays out: it must not change a result."""
    facts = {"processes": str(processes()[0])}
    distribution = current()
    if distribution is not None:
        mesh = distribution.device_mesh
        axes = ", ".join(f"{a}={n}" for a, n in zip(mesh.axis_names, mesh.shape))
        facts["keras distribution"] = (f"{type(distribution).__name__} over {mesh.devices.size} devices "
                                       f"(mesh {axes})")
    else:
        facts["keras distribution"] = "none"
    return facts


# -- refusals -------------------------------------------------------------------------
def check_seed_allowed(seed: int, seed_before: Optional[int]) -> None:
    """Refuse a session seed set once JAX's multi-process runtime is up, unless it is the
    seed already in effect: ``keras.distribution.initialize()`` agrees on a random seed
    across processes when none is set, so the seed must come first (before Keras'
    initialize) for every process to start from the same, known one."""
    if not jax_distributed() or seed == seed_before:
        return
    raise DistributionError(
        f"seed {seed} comes after keras.distribution.initialize(): seed first, before initialize "
        "(Session(seed=...) or %repro_seed at the top, or c.ReproMagics.seed in the profile), so every "
        "process starts from the same seed" + (f"; this session's seed is {seed_before}" if seed_before is not None
                                               else ""))


def check_processes(expected: int, name: str) -> None:
    """Refuse a run whose process count differs from the snapshot's."""
    count, _ = processes()
    if count != expected:
        raise DistributionError(
            f"snapshot '{name}' was taken in a run of {expected} process{'es' if expected != 1 else ''}, "
            f"this run has {count}: a fit's result depends on how many processes share it; take the "
            "snapshot again in this run")


def check_layout(model, specs: Sequence[Tuple[str, Tuple[int, ...], str]], name: str) -> None:
    """Refuse, before anything is touched, a ``keras.distribution`` layout that the
    snapshot's shapes cannot take, and a model laid out on other devices than the
    distribution in effect (Keras would fail mid-fit: "incompatible devices")."""
    distribution = current()
    if distribution is None:
        return
    mesh = distribution.device_mesh
    sizes = dict(zip(mesh.axis_names, mesh.shape))
    for i, (variable, spec) in enumerate(zip(model.variables, specs)):
        axes = _axes_for(distribution, variable)
        for dim, (size, axis) in enumerate(zip(spec[1], axes)):
            split = math.prod(sizes.get(a, 1) for a in _names(axis))
            if split > 1 and size % split:
                raise DistributionError(
                    f"{type(distribution).__name__} cannot lay out variable #{i} '{variable.path}' "
                    f"{tuple(spec[1])} of snapshot '{name}': its dimension {dim} ({size}) does not split over "
                    f"mesh axis {axis!r} ({split} devices); change the layout map or the mesh")
    devices = _mesh_devices(mesh)
    if devices is None:
        return
    for variable in model.variables:
        placed = _devices_of(variable)
        if placed is not None and placed != devices:
            raise DistributionError(
                f"variable '{variable.path}' is on {len(placed)} device{'s' if len(placed) != 1 else ''}, "
                f"not on the {len(devices)} of the {type(distribution).__name__} in effect: the model was built "
                "outside it. Build the model under it (after keras.distribution.set_distribution, or inside "
                "distribution.scope()), then take the snapshot again")


def _axes_for(distribution, variable) -> List:
    """The mesh axes each dimension of ``variable`` is split over under ``distribution``,
    as its layout map (or its rule) says, whatever layout the variable has now."""
    layout_map = getattr(distribution, "_layout_map", None)
    if layout_map is not None:
        found = layout_map[variable.path]
        return list(found.axes) if found is not None else [None] * len(variable.shape)
    type_name = type(distribution).__name__
    if type_name == "DataParallel":
        return [None] * len(variable.shape)  # replicated
    found = distribution.get_variable_layout(variable)
    return list(getattr(found, "axes", None) or [None] * len(variable.shape))


def _names(axis) -> Tuple[str, ...]:
    if axis is None:
        return ()
    return tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def _mesh_devices(mesh) -> Optional[frozenset]:
    try:
        return frozenset(mesh.backend_mesh.devices.flat)
    except (AttributeError, ValueError, NotImplementedError):  # a backend without device meshes
        return None


def _devices_of(variable) -> Optional[frozenset]:
    sharding = getattr(getattr(variable, "_value", None), "sharding", None)
    return frozenset(sharding.device_set) if sharding is not None else None


# -- reading values ---------------------------------------------------------------------
def require_readable(variable) -> None:
    """Refuse a variable split across processes: no process holds all of its values, so no
    snapshot can be read here (DataParallel replicates every variable on every process)."""
    value = getattr(variable, "_value", None)
    if getattr(value, "is_fully_addressable", True) or getattr(value, "is_fully_replicated", True):
        return
    raise DistributionError(
        f"variable '{variable.path}' is split across processes (this one holds only part of it): "
        "snapshots of layouts that shard variables over several processes are not supported; shard "
        "within each process's devices, or use DataParallel")
