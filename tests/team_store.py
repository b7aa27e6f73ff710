"""What the team-store tests share: an S3 server on 127.0.0.1 (moto's server mode, as s3fs's own
tests use), a store per test on it or in a shared folder, and an "installation": a local store,
an HMAC key, an ed25519 key and a trust file of its own, as on another person's machine."""
import json
import os
import uuid
from pathlib import Path

import pytest

S3_OPTIONS = {"key": "testing", "secret": "testing"}


def start_s3():
    """A moto S3 server on a free loopback port; (server, endpoint URL). Skips without moto/s3fs."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'jupyter-repro[s3]')")
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed (CI's tier 2 installs it)")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def s3_options(endpoint: str) -> dict:
    return dict(S3_OPTIONS, client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})


def new_bucket(endpoint: str) -> str:
    """A fresh bucket on the server; its s3:// URL with a prefix."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options(endpoint))
    name = f"team-{uuid.uuid4().hex[:12]}"
    fs.call_s3("create_bucket", Bucket=name)
    return f"s3://{name}/repro"


class Installation:
    """One person's (or CI's) jupyter-repro: a folder with its .repro, keys and trust file."""

    def __init__(self, root: Path, name: str, url: str, options: dict, timeout: float = 5.0):
        self.folder = root / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name, self.url, self.options, self.timeout = name, url, options, timeout
        self.key_file = self.folder / "ed25519.key"

    @property
    def public(self) -> str:
        from jupyter_repro.store.keys import Identity

        return Identity(self.key_file).public

    def trust(self, **named: "Installation") -> None:
        path = self.folder / "repro-trust.json"
        keys = json.loads(path.read_text())["trusted"] if path.exists() else {}
        keys.update({name: other.public for name, other in named.items()})
        path.write_text(json.dumps({"trusted": keys}))

    def session(self, model):
        from jupyter_repro import Session
        from jupyter_repro.store.signing import Signer

        session = Session(seed=42, store=str(self.folder / ".repro"), team_store=self.url,
                          key_file=str(self.key_file), signer=Signer(self.folder / "hmac.key"),
                          trust_file=str(self.folder / "repro-trust.json"), team_timeout=self.timeout,
                          team_options=self.options)
        session.snapshot(model, "model")
        return session


def files_under(url: str, options: dict, part: str):
    """Every file under ``part`` (blobs, records) of the store at ``url``."""
    import fsspec.core

    fs, root = fsspec.core.url_to_fs(url, **options)
    fs.invalidate_cache()
    try:
        return sorted(fs.find(f"{root}/{part}"))
    except FileNotFoundError:
        return []


def filesystem(url: str, options: dict):
    import fsspec.core

    return fsspec.core.url_to_fs(url, **options)[0]


def folder_url(path: Path) -> str:
    os.makedirs(path, exist_ok=True)
    return f"file://{path}"
