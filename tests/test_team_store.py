"""A team's store (issue #27), in-process: two installations with their own keys share fits through
a real S3 server on 127.0.0.1 (moto) and through a shared folder, and replay each other's only
when trusted; every refused record trains with its reason; many writers leave whole records;
a store that goes away mid-run costs the sharing, never the result."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryptography", reason="cryptography is not installed (pip install 'jupyter-repro[team]')")
pytest.importorskip("fsspec", reason="fsspec is not installed (pip install 'jupyter-repro[team]')")

from team_store import (Installation, files_under, filesystem, folder_url, new_bucket, s3_options,  # noqa: E402
                        start_s3)

from jupyter_repro.errors import ReproError  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 4)).astype("float32")
Y = X.sum(1)
_INITIAL = []


def make_model():
    """The same initial weights in every installation (as a snapshot committed with the notebook)."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    if not _INITIAL:
        _INITIAL.extend(model.get_weights())
    model.set_weights(_INITIAL)
    model.compile(optimizer="adam", loss="mse")
    return model


def body_for(model, epochs):
    def body():
        return model.fit(X, Y, epochs=epochs, batch_size=16, verbose=0)
    return body


class Person:
    """An installation with its session and model."""

    def __init__(self, root, name, team, timeout=5.0):
        url, options = team
        self.installation = Installation(root, name, url, options, timeout)
        self.model = make_model()
        self.session = self.installation.session(self.model)

    def fit(self, epochs=2):
        return self.session.fit(self.model, body_for(self.model, epochs), cache=True)

    def trust(self, **others):
        self.installation.trust(**{name: person.installation for name, person in others.items()})


