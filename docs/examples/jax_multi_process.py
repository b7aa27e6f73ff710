"""The same Keras fit, bit-identical on every process of a multi-process JAX run.

Keras 3's multi-host path: every process runs this same program; ``keras.distribution
.initialize()`` connects them (it starts JAX's distributed runtime), ``DataParallel``
lays each global batch over the devices of all processes and ``model.fit`` trains one
model whose variables are replicated on every device. Each process reads its own shard
of the data, as hosts reading their own files do (``auto_shard_dataset=False``; a
``tf.data.Dataset`` could be sharded by Keras instead). Two processes on one machine
stand in for two hosts (JAX's CPU collectives, gloo, carry the all-reduce between them)::

    python docs/examples/jax_multi_process.py --coordinator 127.0.0.1:PORT --num-processes 2 --process-id 0 &
    python docs/examples/jax_multi_process.py --coordinator 127.0.0.1:PORT --num-processes 2 --process-id 1

Each process prints one line per fit, ``FINGERPRINT <process-id> <setting> <hex>`` (XXH3-128
of every variable), for the back-and-forth A, B, A, then the verdict its own ledger gives
(``VERDICT ...``). Every process prints the same fingerprints, A twice, and so does a second
run of the whole thing. ``--recipe plain`` runs the usual recipe instead (seed once, save
the weights after compile, recompile and set them back before each fit): its second A
differs from its first, because Dropout's random state is not among ``get_weights()`` and
the optimizer instance keeps its step count and moments across compiles.

The order matters: the seed comes first, before ``keras.distribution.initialize()``
(which otherwise agrees on a random seed across processes); the session refuses a seed
set after it.
"""
import argparse
import ipaddress
import os
import socket
import sys

SETTINGS = {"A": 1.0, "B": 0.5}   # the preprocessing parameter the back-and-forth changes
EPOCHS = 2
GLOBAL_BATCH = 32                 # each step, split over the processes: 16 rows each with two


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coordinator", required=True, help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--recipe", choices=("repro", "plain"), default="repro",
                        help="repro: jupyter_repro's Session; plain: the usual recipe, for comparison")
    parser.add_argument("--store", default=".repro", help="each process keeps its ledger in STORE/process-ID")
    return parser.parse_args()


def loopback_only(coordinator: str) -> None:
    """Processes on one machine standing in for hosts: keep every socket on the loopback.

    JAX's coordinator listens on all interfaces unless told otherwise
    (``JAX_COORDINATOR_BIND_ADDRESS``), and gloo binds to whatever this machine's hostname
    resolves to. JAX has no public switch for the latter, so the CPU backend is registered
    with gloo bound to the coordinator's host (JAX's private API, used only for this
    stand-in; on real hosts none of this runs).
    """
    host = coordinator.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return
    if not loopback:
        return
    os.environ.setdefault("JAX_COORDINATOR_BIND_ADDRESS", coordinator)
    try:
        from jax._src import distributed, xla_bridge
        from jax._src.lib import _jax
    except ImportError as error:  # another JAX layout: gloo keeps its default address
        print(f"note: gloo not pinned to {host} ({error})", file=sys.stderr)
        return

    def cpu_client():
        collectives = _jax.make_gloo_tcp_collectives(distributed_client=distributed.global_state.client,
                                                     hostname=host)
        return xla_bridge.make_cpu_client(collectives=collectives)

    xla_bridge.register_backend_factory("cpu", cpu_client, priority=0, fail_quietly=False)


def main():
    args = arguments()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    session = None
    if args.recipe == "repro":
        from jupyter_repro import Session

        # 1. Seed first: Keras, imported below, is seeded as it loads; initialize() then keeps this seed.
        session = Session(seed=42, store=os.path.join(args.store, f"process-{args.process_id}"))

    import jax
    import keras
    import numpy as np

    from jupyter_repro import model_fingerprint

    if args.recipe == "plain":
        keras.utils.set_random_seed(42)  # the usual recipe: seed once, at the top
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # the default since JAX 0.5.1
    loopback_only(args.coordinator)
    # 2. Connect the processes; 3. lay every batch out over all their devices.
    keras.distribution.initialize(args.coordinator, args.num_processes, args.process_id)
    keras.distribution.set_distribution(keras.distribution.DataParallel(auto_shard_dataset=False))

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(0.01)
    model.compile(optimizer=optimizer, loss="mse")
    raw = np.random.default_rng(0)  # fixed data ("the files on disk"); this process reads its shard
    X = raw.normal(size=(256, 6)).astype("float32")
    y = (X @ raw.normal(size=(6, 1))).astype("float32")
    X, y = X[args.process_id::args.num_processes], y[args.process_id::args.num_processes]
    batch = GLOBAL_BATCH // args.num_processes

    if session is not None:
        session.snapshot(model)  # 4. the state every fit starts from
    else:
        initial = model.get_weights()

    for setting in ("A", "B", "A"):  # the back-and-forth
        alpha = SETTINGS[setting]

        def train():
            model.fit(X * alpha, y, batch_size=batch, epochs=EPOCHS, verbose=0)

        if session is not None:
            report = session.fit(model, train)  # 5. restore, fresh optimizer, reseed, train, record
            fingerprint = report.fingerprint
        else:
            model.compile(optimizer=optimizer, loss="mse")
            model.set_weights(initial)
            train()
            fingerprint = model_fingerprint(model)
        print(f"FINGERPRINT {args.process_id} {setting} {fingerprint}", flush=True)
        if session is not None:
            print(f"VERDICT {args.process_id} {setting} {report.verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
