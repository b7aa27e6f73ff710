"""Instant revisits: replay a fit whose result is already known.

With ``%%repro_fit --cache``, a trained run's final state (model and optimizer
variables) and its History are stored in ``<store>/states/``. When a later fit call has
the same input key as a run with a stored state, training is skipped: the variables are
restored and the stored History is returned from ``model.fit``; the rest of the cell
runs as usual. This is only sound because the fit is reproducible, and only when:

* every input is known by content *before* training: data a fit reads batch by batch
  (a generator, a PyDataset...) is known only by consuming it, so such a fit trains;
* the fit has no effects beyond the model: callbacks that write files or logs, send
  data, or run code the cache cannot know, make the fit train instead;
* this installation computed the state: the ledger line and the state's manifest carry
  a valid signature (``store/signing.py``), so a ``.repro/`` folder from elsewhere is never
  replayed, only trained anew;
* or, with a team store (``run/sharing.py``), a trusted key signed it in this environment
  class and every byte verifies: asked only when this installation has no state of its own,
  and given each state this installation stores.

Each refusal is one line in the report. States count towards the store's one cap with
the snapshots (``store/quota.py``): the least recently used go first, and a state larger than
the whole cap is not stored.
"""
from __future__ import annotations

import os
from typing import List, Optional

from ..model import distribution
from ..store.quota import DEFAULT_CAP, DiskQuota, owner_of, touch
from ..model.snapshot import fixed_variables, put_variables, spec_list, specs_nbytes
from ..store.snapshot_store import CorruptSnapshot, SnapshotStore
from ..values.tensors import host_view
from ..store.signing import Signer

#: Keras callbacks whose whole effect is on the model and its History.
REPLAYABLE = {"EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler", "TerminateOnNaN",
              "History", "ProgbarLogger"}
EFFECTS = {"ModelCheckpoint": "writes checkpoint files", "TensorBoard": "writes TensorBoard logs",
           "CSVLogger": "writes a CSV log", "BackupAndRestore": "writes backups",
           "RemoteMonitor": "sends logs to a server", "LambdaCallback": "runs arbitrary code",
           "SwapEMAWeights": "swaps weights in and out"}


def refusal(callbacks) -> Optional[str]:
    """Why a fit with these callbacks cannot be replayed from the cache, or None."""
    for callback in callbacks or ():
        name, module = type(callback).__name__, type(callback).__module__
        builtin = module.startswith("keras.")
        if builtin and name in REPLAYABLE:
            continue
        if builtin and name in EFFECTS:
            return f"{name} {EFFECTS[name]}, which a cache cannot replay"
        return f"custom callback {name} may have effects a cache cannot replay"
    return None


def _optimizer_variables(model) -> List:
    optimizer = getattr(model, "optimizer", None)
    return list(optimizer.variables) if optimizer is not None and optimizer.built else []


class StateCache:
    def __init__(self, directory: os.PathLike, max_bytes: int = DEFAULT_CAP, signer=None, keep=()):
        self.store = SnapshotStore(directory, "states")
        self.signer = signer or Signer()
        # keep: snapshot files in use; owner: another installation's states are never evicted
        self.quota = DiskQuota(directory, max_bytes, keep=keep, owner=owner_of(self.signer))

    def save(self, result: str, model, history, key: str) -> dict:
        """Store the model's final variables, its optimizer's, and the History of the run
        with input key ``key``, streamed to the file one variable at a time (no copy of the
        state in memory). Raises ``quota.OverCap`` for a state larger than the store's cap,
        ``OSError`` when the store cannot be written (nothing of it stays then).

        A state is filed under its input key *and* its result: two runs with other inputs
        can end with the same weights (another ``validation_data``, other metrics) but not
        with the same History or optimizer state, so neither may stand in for the other."""
        variables = list(model.variables) + _optimizer_variables(model)
        for variable in variables:
            distribution.require_readable(variable)
        specs = spec_list(variables)
        extra = {"input_key": key, "model_variables": len(model.variables),
                 "history": {k: [float(x) for x in v] for k, v in (history.history or {}).items()},
                 "params": {k: v for k, v in (history.params or {}).items() if isinstance(v, (int, float, str))},
                 "epoch": list(getattr(history, "epoch", []))}
        with self.quota.admit(specs_nbytes(specs), "the result's state"):
            return self.store.save(_name(key, self.signer.owner), result, specs, lambda i: host_view(variables[i]),
                                   extra, sign=self.signer.sign)

    def find(self, result: str, key: str) -> Optional[dict]:
        """This installation's state for ``key`` and ``result``, else one stored before
        states were filed by installation, else another installation's (never trusted:
        ``trusted`` says so, and the report that it was not signed here), or None."""
        found = self.store.find(_name(key, self.signer.owner), result) or self.store.find(_name(key), result)
        if found is None:
            for path in sorted(self.store.directory.glob(f"{_name(key)}-*-{result[:16]}.safetensors")):
                found = self.store.find(path.name[:-len("-" + result[:16] + ".safetensors")], result)
                if found is not None:
                    break
        return found

    def open(self, manifest: dict):
        """The stored file, mapped and verified (``CorruptSnapshot`` if not): everything a
        replay trusts and restores is then read from this one open file, which another
        kernel can no longer swap underneath."""
        return self.store.open(manifest)

    def trusted(self, stored, key: str) -> bool:
        """True only for a state this installation stored for input key ``key``, its
        manifest (checksums and History included) unchanged since."""
        manifest = stored.manifest
        return self.signer.verifies(manifest) and manifest.get("extra", {}).get("input_key") == key

    def open_shared(self, path, result: str, key: str):
        """A state fetched from the team store and verified there (``run/sharing.py``),
        opened and checked once more here: its checksums, and that it is the result and
        the inputs its signed record names."""
        from ..store.tensorfile import TensorFile

        try:
            stored = TensorFile(path).verify()
        except OSError as error:
            raise CorruptSnapshot(f"the team store's state {path} cannot be read ({error})") from error
        extra = stored.manifest.get("extra", {})
        if stored.manifest.get("fingerprint") != result or extra.get("input_key") != key:
            stored.close()
            raise CorruptSnapshot("the team store's state holds another result than its signed record names")
        return stored

    def restore(self, stored, model):
        """Put the state of ``stored`` (an open, verified ``TensorFile``) into ``model``;
        the stored History."""
        from keras.callbacks import History

        arrays = [stored.array(i) for i in range(len(stored.variables))]  # views of the mapped file
        manifest = stored.manifest
        extra = manifest["extra"]
        count = extra["model_variables"]
        digests = [variable.get("xxh3") for variable in manifest["variables"]]
        put_variables(model.variables, arrays.__getitem__, digests[:count], fixed_variables(model))
        optimizer_values = arrays[count:]
        if optimizer_values and model.optimizer is not None:
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            if len(model.optimizer.variables) == len(optimizer_values):
                put_variables(model.optimizer.variables, optimizer_values.__getitem__)
        del arrays, optimizer_values
        history = History()
        history.history = {k: list(v) for k, v in extra["history"].items()}
        history.params, history.epoch = dict(extra["params"]), list(extra["epoch"])
        history.set_model(model)
        model.history = history
        touch(stored.path)  # most recently used
        return history