def weights_hash(model) -> str:
    """A hash of every variable's bytes (model and optimizer)."""
    import hashlib

    digest = hashlib.sha256()
    for variable in list(model.variables) + list(model.optimizer.variables):
        digest.update(np.ascontiguousarray(np.asarray(variable)).tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def s3():
    server, endpoint = start_s3()
    yield endpoint
    server.stop()


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def team(request, tmp_path):
    """(URL, fsspec options) of an empty team store: a shared folder, or a bucket on the S3 server."""
    if request.param == "folder":
        return folder_url(tmp_path / "shared-drive" / "repro"), {}
    endpoint = request.getfixturevalue("s3")
    return new_bucket(endpoint), s3_options(endpoint)


def test_two_installations_alternate_and_each_replays_the_others_only_when_trusted(team, tmp_path):
    alice, bob = Person(tmp_path, "alice", team), Person(tmp_path, "bob", team)
    first = alice.fit(2)
    assert first.verdict.status == "first" and any("shared with" in n for n in first.notes)
    # bob does not trust alice yet: he trains, and says why; same bits all the same (the fit is reproducible)
    untrusted = bob.fit(2)
    assert untrusted.verdict.status == "first"
    assert any("not in the trust file" in n for n in untrusted.notes), untrusted.notes
    assert untrusted.fingerprint == first.fingerprint
    alice.trust(bob=bob)
    bob.trust(alice=alice)
    by_bob = bob.fit(3)                      # bob first this time
    replayed = alice.fit(3)
    assert by_bob.verdict.status == "first" and replayed.verdict.status == "cached"
    assert "replayed — computed by bob on " in str(replayed.verdict)
    assert replayed.fingerprint == by_bob.fingerprint and weights_hash(alice.model) == weights_hash(bob.model)
    by_alice = alice.fit(4)                  # and alice first again
    back = bob.fit(4)
    assert "computed by alice" in str(back.verdict) and back.fingerprint == by_alice.fingerprint
    assert weights_hash(alice.model) == weights_hash(bob.model)
    history = bob.session.ledger.records()[-1]
    assert history["computed_by"]["computed_by"] == "alice" and "cached_from" not in history
    from jupyter_repro.run.ledger import history_frame

    assert list(history_frame(bob.session.ledger.records())["computed by"].fillna("")) == ["", "", "alice"]


def test_the_twin_without_a_replay_the_weights_are_the_models_own(team, tmp_path):
    """The identity above can fail: a model that did not train, or trained other inputs, has other bytes."""
    alice, bob = Person(tmp_path, "alice", team), Person(tmp_path, "bob", team)
    bob.trust(alice=alice)
    alice.fit(2)
    other = bob.fit(3)                       # other inputs: nothing to replay
    assert other.verdict.status == "first" and weights_hash(alice.model) != weights_hash(bob.model)


def _damage(kind, url, options):
    fs = filesystem(url, options)
    (blob,) = files_under(url, options, "blobs")
    (record,) = files_under(url, options, "records")
    if kind == "tampered blob":
        data = bytearray(fs.cat_file(blob))
        data[-1] ^= 1                        # one bit of the last weight
        fs.pipe_file(blob, bytes(data))
    elif kind == "tampered record":
        changed = dict(json.loads(fs.cat_file(record)), time="2020-01-01T00:00:00+00:00")
        fs.pipe_file(record, json.dumps(changed).encode())
    elif kind == "unsigned record":
        changed = {k: v for k, v in json.loads(fs.cat_file(record)).items() if k != "signature"}
        fs.pipe_file(record, json.dumps(changed).encode())
    elif kind == "missing blob":
        fs.rm(blob)


REASONS = {"tampered blob": "tampered with: blob .* holds other bytes", "tampered record": "signature does not verify",
           "unsigned record": "record is not signed", "missing blob": "incomplete: its state blob .* is missing",
           "untrusted key": "signed by a key not in the trust file"}


@pytest.mark.parametrize("kind", list(REASONS))
def test_a_refused_record_trains_with_its_reason(kind, team, tmp_path):
    alice, bob = Person(tmp_path, "alice", team), Person(tmp_path, "bob", team)
    if kind != "untrusted key":
        bob.trust(alice=alice)
    shared = alice.fit(2)
    _damage(kind, *team)
    report = bob.fit(2)
    assert report.verdict.status == "first", str(report.verdict)
    (line,) = [n for n in report.notes if n.startswith("cache: no stored result")]
    assert __import__("re").search(REASONS[kind], line), line
    assert report.fingerprint == shared.fingerprint   # trained, and reproducibly so


def test_a_result_from_another_arithmetic_trains_and_says_which(team, tmp_path, monkeypatch):
    from jupyter_repro.run import arithmetic

    alice, bob = Person(tmp_path, "alice", team), Person(tmp_path, "bob", team)
    bob.trust(alice=alice)
    real = arithmetic.facts
    monkeypatch.setattr(arithmetic, "facts", lambda: dict(real(), **{"onednn isa": "AVX512_CORE_TEST"}))
    alice.fit(2)
    monkeypatch.setattr(arithmetic, "facts", real)
    report = bob.fit(2)
    assert report.verdict.status == "first"
    assert any("computed by alice on another arithmetic: onednn isa AVX512_CORE_TEST → " in n
               for n in report.notes), report.notes


def test_two_trusted_records_that_disagree_are_reported_not_resolved(team, tmp_path):
    alice, bob, carol = (Person(tmp_path, name, team) for name in ("alice", "bob", "carol"))
    carol.trust(alice=alice, bob=bob)
    shared = alice.fit(2)
    state = next((alice.installation.folder / ".repro" / "states").glob("*.safetensors"))
    other_epochs = list(shared.epochs[:1]) + ["0" * 32] * (len(shared.epochs) - 1)
    note = bob.session.team_sharing().publish(str(state), shared.inputs.key, shared.inputs.parts, "f" * 32, other_epochs,
                                              {}, "bob@elsewhere")
    assert note.startswith("team store: shared")
    report = carol.fit(2)
    assert report.verdict.status == "first"
    assert any("alice and bob fitted the same inputs and disagree: result " in n and "first differs at epoch 2" in n
               for n in report.notes) or any("bob and alice fitted" in n for n in report.notes), report.notes


WRITER = r"""
import json, os, sys, time
from jupyter_repro.store.keys import Identity
from jupyter_repro.store.team import TeamStore
url, options, key_file, start = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], float(sys.argv[4])
identity, store = Identity(key_file), TeamStore(url, 20.0, options)
identity.public
blob = bytes(range(256)) * 4096                     # the same state, from every writer
time.sleep(max(0.0, start - time.time()))           # all at once
digest, _ = store.put_blob(blob)
record = {"format": "jupyter-repro team record 2", "input_key": "k" * 32, "team_key": "t" * 64, "class": {}, "class_id": "c" * 16,
          "result": "r" * 32, "blobs": [{"role": "state", "digest": digest, "size": len(blob)}],
          "by": f"writer {os.getpid()}", "time": "2026-12-07T00:00:00+00:00"}
print(store.put_record(identity.sign(record), "c" * 16))
"""


def test_eight_writers_of_one_key_at_once_leave_one_whole_record_each(team, tmp_path):
    from jupyter_repro.store import keys
    from jupyter_repro.store.team import TeamStore

    url, options = team
    start = time.time() + 4.0
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, json.dumps(options),
                                 str(tmp_path / f"key-{i % 2}"), str(start)],  # two installations, 4 kernels each
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(8)]
    outputs = [writer.communicate(timeout=120) for writer in writers]
    assert [writer.returncode for writer in writers] == [0] * 8, [err[-2000:] for _, err in outputs]
    store = TeamStore(url, 20.0, options)
    records = store.records("t" * 64)
    assert len(records) == 8 and sorted(name for name, _ in records) == sorted(out.strip() for out, _ in outputs)
    parsed = [json.loads(data) for _, data in records]
    assert all(keys.verifies(record) for record in parsed)
    assert len({record["signer"] for record in parsed}) == 2
    (blob,) = files_under(url, options, "blobs")
    assert store.get_blob(blob.rsplit("/", 1)[-1]) == bytes(range(256)) * 4096


