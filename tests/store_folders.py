"""Folders a store cannot write to, for the tests of a store's limits.

A read-only folder: ``chmod`` for a normal user; root writes through any mode, so as
root the folder is a small tmpfs remounted read-only (skipped where mounting is not
allowed). A full disk: a tiny tmpfs (root only, else skipped).
"""
import contextlib
import os
import subprocess

import pytest


def files_under(folder, contents: bool = False):
    """Every file below ``folder``: sorted paths, or ``{path: bytes}``."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if contents:
                with open(path, "rb") as handle:
                    found[path] = handle.read()
            else:
                found[path] = None
    return found if contents else sorted(found)


def _mount(folder, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def _unmount(folder) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def read_only_folder(tmp_path):
    """(folder, make_read_only): a writable folder, and the call that makes it read-only."""
    folder = tmp_path / "store"
    folder.mkdir()
    if os.geteuid() == 0:
        _mount(folder, "size=4m")

        def make_read_only():
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        def make_read_only():
            for root, directories, names in os.walk(folder):
                for name in directories + names:
                    os.chmod(os.path.join(root, name), 0o555)
            os.chmod(folder, 0o555)
    yield str(folder), make_read_only
    if os.geteuid() == 0:
        _unmount(folder)
    else:
        for root, directories, _ in os.walk(folder):
            for name in directories:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o755)
        os.chmod(folder, 0o755)


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 256 KiB filesystem (a tmpfs), for writes that run out of space."""
    folder = tmp_path / "disk"
    folder.mkdir()
    _mount(folder, "size=256k")
    yield str(folder)
    _unmount(folder)


def stored_files(folder):
    """``files_under(folder)`` less the ``.used`` markers a fit leaves beside a snapshot in use."""
    return [path for path in files_under(folder) if not path.endswith(".used")]
