"""A team's results, shared: which one a fit may replay, and what a fit publishes.

After the local cache misses, ``Sharing.find`` reads the records stored for the fit's
inputs (in ``.repro/team/``, the local copy of what was fetched and verified, and in the
team store) and replays one only when all of this holds; otherwise the fit trains and
``reason`` says in one line why:

* its ed25519 signature verifies over every field (``store/keys.py``): else *tampered*;
* its signer is named in the trust file (``store/trust.py``), or is this installation;
* it was computed in this environment class (``run/bits_class.py``): else "computed by
  alice on another arithmetic: onednn isa AVX512_CORE → AVX2";
* no other trusted record of the class has another result: two that disagree are
  reported, naming both signers, never settled by which is newer;
* its state blob is there and re-hashes to the digest the record signs: else *incomplete*
  or *tampered*. The verified blob is then copied into ``.repro/team/``.

``publish`` files a fit's stored state: the blob by digest, then a record signed with this
installation's key. A store that is down or read-only costs only the sharing: the state
stays in ``.repro/``, and the note says what was not shared.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..store import keys
from ..store.team import CorruptBlob, StoreDown, TeamStore
from . import bits_class

FORMAT = "jupyter-repro team record 1"
#: which refusal a one-line reason names first, when several records were refused
_ORDER = ("disagree", "class", "tampered", "incomplete", "untrusted", "unsigned", "unreadable")


@dataclass
class Shared:
    """A verified record to replay: who computed it, and its state file, verified, on this disk."""

    record: dict
    name: str
    path: Path

    @property
    def source(self) -> dict:
        """What the ledger and the verdict say of it ("computed by ci on 2026-12-05 (portable…)")."""
        return {"run": None, "team": True, "computed_by": self.name, "time": self.record.get("time"),
                "by": self.record.get("by"), "mode": self.record.get("class", {}).get("mode"),
                "result": self.record.get("result"), "signer": self.record.get("signer")}


class Sharing:
    """The team store as one run sees it: the remote store, the local copy, who we are, whom we trust."""

    def __init__(self, remote: TeamStore, mirror: TeamStore, identity, trust, class_facts: Dict[str, str]):
        self.remote, self.mirror, self.identity, self.trust = remote, mirror, identity, trust
        self.class_facts, self.class_id = class_facts, bits_class.class_id(class_facts)
        self.reason: Optional[str] = None
        self._seen: List[dict] = []  # the verified records read for this key: publish skips a duplicate

    # -- reading ----------------------------------------------------------------------
    def find(self, key: str) -> Optional[Shared]:
        """A trusted, verified result for input key ``key`` in this class, or None (``reason`` says why)."""
        refused: List[Tuple[str, str]] = []
        candidates = self._candidates(key, refused)
        results = sorted({r["result"] for r in candidates})
        if len(results) > 1:
            self.reason = self._disagreement(candidates)
            return None
        for record in candidates:
            path = self._blob(record, refused)
            if path is not None:
                self._keep(record)
                return Shared(record, self.trust.name_of(record["signer"]), path)
        self.reason = _pick(refused) or "no one has shared a result for these inputs yet"
        return None

    def _candidates(self, key: str, refused: List[Tuple[str, str]]) -> List[dict]:
        seen: Dict[str, bytes] = {}
        for store in (self.mirror, self.remote):
            try:
                seen.update((name, data) for name, data in store.records(key) if name not in seen)
            except OSError as error:  # down, or no right to read it
                refused.append(("unreadable", f"team store not read: {_why(error)}"))
        candidates = []
        for name, data in sorted(seen.items()):
            kind, outcome = self._judge(data, key)
            if kind is None:
                candidates.append(outcome)
            else:
                refused.append((kind, outcome))
        return candidates

    def _judge(self, data: bytes, key: str):
        """(None, record) for one to consider, else (kind of refusal, its reason)."""
        try:
            record = json.loads(data)
        except ValueError:
            return "unreadable", "a record in the team store is not JSON (damaged)"
        if not isinstance(record, dict) or "signature" not in record:
            return "unsigned", "the team store's record is not signed"
        if not keys.verifies(record) or record.get("input_key") != key:
            return "tampered", "the team store's record was tampered with (its signature does not verify)"
        if record.get("format") != FORMAT or _state_blob(record) is None or not isinstance(record.get("result"), str):
            return "unreadable", f"a signed record in the team store is not in the format this version reads ({FORMAT})"
        signer, name = record["signer"], self.trust.name_of(record["signer"])
        if name is None:
            return "untrusted", (f"the team store's result was signed by a key not in the trust file "
                                 f"({signer[:20]}…, {record.get('by', '?')}): trust it with `jupyter-repro trust NAME KEY`")
        self._seen.append(record)
        facts = record.get("class") if isinstance(record.get("class"), dict) else {}
        if bits_class.class_id(facts) != self.class_id:
            return "class", f"computed by {name} on {bits_class.explain(self.class_facts, facts)}"
        return None, record

    def _blob(self, record: dict, refused: List[Tuple[str, str]]) -> Optional[Path]:
        """The record's state, verified, in the local copy (fetched from the team store if need be)."""
        digest, size = _state_blob(record)
        local = Path(self.mirror.fs._strip_protocol(self.mirror.blob_path(digest)))
        try:
            try:
                self.mirror.get_blob(digest, size)
            except (FileNotFoundError, CorruptBlob) as missing:
                data = self.remote.get_blob(digest, size)
                if isinstance(missing, CorruptBlob):  # our own copy, damaged: replaced by the verified one
                    local.unlink()
                self.mirror.put_blob(data)
        except FileNotFoundError:
            refused.append(("incomplete", f"the record by {self.trust.name_of(record['signer'])} is incomplete: "
                                          f"its state blob {digest[:12]} is missing from the team store"))
            return None
        except CorruptBlob as error:
            refused.append(("tampered", f"the team store's state was tampered with: {error}"))
            return None
        except OSError as error:  # down, no right to read it, or the local copy cannot be written
            refused.append(("unreadable", f"team store not read: {_why(error)}"))
            return None
        return local

    def _keep(self, record: dict) -> None:
        """The replayed record in the local copy too, beside its blob: it replays offline."""
        try:
            self.mirror.put_record(record, self.class_id)
        except OSError:  # a local copy that cannot be written costs only the next fetch
            return

    def _disagreement(self, candidates: List[dict]) -> str:
        by_result: Dict[str, dict] = {}
        for record in candidates:
            by_result.setdefault(record["result"], record)
        (a, first), (b, second) = list(by_result.items())[:2]
        names = (self.trust.name_of(first["signer"]), self.trust.name_of(second["signer"]))
        epoch = next((i + 1 for i, (x, y) in enumerate(zip(first.get("epochs") or [], second.get("epochs") or []))
                      if x != y), None)
        where = f", first differs at epoch {epoch}" if epoch else ""
        return (f"{names[0]} and {names[1]} fitted the same inputs and disagree: result {a[:12]} vs {b[:12]}{where}; "
                "neither was replayed")

    # -- writing ----------------------------------------------------------------------
    def publish(self, state_file: str, key: str, result: str, epochs, env: dict, by: str = "?") -> str:
        """Share the state stored at ``state_file`` for input key ``key``; a one-line note."""
        mine = self.identity.public
        if any(r["signer"] == mine and r["result"] == result and r.get("class_id") == self.class_id
               for r in self._seen):
            return "team store: already shared by this installation"
        try:
            data = Path(state_file).read_bytes()
            digest, _ = self.remote.put_blob(data)
            record = {"format": FORMAT, "input_key": key, "class": self.class_facts, "class_id": self.class_id,
                      "result": result, "epochs": list(epochs or []),
                      "blobs": [{"role": "state", "digest": digest, "size": len(data)}],
                      "env": env, "by": by,
                      "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            self.remote.put_record(self.identity.sign(record), self.class_id)
        except OSError as error:
            return f"⚠ team store: the result is kept in .repro/ but was not shared ({_why(error)})"
        return f"team store: shared with {self.remote.url}, signed by this installation"


def _state_blob(record: dict) -> Optional[Tuple[str, int]]:
    """(digest, size) of the record's one state blob, or None if it does not name exactly one."""
    blobs = record.get("blobs")
    states = [b for b in blobs if isinstance(b, dict) and b.get("role") == "state"] if isinstance(blobs, list) else []
    if len(states) != 1:
        return None
    digest, size = states[0].get("digest"), states[0].get("size")
    if not (isinstance(digest, str) and len(digest) == 64 and isinstance(size, int) and size >= 0):
        return None
    return digest, size


def _pick(refused: List[Tuple[str, str]]) -> Optional[str]:
    """The most telling reason of those given, with how many other records were refused."""
    if not refused:
        return None
    refused = sorted(refused, key=lambda item: _ORDER.index(item[0]))
    more = len(refused) - 1
    return refused[0][1] + (f" ({more} other record{'s' if more > 1 else ''} refused too)" if more else "")


def _why(error: OSError) -> str:
    if isinstance(error, StoreDown):
        return str(error)
    if isinstance(error, PermissionError):
        return f"the store refused: {error}"
    return f"{type(error).__name__}: {error}"