@pytest.mark.s3
@pytest.mark.parametrize("how", ["unreachable", "read-only"])
def test_a_store_lost_mid_run_keeps_the_result_locally_and_says_what_was_not_shared(how, tmp_path, monkeypatch):
    from jupyter_repro.run.sharing import Sharing
    from jupyter_repro.store.team import TeamStore

    server, endpoint = start_s3()
    try:
        person = Person(tmp_path, "alice", (new_bucket(endpoint), s3_options(endpoint)), timeout=3.0)
        find = Sharing.find

        def then_lost(self, key, parts):  # the store answers the look-up, then goes away before the result is shared
            found = find(self, key, parts)
            if how == "unreachable":
                server.stop()
            else:
                monkeypatch.setattr(TeamStore, "_create", _refused)
            return found

        monkeypatch.setattr(Sharing, "find", then_lost)
        started = time.perf_counter()
        report = person.fit(2)
        took = time.perf_counter() - started
        print("fit with the store lost mid-run", took, report.seconds)
    finally:
        if how != "unreachable":
            server.stop()
    (line,) = [n for n in report.notes if "team store" in n and "not shared" in n]
    assert line.startswith("⚠ team store: the result is kept in .repro/ but was not shared (")
    assert ("cannot be reached" in line or "did not answer" in line) if how == "unreachable" else "the store refused: " in line
    assert report.run == 1 and took < 30
    monkeypatch.setattr(Sharing, "find", find)
    started = time.perf_counter()
    again = person.fit(2)                    # nothing lost: this installation's own cache replays it
    print("replayed locally", time.perf_counter() - started)
    assert again.verdict.status == "cached" and again.fingerprint == report.fingerprint


