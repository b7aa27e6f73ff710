"""The stored tensor file (safetensors), every dtype, checksums, signatures, the old format (in-process)."""
import json
import struct
import time
import tracemalloc

import ml_dtypes
import numpy as np
import pytest
import xxhash

from jupyter_repro.values.arrays import fingerprint_arrays
from jupyter_repro.values.fingerprint import fingerprint_value
from jupyter_repro.store.signing import Signer
from jupyter_repro.store.snapshot_store import CorruptSnapshot, SnapshotStore
from jupyter_repro.store.tensorfile import TensorFile
from kernel import requires


def arrays():
    """One array per dtype a Keras variable takes, and a few more."""
    rng = np.random.default_rng(0)
    values = {
        "d/kernel": rng.normal(size=(3, 5)).astype("float32"),
        "h/kernel": rng.normal(size=(4, 2)).astype("float16"),
        "b/kernel": rng.normal(size=(2, 3)).astype(ml_dtypes.bfloat16),
        "q/kernel": rng.integers(-128, 127, size=(5, 3)).astype("int8"),
        "f8/e4m3": rng.normal(size=(7,)).astype(ml_dtypes.float8_e4m3fn),
        "f8/e5m2": rng.normal(size=(3,)).astype(ml_dtypes.float8_e5m2),
        "seed": np.array([7, 0], dtype="uint32"),
        "step": np.array(12, dtype="int64"),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 4), "float32"),
        "odd": rng.normal(size=(5,)).astype(ml_dtypes.float8_e4m3b11fnuz),  # no safetensors code: stored as bytes
    }
    return values


def save(tmp_path, values=None, **options):
    values = values or arrays()
    store = SnapshotStore(tmp_path)
    specs = [(path, a.shape, str(a.dtype)) for path, a in values.items()]
    manifest = store.save("model", "f" * 32, specs, list(values.values()), **options)
    return store, manifest, values


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_every_dtype_round_trips_byte_for_byte_and_no_temporary_file_is_left(tmp_path):
    store, manifest, values = save(tmp_path)
    loaded = store.load(store.saved("model")[-1])
    assert all(same_bytes(a, b) for a, b in zip(loaded, values.values()))
    assert all(not a.flags.writeable for a in loaded)            # views of the mapped file
    assert [p.name for p in store.directory.iterdir()] == ["model-ffffffffffffffff.safetensors"]


def test_a_platform_without_pread_or_madvise_reads_and_releases_the_same(tmp_path, monkeypatch):
    """Windows has neither ``os.pread`` nor ``mmap.MADV_DONTNEED``."""
    import mmap
    import os

    monkeypatch.delattr(os, "pread", raising=False)
    monkeypatch.delattr(mmap, "MADV_DONTNEED", raising=False)
    store, manifest, values = save(tmp_path)
    stored = store.open(store.saved("model")[-1])
    assert all(same_bytes(stored.array(i), a) for i, a in enumerate(values.values()))
    stored.release(0)
    assert same_bytes(stored.array(0), values["d/kernel"])


@requires("torch")
def test_the_safetensors_library_opens_it_with_the_right_dtypes(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file

    store, manifest, values = save(tmp_path)
    path = manifest["manifest"]
    expected_torch = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                      "int8": torch.int8, "float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2,
                      "uint32": torch.uint32, "int64": torch.int64, "bool": torch.bool,
                      "float8_e4m3b11fnuz": torch.uint8}
    with safe_open(path, framework="pt") as stored:
        assert set(stored.keys()) == set(values)
        metadata = json.loads(stored.metadata()["jupyter_repro"])
        for name, array in values.items():
            tensor = stored.get_tensor(name)
            assert tensor.dtype == expected_torch[str(array.dtype)], name
            if tensor.dtype == torch.uint8 and array.dtype != np.uint8:    # kept as its bytes
                assert tensor.numpy().tobytes() == array.tobytes()
                continue
            assert tuple(tensor.shape) == array.shape
            width = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[array.dtype.itemsize]
            raw = tensor.view(width) if array.dtype != bool else tensor
            assert raw.numpy().tobytes() == array.tobytes(), name
    assert [v["xxh3"] for v in metadata["variables"]] == [xxhash.xxh3_128_hexdigest(a.tobytes())
                                                          for a in values.values()]
    # NumPy's own loader, on a file of NumPy dtypes: same values, same dtypes
    plain = {k: v for k, v in values.items() if v.dtype in (np.float32, np.float16, np.int8, np.uint32, np.int64)}
    _, manifest, _ = save(tmp_path / "plain", plain)
    loaded = load_file(manifest["manifest"])
    assert all(same_bytes(loaded[k], v) for k, v in plain.items())


def test_a_truncated_file_is_refused_in_one_line(tmp_path):
    store, manifest, _ = save(tmp_path)
    path = store.directory / manifest["data"]
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CorruptSnapshot, match=rf"^snapshot file {path} is truncated \(\d+ of \d+ data bytes\); "
                                              "it was not loaded$"):
        store.load(manifest)


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_flipped_bit_is_refused_naming_the_variable(tmp_path, where):
    store, manifest, _ = save(tmp_path)
    path = store.directory / manifest["data"]
    raw = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]
    raw[start if where == "first" else -1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptSnapshot, match=r"does not match its checksum \(variable '.+'\); it was not loaded$"):
        store.load(manifest)


