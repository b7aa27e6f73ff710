"""Keras variables and backend tensors as NumPy arrays on the host, in every dtype they take.

Fingerprints, snapshots and cached states read every variable of a model; for a big one
that must not mean a second copy of the weights. ``host_view`` gives a variable's bytes
without copying where the backend keeps them on the host (TensorFlow's eager buffer, a
JAX CPU array, a PyTorch CPU tensor), one variable at a time, for reading only;
``host_copy`` gives a private copy. bfloat16 and float8 come back as ``ml_dtypes`` arrays
on every backend: PyTorch cannot turn them into NumPy itself (``.numpy()`` raises), so
they are viewed as unsigned integers of the same width first; the bytes never change.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

#: PyTorch dtypes NumPy has no type for; ``ml_dtypes`` has each under the same name.
_TORCH_EXOTIC = frozenset({"bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"})


def numpy_dtype(name: str) -> np.dtype:
    """``np.dtype`` for a dtype name, ``ml_dtypes`` ones (bfloat16, float8_e4m3fn...) included."""
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        found = getattr(ml_dtypes, str(name), None)
        if found is None:
            raise TypeError(f"unknown dtype {name!r}") from None
        return np.dtype(found)


def host_view(value) -> np.ndarray:
    """``value`` (a Keras variable, a backend tensor, an array) as a NumPy array, without a
    copy where its bytes are already on the host. Read it, do not write it: it may be the
    variable's own memory (the array is marked read-only where NumPy allows)."""
    array, _ = _host(value)
    if array.flags.writeable and not array.flags.owndata:
        array = array.view()
        array.flags.writeable = False
    return array


def host_copy(value) -> np.ndarray:
    """A private NumPy copy of ``value`` that owns its memory."""
    array, private = _host(value)
    return array if private and array.flags.owndata and array.flags.writeable else np.array(array, copy=True)


def _host(value):
    """(array, whether it is already a private copy)."""
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Variable):
        value = value.value
    if isinstance(value, np.ndarray):
        return value, False
    if isinstance(value, np.generic):
        return np.asarray(value), True
    module = type(value).__module__ or ""
    if module.startswith("torch"):
        return _torch(value)
    if module.startswith("tensorflow"):
        return _tensorflow(value)
    if module.startswith(("jax", "jaxlib")):
        array = np.asarray(value)  # a CPU array's own buffer (read-only); a device array's host copy
        return array, array.flags.owndata
    array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    return array, True


def _tensorflow(value):
    """A tf.Variable's current buffer, or an eager tensor's: ``_numpy()`` shares a CPU
    tensor's memory (``.numpy()`` would copy it); other devices copy to the host."""
    tensor = value.read_value() if hasattr(value, "read_value") else value
    share = getattr(tensor, "_numpy", None)
    if share is not None:
        array = share()
        if isinstance(array, np.ndarray):  # its base holds a reference to the buffer
            return array, "CPU" not in getattr(tensor, "device", "CPU")
    return np.asarray(value.numpy()), True


def _torch(tensor):
    tensor = tensor.detach()
    private = tensor.device.type != "cpu"
    if private:
        tensor = tensor.cpu()
    if not tensor.is_contiguous():
        tensor, private = tensor.contiguous(), True
    name = str(tensor.dtype).replace("torch.", "")
    if name in _TORCH_EXOTIC:
        import ml_dtypes
        import torch

        carrier = torch.uint8 if tensor.element_size() == 1 else torch.int16
        return tensor.view(carrier).numpy().view(getattr(ml_dtypes, name)), private
    return tensor.numpy(), private


def to_torch(array: np.ndarray, like):
    """``array`` as a CPU torch tensor of ``like``'s dtype, sharing its memory (every dtype)."""
    import torch

    name = str(like.dtype).replace("torch.", "")
    with warnings.catch_warnings():  # read-only sources (a mapped file) are only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        if name in _TORCH_EXOTIC:  # NumPy's bytes as integers of the same width, seen as that dtype
            return torch.from_numpy(array.view(np.uint8 if array.dtype.itemsize == 1 else np.int16)).view(like.dtype)
        return torch.from_numpy(array)


def assign(variable, array: np.ndarray) -> None:
    """Put ``array`` (same shape and dtype) into the Keras ``variable``.

    PyTorch: copied into the parameter in place, as Keras itself assigns, but without
    Keras' detour through float32 for bfloat16. Other backends: ``variable.assign``.
    """
    value = getattr(variable, "_value", None)
    if type(value).__module__.startswith("torch") and array.dtype.itemsize == value.element_size():
        import torch

        with torch.no_grad():
            source = array if array.flags.c_contiguous else array.copy(order="C")  # keeps 0-d arrays 0-d
            value.copy_(to_torch(source, value))
        return
    variable.assign(array)