def _name(key: str, owner: Optional[str] = None) -> str:
    """``state-KEY-OWNER``: each installation's states under their own names, so one
    sharing the folder never replaces or re-signs ours (``state-KEY``: before 0.4)."""
    return f"state-{key[:16]}-{owner}" if owner else f"state-{key[:16]}"


class Replayer:
    """The ``replay`` hook ``FitCalls`` asks at the first ``fit`` call of a cell."""

    def __init__(self, cache: StateCache, ledger, inputs, model, verify: bool = False, sharing=None):
        self.cache, self.ledger, self.inputs, self.model = cache, ledger, inputs, model
        self.verify = verify
        self.sharing = sharing  # run/sharing.Sharing: the team store, asked after this installation's own
        self.shared: Optional[str] = None  # what publishing this fit's state said
        self.refused: Optional[str] = None  # why this fit's result may not be stored or replayed
        self.source: Optional[dict] = None  # the earlier run replayed (or to verify against)
        self.note: Optional[str] = None

    def __call__(self, arguments: dict, observable) -> Optional[object]:
        self.refused = self._refusal(arguments, observable)
        if not self.refused:
            try:
                self.cache.signer.owner
            except OSError as error:  # the signing key cannot be read: nothing can be trusted or filed
                self.refused = str(error)
        if self.refused:
            self.note = f"cache not used: {self.refused}; trained instead"
            return None
        key, untrusted = self.inputs.key, 0
        try:
            records = self.ledger.records()
        except OSError as error:
            self.note = f"cache not used: the ledger cannot be read ({error}); trained instead"
            return None
        for record in reversed(records):
            if record.get("input_key") != key or not record.get("state") or record.get("opaque"):
                continue
            try:
                manifest = self.cache.find(record["result"], key)
                stored = self.cache.open(manifest) if manifest is not None else None
            except CorruptSnapshot as error:
                self.note = f"⚠ cache entry ignored: {error}; trained instead"
                return None
            if stored is None:
                continue
            if not (self.cache.signer.verifies(record) and self.cache.trusted(stored, key)):
                stored.close()
                untrusted += 1
                continue
            if self.verify:
                stored.close()
                self.source = record
                return None
            history = self.cache.restore(stored, self.model)
            stored.close()  # the arrays viewing the map keep it until the variables are assigned
            self.source = record
            return history
        history = self._from_team(key) if self.sharing is not None and not self.verify else None
        if history is not None:
            return history
        if untrusted:
            self.note = ("cache not used: the stored result for these inputs was not signed by this "
                         "installation (copied or edited?); trained instead")
        else:
            self.note = "cache: no stored result for these inputs yet; trained and stored"
        if self.sharing is not None and self.sharing.reason:
            self.note += f" (team store: {self.sharing.reason})"
        return None

    def _from_team(self, key: str):
        """The History of a trusted result from the team store, restored into the model; or None."""
        found = self.sharing.find(key)
        if found is None:
            return None
        try:
            stored = self.cache.open_shared(found.path, found.record["result"], key)
        except CorruptSnapshot as error:
            self.sharing.reason = str(error)
            return None
        history = self.restore(stored)
        self.source = found.source
        return history

    def restore(self, stored):
        history = self.cache.restore(stored, self.model)
        stored.close()  # the arrays viewing the map keep it until the variables are assigned
        return history

    def share(self, manifest: dict, report, record: dict) -> None:
        """Publish the state just stored in ``.repro/`` to the team store; ``shared`` says how it went."""
        if self.sharing is not None:
            self.shared = self.sharing.publish(manifest["manifest"], report.inputs.key, report.fingerprint,
                                               report.epochs, record.get("env", {}), record.get("by", "?"))

    def _refusal(self, arguments: dict, observable) -> Optional[str]:
        if observable:
            name = observable[0]
            what = self.inputs.opaque.get(f"fit.{name}", f"fit.{name} is data").split(" ", 1)[1]
            return f"{name} {what}, known only as the fit reads it, so no earlier result can be matched to it"
        if not self.inputs.comparable:
            return f"{self.inputs.reason}, so no earlier result can be matched to it"
        return refusal(arguments.get("callbacks"))