def test_a_header_that_disagrees_with_the_manifest_is_refused(tmp_path):
    store, manifest, _ = save(tmp_path)
    path = store.directory / manifest["data"]
    raw = path.read_bytes()
    edited = raw.replace(b'"shape": [3, 5]', b'"shape": [5, 3]', 1)     # same length, other shape
    assert edited != raw
    path.write_bytes(edited)
    with pytest.raises(CorruptSnapshot, match="has a header that disagrees with its manifest at 'd/kernel'"):
        store.load(manifest)
    path.write_bytes(b"\xff" * 8 + raw[8:])
    with pytest.raises(CorruptSnapshot, match="is truncated or not a safetensors file"):
        store.load(manifest)
    with pytest.raises(CorruptSnapshot):
        store.find("model", "f" * 32)                                  # found, and said to be unreadable


def test_signature_covers_the_manifest_in_the_metadata(tmp_path):
    signer = Signer(tmp_path / "key")
    store, manifest, _ = save(tmp_path, sign=signer.sign, extra={"history": {"loss": [0.5]}})
    found = store.find("model", "f" * 32)
    assert signer.verifies(found)
    path = store.directory / manifest["data"]
    path.write_bytes(path.read_bytes().replace(b'[0.5]', b'[0.4]', 1))  # a forged history, same length
    forged = store.find("model", "f" * 32)
    assert forged["extra"]["history"]["loss"] == [0.4] and not signer.verifies(forged)


def write_legacy(directory, values):
    """A snapshot as jupyter-repro 0.1 wrote it: NAME-FP.bin + NAME-FP.json."""
    directory.mkdir(parents=True)
    raw = b"".join(a.tobytes() for a in values.values())
    offsets = np.cumsum([0] + [a.nbytes for a in values.values()]).tolist()
    manifest = {"format": 1, "name": "model", "fingerprint": "e" * 32, "created": time.time(),
                "data": "model-eeeeeeeeeeeeeeee.bin", "nbytes": len(raw), "checksum": xxhash.xxh3_128_hexdigest(raw),
                "variables": [{"path": p, "shape": list(a.shape), "dtype": str(a.dtype), "offset": o}
                              for (p, a), o in zip(values.items(), offsets)], "extra": {}}
    (directory / manifest["data"]).write_bytes(raw)
    (directory / "model-eeeeeeeeeeeeeeee.json").write_text(json.dumps(manifest))


def test_the_old_format_is_still_read_and_verified(tmp_path):
    values = {"k": np.arange(6, dtype="float32").reshape(2, 3), "s": np.array([1, 2], "int64")}
    write_legacy(tmp_path / "snapshots", values)
    store = SnapshotStore(tmp_path)
    manifest = store.find("model", "e" * 32)
    assert store.saved("model") and manifest["format"] == 1
    assert all(same_bytes(a, b) for a, b in zip(store.load(manifest), values.values()))
    with pytest.raises(CorruptSnapshot, match="format of jupyter-repro 0.1 .* run %repro_snapshot again"):
        store.open(manifest)
    data = tmp_path / "snapshots" / manifest["data"]
    data.write_bytes(data.read_bytes()[:-1] + b"\x01")
    with pytest.raises(CorruptSnapshot, match="does not match its checksum"):
        store.verify(manifest)


def test_verifying_a_stored_snapshot_does_not_copy_it(tmp_path):
    big = {"w": np.random.default_rng(0).normal(size=(1024, 2048)).astype("float32")}  # 8 MiB
    store, manifest, _ = save(tmp_path, big)
    tracemalloc.start()
    try:
        store.verify(manifest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20                              # NumPy and Python allocations together


def test_a_mapped_file_stays_readable_after_it_is_removed(tmp_path):
    store, manifest, values = save(tmp_path)
    stored = TensorFile(manifest["manifest"]).verify()
    (store.directory / manifest["data"]).unlink()      # evicted by another kernel, say
    stored.check()
    assert same_bytes(stored.array(0), values["d/kernel"])


def test_fingerprints_tell_dtypes_of_the_same_width_apart():
    bits = np.arange(6, dtype=np.uint16)
    kinds = [bits, bits.view(np.float16), bits.view(ml_dtypes.bfloat16), bits.view(np.int16)]
    assert len({fingerprint_arrays([("0", a)]) for a in kinds}) == 4
    assert len({fingerprint_value(a) for a in kinds}) == 4
    byte = np.arange(6, dtype=np.uint8)
    floats8 = [byte.view(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.float8_e4m3fnuz)]
    assert len({fingerprint_arrays([("0", a)]) for a in floats8}) == 3


def test_fingerprints_of_numpy_dtypes_did_not_change():
    """Ledgers recorded before bfloat16 support still compare: NumPy's dtypes hash as before."""
    array = np.arange(6, dtype="float32").reshape(2, 3)
    before = xxhash.xxh3_128()
    before.update(f"0|{array.dtype.str}|{array.shape}\n".encode())
    before.update(array.tobytes())
    assert fingerprint_arrays([("0", array)]) == before.hexdigest()


@requires("torch")
def test_torch_bfloat16_and_float8_tensors_are_read_without_losing_a_bit():
    import torch
    from jupyter_repro.values.tensors import host_copy, host_view, to_torch

    for dtype, kind in ((torch.bfloat16, ml_dtypes.bfloat16), (torch.float8_e4m3fn, ml_dtypes.float8_e4m3fn)):
        tensor = torch.linspace(-3, 3, 11).to(dtype)
        view = host_view(tensor)
        assert view.dtype == kind and view.tobytes() == tensor.view(torch.uint8).numpy().tobytes()
        assert host_copy(tensor).tobytes() == view.tobytes()
        assert torch.equal(to_torch(view, tensor).view(torch.uint8), tensor.view(torch.uint8))
    assert fingerprint_value(torch.ones(3, dtype=torch.bfloat16)) != fingerprint_value(torch.ones(3, dtype=torch.float16))