def _refused(self, path, data):
    raise PermissionError(13, "Access Denied", path)


@pytest.mark.s3
def test_an_unreachable_store_costs_a_bounded_moment_and_the_fit_trains(tmp_path):
    import socket

    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'jupyter-repro[s3]')")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    person = Person(tmp_path, "alice", ("s3://nowhere/repro", s3_options(endpoint)), timeout=1.0)
    report = person.fit(2)
    assert report.verdict.status == "first"
    notes = " ".join(report.notes)
    # refused at once, or (a loaded machine: the S3 client slow to start) not answered within the bound
    unreachable = r"s3://nowhere/repro (cannot be reached|did not answer within 1\.0 s)"
    assert re.search(f"team store not read: {unreachable}", notes), notes
    assert re.search(rf"was not shared \({unreachable}", notes), notes


def test_missing_packages_and_a_bad_trust_file_are_one_line_errors_that_change_nothing(tmp_path, monkeypatch, ip):
    from traitlets import TraitError

    from jupyter_repro.store.team import check

    person = Person(tmp_path, "alice", (folder_url(tmp_path / "drive"), {}))
    before = weights_hash(person.model)
    (person.installation.folder / "repro-trust.json").write_text("{not json")
    with pytest.raises(ReproError, match="trust file .* cannot be read"):
        person.fit(2)
    (person.installation.folder / "repro-trust.json").write_text('{"trusted": {"ci": "ed25519:nonsense"}}')
    with pytest.raises(ReproError, match="is not an ed25519 public key"):
        person.fit(2)
    assert weights_hash(person.model) == before and person.session.ledger.records() == []
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric", None)
        with pytest.raises(ReproError, match=r"pip install 'jupyter-repro\[team\]'"):
            check(folder_url(tmp_path / "drive"))
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.setitem(sys.modules, "s3fs.core", None)
    monkeypatch.setattr(sys.modules["fsspec.registry"], "registry", {})  # forget the s3 class other tests loaded
    with pytest.raises(ReproError, match=r"pip install 'jupyter-repro\[s3\]'"):
        check("s3://bucket/prefix")
    magics = ip.magics_manager.registry["ReproMagics"]
    with pytest.raises(TraitError, match=r"jupyter-repro\[s3\]"):
        magics.team_store = "s3://bucket/prefix"
    with pytest.raises(TraitError, match="is not a URL"):
        magics.team_store = "bucket/prefix"
    assert magics.team_store == ""


def test_a_store_url_as_the_store_keeps_repro_local(tmp_path):
    from jupyter_repro import Session

    session = Session(store="file:///mnt/team/repro")
    assert (session.store, session.team_store) == (".repro", "file:///mnt/team/repro")
    assert (Session(store=".repro").team_store, Session(store="").store) == ("", "")


def test_a_store_set_back_to_a_path_turns_the_urls_team_store_off_and_the_magics_mirror_it(tmp_path, ip):
    """store = URL shares through it; store = a path again ends that, and the magics' team_store
    trait says what the session does; the twin: a team store named as such stays."""
    from jupyter_repro import Session

    drive = folder_url(tmp_path / "drive")
    session = Session(store=str(tmp_path / "a"))
    session.store = drive
    assert session.team_store == drive
    session.store = str(tmp_path / "b")
    assert (session.store, session.team_store) == (str(tmp_path / "b"), "")
    named = Session(store=str(tmp_path / "a"), team_store=drive)
    named.store = str(tmp_path / "b")
    assert named.team_store == drive                          # named as the team store: kept
    magics = ip.magics_manager.registry["ReproMagics"]
    ip.run_line_magic("config", f"ReproMagics.store = {drive!r}")
    assert (magics.team_store, magics.session.team_store, magics.session.store) == (drive, drive, ".repro")
    ip.run_line_magic("config", f"ReproMagics.store = {str(tmp_path / 'c')!r}")
    assert (magics.team_store, magics.session.team_store) == ("", "")
    magics.team_store = drive
    ip.run_line_magic("config", f"ReproMagics.store = {str(tmp_path / 'd')!r}")
    assert (magics.team_store, magics.session.team_store) == (drive, drive)


