"""One read of a model's variables: the result's fingerprint and each variable's digest
from the same pass over memory, and a witness that later tells, without reading the bytes
again, which variables nothing has written since — where the backend can tell.

A fit's cost beside training is reading its state: a 1 GB model read three times per fit
(result fingerprint, per-variable digests, and again before the next fit to find what the
notebook changed) cost a third of a one-step fit. Here it is read once; the witness lets
the next fit, and a LoRA restore's frozen base, skip the reread where it is safe:

* **TensorFlow**: a variable's bytes are copy-on-write. ``read_value`` hands out a tensor
  sharing the variable's buffer, and every write (``assign*``, scatter, the optimizers'
  updates, XLA-compiled steps, ``set_weights``, ``load_weights``) copies to a new buffer
  first while another reference to the old one is alive (``PrepareToUpdateVariable``,
  ``RefCountIsOne``). The witness holds that reference: while the variable's buffer is the
  one held, its bytes are the ones read. A buffer that moved is hashed again (a read
  that copies, on another device, always moves).
* **JAX**: arrays are immutable; a write puts a new array in the variable (a donated
  buffer is deleted, never rewritten in place): the same array object means the same bytes.
* **PyTorch**: no witness. The version counter misses writes through ``param.data`` (its
  own counter) and through NumPy views, the usual initialisation idioms: hashed again.
* Anything else (another backend, a variable mirrored or split over devices, a read that
  copies): no witness; hashed again.

Not seen, and never claimed: writers that bypass TensorFlow's reference count (the raw
``InplaceUpdate``/``InplaceAdd`` ops on a read tensor, DLPack exports written by another
library, a private ``_numpy()`` view written in place).

Holding TensorFlow's buffers costs no memory while nothing writes (they are the variables'
own); a write between two fits keeps the old buffer until the next fit, which lets go of
every held buffer before its restore writes (``release``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import List, Sequence

import xxhash

from ..values.arrays import ArraysFingerprint
from ..values.tensors import host_view
from . import distribution


def _pointer(array) -> int:
    return array.__array_interface__["data"][0]


def _mark(variable, view):
    """What tells later that ``variable`` still holds the bytes of ``view``; None where its
    backend cannot tell."""
    value = getattr(variable, "_value", None)
    module = type(value).__module__ or ""
    if module.startswith("tensorflow"):
        if _mirrored(value) or view.flags.owndata or _pointer(host_view(variable)) != _pointer(view):
            return None  # replicas, or a read that copies (another device, copy-on-read): never the same buffer
        return ("tf", view, _pointer(view))
    if module.startswith(("jax", "jaxlib")):
        return ("jax", value)
    return None


def _mirrored(value) -> bool:
    """A ``tf.distribute`` value (one buffer per replica: the primary's says nothing of the others)."""
    distribute = getattr(sys.modules.get("tensorflow"), "distribute", None)
    kind = getattr(distribute, "DistributedValues", None)
    return kind is not None and isinstance(value, kind)


def _unchanged(variable, mark) -> bool:
    if mark is None:
        return False
    value = getattr(variable, "_value", None)
    if mark[0] == "tf":
        now = host_view(variable)
        return not now.flags.owndata and _pointer(now) == mark[2]
    return value is mark[1]


@dataclass
class StateRead:
    """The model's variables as read once: ``fingerprint`` (``model_fingerprint``'s),
    ``digests`` (``bytes_digest`` of each) and the witness's marks."""

    fingerprint: str
    digests: List[str]
    marks: List[object] = field(default_factory=list, repr=False)

    def unchanged(self, variables: Sequence) -> List[bool]:
        """For each variable (the model's, in order): nothing has written it since the read."""
        if len(variables) != len(self.marks):
            return [False] * len(variables)
        return [_unchanged(v, m) for v, m in zip(variables, self.marks)]

    def still(self, variables: Sequence) -> bool:
        """Every variable still holds what was read (the fingerprint still stands)."""
        return len(variables) == len(self.marks) and all(self.unchanged(variables))

    def release(self) -> None:
        """Let go of the held buffers (before a restore writes the variables: holding them
        then would make TensorFlow copy every variable it writes)."""
        self.marks = []


def read_state(model, witness: bool = True) -> StateRead:
    """Read every variable of ``model`` once: fingerprint, digests and (``witness``) marks."""
    fingerprint, digests, marks = ArraysFingerprint(), [], []
    for i, variable in enumerate(model.variables):
        distribution.require_readable(variable)
        view = host_view(variable)
        own = xxhash.xxh3_128()
        fingerprint.update(str(i), view, alongside=own)
        digests.append(own.hexdigest())
        if witness:
            marks.append(_mark(variable, view))
        del view
    return StateRead(fingerprint.hexdigest(), digests, marks)

