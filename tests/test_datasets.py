"""The CMAPSS loader on the real FD001 files, and the synthetic fleet."""
import hashlib

import pandas as pd
import pytest

from jupyter_repro.datasets import (COLUMNS, SENSORS, CMAPSSNotFound, load_cmapss, load_or_synthesize,
                                    synthetic_fleet)


def frame_hash(*frames):
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        digest.update(frame.to_numpy().tobytes())
    return digest.hexdigest()


def test_real_fd001_columns_and_rows(cmapss_dir):
    data = load_cmapss(cmapss_dir)
    assert list(data.train.columns) == COLUMNS == list(data.test.columns)
    assert (len(data.train), len(data.test), len(data.rul)) == (20_631, 13_096, 100)
    assert data.train.unit.nunique() == 100 and data.rul.rul.iloc[:2].tolist() == [112, 98]
    assert data.train.cycle.dtype.kind == "i" and not data.synthetic


def test_real_fd001_from_environment(cmapss_dir, monkeypatch):
    monkeypatch.setenv("CMAPSS_DIR", cmapss_dir)
    assert len(load_or_synthesize().train) == 20_631


def test_missing_files_are_listed_with_the_place_looked(tmp_path):
    (tmp_path / "train_FD001.txt").write_text("1 1 " + " ".join(["0"] * 24) + "\n")
    with pytest.raises(CMAPSSNotFound, match=f"missing test_FD001.txt, RUL_FD001.txt in {tmp_path}"):
        load_cmapss(tmp_path)


def test_no_directory_at_all(monkeypatch):
    monkeypatch.delenv("CMAPSS_DIR", raising=False)
    with pytest.raises(CMAPSSNotFound, match="no CMAPSS directory: pass one or set CMAPSS_DIR"):
        load_cmapss()


def test_named_directory_never_falls_back_to_synthetic(tmp_path, monkeypatch):
    monkeypatch.setenv("CMAPSS_DIR", str(tmp_path))
    with pytest.raises(CMAPSSNotFound, match="missing train_FD001.txt"):
        load_or_synthesize()
    monkeypatch.delenv("CMAPSS_DIR")
    assert load_or_synthesize().synthetic


def test_synthetic_fleet_schema_and_scale():
    fleet = synthetic_fleet(0)
    assert fleet.synthetic and "SYNTHETIC" in fleet.source and "SYNTHETIC" in repr(fleet)
    assert list(fleet.train.columns) == COLUMNS == list(fleet.test.columns)
    assert fleet.train.unit.nunique() == fleet.test.unit.nunique() == len(fleet.rul) == 100
    lives = fleet.train.groupby("unit").cycle.max()
    assert 128 <= lives.min() and lives.max() <= 362 and 15_000 < len(fleet.train) < 26_000
    assert (fleet.test.groupby("unit").cycle.max() > 30).all() and fleet.rul.rul.between(7, 145).all()
    flat = [f"sensor_{i}" for i in (1, 5, 6, 10, 16, 18, 19)]
    assert (fleet.train[flat].nunique() == 1).all()
    moving = [s for s in SENSORS if s not in flat]
    early = fleet.train[fleet.train.cycle <= 20][moving].mean()
    late = fleet.train[fleet.train.cycle >= fleet.train.unit.map(lives) - 5][moving].mean()
    assert ((late - early).abs() > fleet.train[moving].std() * 0.5).all()   # they degrade


def test_synthetic_fleet_is_deterministic_to_the_byte():
    first, again, other = synthetic_fleet(3), synthetic_fleet(3), synthetic_fleet(4)
    assert frame_hash(first.train, first.test, first.rul) == frame_hash(again.train, again.test, again.rul)
    assert frame_hash(first.train, first.test, first.rul) != frame_hash(other.train, other.test, other.rul)