def test_signatures_verify_only_unchanged_records_of_their_signer(tmp_path):
    from jupyter_repro.store.keys import Identity, verifies

    alice, mallory = Identity(tmp_path / "a"), Identity(tmp_path / "m")
    signed = alice.sign({"result": "r" * 32, "blobs": [{"digest": "d" * 64}]})
    assert verifies(signed) and signed["signer"] == alice.public
    assert not verifies(dict(signed, result="x" * 32))                      # an edited field
    assert not verifies(dict(signed, signer=mallory.public))                # another's name on it
    assert verifies(mallory.sign(dict(signed, result="x" * 32)))           # re-signed: valid, but mallory's
    assert Identity(tmp_path / "a").public == alice.public                  # the key is kept, not remade
    exported = tmp_path / "ci.key"
    exported.write_text(alice.export() + "\n")                             # a CI secret, as text
    exported.chmod(0o640)
    with pytest.raises(ReproError, match=r"can be read by others \(mode 640\).*chmod 600") as refused:
        Identity(exported).public                                           # a private key others may read
    assert len(str(refused.value).splitlines()) == 1
    exported.chmod(0o600)
    assert Identity(exported).public == alice.public


def test_trust_add_keeps_this_installations_own_key(tmp_path):
    from jupyter_repro.store.keys import Identity
    from jupyter_repro.store.trust import SELF, Trust

    own, ci = Identity(tmp_path / "own.key").public, Identity(tmp_path / "ci.key").public
    added = Trust.load(tmp_path / "repro-trust.json", own=own).add("ci", ci)
    assert added.name_of(ci) == "ci" and added.name_of(own) == SELF


def test_cli_key_show_export_and_trust(tmp_path, capsys, monkeypatch):
    from jupyter_repro.cli import main

    monkeypatch.setenv("JUPYTER_REPRO_KEY_FILE", str(tmp_path / "ci.key"))
    main(["key", "show"])
    public = capsys.readouterr().out.strip()
    assert public.startswith("ed25519:")
    main(["key", "export"])
    assert len(capsys.readouterr().out.strip()) == 44
    trust = tmp_path / "repro-trust.json"
    main(["trust", "ci", public, "--file", str(trust)])
    assert json.loads(trust.read_text()) == {"trusted": {"ci": public}}
    for bad in (["trust", "ci", "ed25519:AAAA", "--file", str(trust)], ["trust", "c i", public, "--file", str(trust)],
                ["key", "delete"]):
        with pytest.raises(SystemExit) as exit:
            main(bad)
        assert exit.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert json.loads(trust.read_text()) == {"trusted": {"ci": public}}    # refused: nothing changed


def test_mlflow_tags_and_check_name_who_computed_a_replay(tmp_path, monkeypatch):
    from jupyter_repro.run.check import _replays

    team = (folder_url(tmp_path / "drive"), {})
    ci, laptop = Person(tmp_path, "ci", team), Person(tmp_path, "laptop", team)
    laptop.trust(ci=ci)
    ci.fit(2)
    report = laptop.fit(2)
    assert report.verdict.summary == "replayed, computed by ci"
    record = laptop.session.ledger.records()[-1]
    assert _replays([[{"result": "x"}], [record]]) == [
        f"kernel 2: fit 1 replayed — computed by ci on {record['computed_by']['time'][:10]} (native)"]
    assert _replays([[{"result": "x"}]]) == []
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'jupyter-repro[mlflow]')")
    from jupyter_repro.tracking import MlflowTracker

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # as tests/test_tracking.py
    monkeypatch.chdir(tmp_path)
    tags = MlflowTracker()._tags(report)
    assert tags["repro.computed_by"] == "ci" and tags["repro.verdict"] == "replayed, computed by ci"
    assert "repro.computed_by" not in MlflowTracker()._tags(ci.fit(2))   # ci's own: replayed from its own cache


