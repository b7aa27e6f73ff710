"""NASA CMAPSS turbofan run-to-failure data (Saxena et al., PHM08), as DataFrames.

Each subset FD00N has three space-separated text files: ``train_FD00N.txt`` (engines
run to failure), ``test_FD00N.txt`` (engines cut off before failure) and
``RUL_FD00N.txt`` (the true remaining useful life of each test engine). The data
directory is an argument or ``CMAPSS_DIR``; files are never bundled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from ..errors import ReproError

SETTINGS = [f"setting_{i}" for i in range(1, 4)]
SENSORS = [f"sensor_{i}" for i in range(1, 22)]
COLUMNS = ["unit", "cycle", *SETTINGS, *SENSORS]


class CMAPSSNotFound(ReproError, FileNotFoundError):
    """Some CMAPSS files are missing; the message lists them and where it looked."""


@dataclass
class CMAPSS:
    """One subset: ``train``/``test`` rows with named columns, ``rul`` per test unit."""

    train: pd.DataFrame
    test: pd.DataFrame
    rul: pd.DataFrame
    source: str
    synthetic: bool = False

    def __repr__(self) -> str:
        return (f"CMAPSS({self.source}: train {len(self.train):,} rows / "
                f"{self.train.unit.nunique()} engines, test {len(self.test):,} rows / "
                f"{self.test.unit.nunique()} engines)")


def _read(path: Path, names) -> pd.DataFrame:
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=names, engine="c")
    if frame.shape[1] != len(names) or frame.isna().any().any():
        raise ReproError(f"{path} does not have the {len(names)} CMAPSS columns on every row")
    return frame


def load_cmapss(data_dir: Optional[os.PathLike] = None, subset: str = "FD001") -> CMAPSS:
    """Read ``train_/test_/RUL_<subset>.txt`` from ``data_dir`` (default ``$CMAPSS_DIR``)."""
    where = data_dir if data_dir is not None else os.environ.get("CMAPSS_DIR")
    if not where:
        raise CMAPSSNotFound(f"no CMAPSS directory: pass one or set CMAPSS_DIR "
                             f"(it must hold train_{subset}.txt, test_{subset}.txt, RUL_{subset}.txt)")
    folder = Path(where).expanduser()
    files = {kind: folder / f"{kind}_{subset}.txt" for kind in ("train", "test", "RUL")}
    missing = [path.name for path in files.values() if not path.is_file()]
    if missing:
        raise CMAPSSNotFound(f"missing {', '.join(missing)} in {folder.resolve()}")
    train, test = _read(files["train"], COLUMNS), _read(files["test"], COLUMNS)
    rul = _read(files["RUL"], ["rul"])
    rul.insert(0, "unit", range(1, len(rul) + 1))
    if len(rul) != test.unit.nunique():
        raise ReproError(f"{files['RUL']} has {len(rul)} rows for {test.unit.nunique()} test engines")
    return CMAPSS(train, test, rul, source=f"NASA CMAPSS {subset} from {folder}")
