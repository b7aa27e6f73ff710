import os
import tempfile

import pytest

# Every IPython and kernel the tests start gets an empty profile dir, never ~/.ipython.
os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="repro-ipython-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from traitlets.config import Config  # noqa: E402


class TestingShell(InteractiveShell):
    """An in-process shell whose ``run_cell`` raises the cell's error (as in jupysql)."""

    def run_cell(self, raw_cell, store_history=False, silent=False, shell_futures=True, cell_id=None):
        result = super().run_cell(raw_cell, store_history, silent, shell_futures, cell_id)
        result.raise_error()
        return result


def make_shell(config=None):
    config = config or Config()
    config.HistoryManager.hist_file = ":memory:"
    return TestingShell(config=config)


@pytest.fixture
def ip():
    shell = make_shell()
    shell.run_line_magic("load_ext", "jupyter_repro")
    yield shell
    shell.run_line_magic("unload_ext", "jupyter_repro")
    TestingShell.clear_instance()