def test_a_damaged_local_copy_is_fetched_again_and_replaced(tmp_path):
    team = (folder_url(tmp_path / "drive"), {})
    alice, bob = Person(tmp_path, "alice", team), Person(tmp_path, "bob", team)
    bob.trust(alice=alice)
    shared = alice.fit(2)
    assert bob.fit(2).verdict.status == "cached"
    (copy,) = [p for p in (bob.installation.folder / ".repro" / "team" / "blobs").rglob("*") if p.is_file()]
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    again = bob.fit(2)
    assert again.verdict.status == "cached" and "computed by alice" in str(again.verdict)
    assert again.fingerprint == shared.fingerprint and copy.read_bytes() != bytes(data)


def test_a_store_this_installation_may_not_read_trains_and_says_so(tmp_path, monkeypatch):
    from jupyter_repro.store.team import TeamStore

    person = Person(tmp_path, "alice", (folder_url(tmp_path / "drive"), {}))
    monkeypatch.setattr(TeamStore, "_records", lambda self, folder: _refused(self, folder, b""))
    report = person.fit(2)
    assert report.verdict.status == "first" and report.run == 1
    assert any("team store not read: the store refused: [Errno 13] Access Denied" in n for n in report.notes), report.notes


def test_a_backend_without_create_only_writes_is_read_but_never_written(tmp_path, monkeypatch):
    """No overwriting write in its place: the result stays local, and the line says why."""
    from jupyter_repro.store import team as team_module

    monkeypatch.setattr(team_module, "_is_local", lambda fs: False)   # the folder as a backend with no mode="create"
    monkeypatch.setattr("fsspec.implementations.local.LocalFileSystem.pipe_file",
                        lambda self, path, value, **kwargs: (_ for _ in ()).throw(TypeError("unexpected mode")))
    person = Person(tmp_path, "alice", (folder_url(tmp_path / "drive"), {}))
    report = person.fit(2)
    assert report.verdict.status == "first"
    assert any("has no create-only write (fsspec's mode='create'), so nothing is shared" in n for n in report.notes)
    assert files_under(folder_url(tmp_path / "drive"), {}, "blobs") == []


def _check_of(fits_by_kernel, runs=2):
    from jupyter_repro.run.check import Cell, Check, KernelRun

    cell = Cell(4, "%%repro_fit model --cache\nmodel.fit(X, Y)")
    return Check(Path("fit.ipynb"), [cell], runs, "kernels",
                 kernels=[KernelRun(fits={4: list(fits)}) for fits in fits_by_kernel]), cell


def test_a_check_whose_kernels_both_replayed_is_not_verified(tmp_path):
    """Two replays compare a stored result with its copy: "not verified: replayed", never a pass;
    the twin: a replay against a kernel that trained the same result passes, and one that trained
    another fails (what used to pass by replaying ci's state in every kernel)."""
    team = (folder_url(tmp_path / "drive"), {})
    ci, laptop = Person(tmp_path, "ci", team), Person(tmp_path, "laptop", team)
    laptop.trust(ci=ci)
    trained = ci.fit(2)
    replay = laptop.fit(2)
    assert replay.verdict.status == "cached"
    by_ci, replayed = ci.session.ledger.records()[-1], laptop.session.ledger.records()[-1]
    check, cell = _check_of([[replayed], [replayed]])
    assert not check.outcome(cell).ok
    assert any("not verified: replayed" in p for p in check.outcome(cell).problems), check.outcome(cell).problems
    assert "✓" not in check.table().splitlines()[-1]
    own = dict(by_ci, cached_from=1)                          # each kernel's cache: its own earlier fit, compared
    check, cell = _check_of([[own], [own]])
    assert check.outcome(cell).ok, check.outcome(cell).problems
    check, cell = _check_of([[replayed], [by_ci]])            # kernel 2 trained: a real comparison
    assert check.outcome(cell).ok, check.outcome(cell).problems
    other = dict(by_ci, result="0" * 32)                      # kernel 2 trained other bits: the replay is caught
    check, cell = _check_of([[replayed], [other]])
    assert any("result differs" in p for p in check.outcome(cell).problems)
    assert trained.fingerprint == replay.fingerprint


