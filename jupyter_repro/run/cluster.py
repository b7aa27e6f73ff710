"""Where trials run when not in the kernel: a Dask cluster, reached through a ``Client``.

An executor, not a scheduler: ``connect`` gives a client (``"local"``: a ``LocalCluster``
of worker processes on this machine, started once per kernel; ``"tcp://host:8786"``: an
existing cluster; or a ``Client`` the user made), ``check_workers`` asks every worker for
its versions before any trial starts and refuses, in one line, one that differs.

A local cluster's workers get the kernel's environment: the portable mode's pins (set in
``os.environ``, or from the kernelspec) and its thread variables. Dask's nanny sets
``OMP_NUM_THREADS=1`` (and MKL's, OpenBLAS's) in each worker by default; that would be
another arithmetic than the notebook's, so the local cluster passes the kernel's values
instead, and leaves unset what the kernel leaves unset.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

from ..errors import ReproError
from .arithmetic import THREADS
from .probe import differences, probe
from .remote_trial import WorkerMismatch

#: how long a cluster address may take to answer before it counts as unreachable
CONNECT_SECONDS = 10
_LOCAL: Dict[str, object] = {}  # the local cluster and its client, once per kernel
_CLIENTS: Dict[str, object] = {}  # scheduler address -> the kernel's client of it


def require_distributed():
    """``distributed``, or one line saying how to install it."""
    try:
        import distributed
    except ImportError as error:
        raise ReproError("trials on a cluster need Dask distributed: pip install 'jupyter-repro[dask]'") from error
    return distributed


def connect(where) -> object:
    """A Dask ``Client`` for ``where``: a ``Client``, ``"local"``, or a scheduler address."""
    distributed = require_distributed()
    if isinstance(where, distributed.Client):
        return where
    if not isinstance(where, str) or not where.strip():
        raise ReproError(f"--on takes 'local' or a scheduler address such as tcp://scheduler:8786, not {where!r}")
    if where == "local":
        return local_client()
    known = _CLIENTS.get(where)
    if known is not None and known.status == "running":
        return known  # one connection per address for the kernel's life, not one per cell
    try:
        _CLIENTS[where] = distributed.Client(where, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ReproError(f"cannot reach the Dask cluster at {where} ({type(error).__name__}: {error}); "
                         "is its scheduler running, and is the address right?") from error
    return _CLIENTS[where]


def local_client(workers: Optional[int] = None):
    """The kernel's local cluster (started on first use): ``workers`` processes (the CPU
    count by default), one thread each for Dask, the kernel's environment."""
    if "client" in _LOCAL and _LOCAL["client"].status == "running":
        return _LOCAL["client"]
    cluster = local_cluster(workers)
    _LOCAL.update(cluster=cluster, client=require_distributed().Client(cluster, set_as_default=False))
    return _LOCAL["client"]


def local_cluster(workers: Optional[int] = None, **options):
    """A ``LocalCluster`` whose workers compute as this process does (see the module doc)."""
    import dask

    distributed = require_distributed()
    environ = {name: os.environ[name] for name in THREADS if name in os.environ}
    environ["MALLOC_TRIM_THRESHOLD_"] = os.environ.get("MALLOC_TRIM_THRESHOLD_", "65536")
    settings = dict(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None)
    settings.update(options)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return distributed.LocalCluster(**settings)


def close_local() -> None:
    """Stop the kernel's local cluster, if one was started, and close its other clients
    (the extension's unload)."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()
    client, cluster = _LOCAL.pop("client", None), _LOCAL.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def check_workers(client, versions: Dict[str, str], modules) -> Dict[str, dict]:
    """Every worker's versions, or ``WorkerMismatch`` naming the first that differs."""
    try:
        found = client.run(probe, list(modules))
    except ImportError as error:  # the probe is this package's: a worker without it cannot even run that
        raise WorkerMismatch(f"the cluster's workers cannot import jupyter_repro ({error}): install "
                             "jupyter-repro[dask] in their environment, at the notebook's version") from error
    except (OSError, TimeoutError) as error:
        raise ReproError(f"the Dask cluster did not answer ({type(error).__name__}: {error})") from error
    if not found:
        raise ReproError("the Dask cluster has no workers: start some, or use --on local")
    for address, theirs in sorted(found.items()):
        differing = differences(versions, theirs)
        if differing:
            raise WorkerMismatch(f"worker {address} differs from the notebook: {differing}; "
                                 "its trials would not give the notebook's bits, so none was started")
    return found