def test_a_check_shares_only_what_its_kernels_agreed_on(tmp_path, monkeypatch):
    """A check's kernel holds its result back (team_publish off); ``share_agreed`` files it,
    signed, only when the kernels agree, and never a replay."""
    from jupyter_repro.run.check import share_agreed

    url = folder_url(tmp_path / "drive")
    ci = Person(tmp_path, "ci", (url, {}))
    ci.session.team_publish = False
    report = ci.fit(2)
    assert any("held until the check's kernels agree" in n for n in report.notes), report.notes
    assert files_under(url, {}, "records") == [] and files_under(url, {}, "blobs") == []
    held = ci.installation.folder / ".repro" / "team-held"
    monkeypatch.setenv("JUPYTER_REPRO_KEY_FILE", str(ci.installation.key_file))
    fit = ci.session.ledger.records()[-1]
    disagreeing, cell = _check_of([[fit], [dict(fit, result="0" * 32)]])
    assert share_agreed(disagreeing, held, url) == []
    assert files_under(url, {}, "records") == []              # the twin: nothing shared without agreement
    agreed, cell = _check_of([[fit], [dict(fit)]])
    (note,) = share_agreed(agreed, held, url)
    assert "shared with" in note, note
    (record,) = files_under(url, {}, "records")
    assert json.loads(filesystem(url, {}).cat_file(record))["signer"] == ci.installation.public
    laptop = Person(tmp_path, "laptop", (url, {}))
    laptop.trust(ci=ci)
    again = laptop.fit(2)
    assert again.verdict.status == "cached" and again.fingerprint == report.fingerprint


@pytest.mark.parametrize("refusal", ["409 EBUSY", "412 EINVAL", "412 FileExistsError"])
def test_a_create_another_writer_won_counts_as_there_not_as_a_store_down(refusal):
    """S3's answers to a conditional put that lost a race (409 ConditionalRequestConflict, 412
    PreconditionFailed, as s3fs raises them) mean "it is there": the store stays up; the twin: an
    I/O error is a store down."""
    import errno

    from fsspec.implementations.memory import MemoryFileSystem

    from jupyter_repro.store.team import StoreDown, TeamStore

    class Racing(MemoryFileSystem):
        """Another writer creates the same bytes just before ours; ours is refused as S3 refuses it."""

        raising = None

        def pipe_file(self, path, value, mode="overwrite", **kwargs):
            super().pipe_file(path, value, **kwargs)
            raise self.raising

    errors = {"409 EBUSY": OSError(errno.EBUSY, "ConditionalRequestConflict"),
              "412 EINVAL": OSError(errno.EINVAL, "PreconditionFailed"),
              "412 FileExistsError": FileExistsError(errno.EEXIST, "PreconditionFailed")}
    store = TeamStore(f"memory://race-{refusal.replace(' ', '-')}/repro")
    store.fs = Racing(skip_instance_cache=True)
    store.fs.raising = errors[refusal]
    digest, written = store.put_blob(b"state bytes")
    assert not written and store.down is None
    assert store.get_blob(digest) == b"state bytes"
    store.fs.raising = OSError(errno.EIO, "connection reset")
    with pytest.raises(StoreDown):
        store.put_blob(b"other bytes")
    assert "cannot be reached" in store.down


def test_the_trust_file_is_looked_for_up_to_the_repository_or_home_never_above(tmp_path, monkeypatch):
    """A repro-trust.json planted above the home folder or the repository's root is not used;
    outside both, none is found; the twin: one at the boundary is."""
    from jupyter_repro.store.trust import FILE, find

    planted = tmp_path / FILE
    planted.write_text(json.dumps({"trusted": {}}))
    home = tmp_path / "home" / "alice"
    notebooks = home / "work" / "notebooks"
    notebooks.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert find(notebooks) is None                            # tmp_path is above home
    (home / FILE).write_text(json.dumps({"trusted": {}}))
    assert find(notebooks) == home / FILE
    repository = tmp_path / "srv" / "repo"
    (repository / ".git").mkdir(parents=True)
    (repository / "nb").mkdir()
    assert find(repository / "nb") is None                     # tmp_path is above the repository's root
    (repository / FILE).write_text(json.dumps({"trusted": {}}))
    assert find(repository / "nb") == repository / FILE
    elsewhere = tmp_path / "shared" / "scratch"
    elsewhere.mkdir(parents=True)
    (elsewhere / FILE).write_text(json.dumps({"trusted": {}}))
    assert find(elsewhere) is None                             # under neither: only an explicit trust_file


def test_a_result_from_another_jupyter_repro_version_trains_and_says_so(tmp_path, monkeypatch):
    """The class holds jupyter_repro's version (and Python's, and the OS): a record another version
    wrote is not replayed, and the reason names the version; the twin: the same version replays."""
    from jupyter_repro.run import environment

    team = (folder_url(tmp_path / "drive"), {})
    alice, bob = Person(tmp_path, "alice", team), Person(tmp_path, "bob", team)
    bob.trust(alice=alice)
    real = environment.collect
    here = real()["jupyter_repro"]
    monkeypatch.setattr(environment, "collect", lambda: dict(real(), jupyter_repro="0.0.1-older"))
    alice.fit(2)
    monkeypatch.setattr(environment, "collect", real)
    report = bob.fit(2)
    assert report.verdict.status == "first"
    assert any(f"computed by alice on another environment: jupyter_repro 0.0.1-older → {here}" in n
               for n in report.notes), report.notes
    alice.fit(3)
    assert bob.fit(3).verdict.status == "cached"
    from jupyter_repro.run.bits_class import facts

    native = facts(real())
    assert {"jupyter_repro", "python", "platform"} <= set(native)
    assert {"jupyter_repro", "python", "platform"} <= set(facts(real(), portable_floor="x86-64 with AVX"))


def test_a_record_whose_xxh3_input_key_collides_is_not_replayed_for_other_inputs(tmp_path, monkeypatch):
    """The input key is XXH3, which someone choosing inputs can make collide; a team record is filed
    and checked under the SHA-256 of the inputs' parts too, so a collision replays nothing. Simulated:
    every input key made equal; bob's other inputs (3 epochs) train instead of replaying alice's 2."""
    from jupyter_repro.run import inputs

    monkeypatch.setattr(inputs, "input_key", lambda parts: "c0111de" * 4 + "0000")
    team = (folder_url(tmp_path / "drive"), {})
    alice, bob = Person(tmp_path, "alice", team), Person(tmp_path, "bob", team)
    bob.trust(alice=alice)
    two = alice.fit(2)
    three = bob.fit(3)
    assert three.inputs.key == two.inputs.key                   # the collision
    assert three.verdict.status == "first" and three.fingerprint != two.fingerprint
    records = [json.loads(filesystem(team[0], {}).cat_file(path)) for path in files_under(team[0], {}, "records")]
    assert len(records) == 2 and len({r["team_key"] for r in records}) == 2    # one folder per team key
    assert inputs.team_key(two.inputs.parts) in {r["team_key"] for r in records}
    assert bob.fit(2).verdict.status == "cached"                # the twin: the same inputs do replay
