"""Seeding core: seeds, cell seeds, PYTHONHASHSEED detection, the import hook."""
import os
import subprocess
import sys
import textwrap

import pytest

from jupyter_repro import SeedError, cell_seed
from jupyter_repro.seeding.import_hook import ImportHook
from jupyter_repro.seeding.seeder import validate_seed
from kernel import requires


def python(code, **env):
    """Run ``code`` in a fresh interpreter; its stdout."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    environ.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environ,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "42", True, None])
def test_validate_seed_refuses(bad):
    with pytest.raises(SeedError, match="seed must be"):
        validate_seed(bad)


def test_cell_seed_depends_on_text_and_seed_only():
    assert cell_seed(42, "x = 1") == cell_seed(42, "\nx = 1  \n")
    assert len({cell_seed(42, "x = 1"), cell_seed(42, "x = 2"), cell_seed(43, "x = 1")}) == 3
    assert 0 <= cell_seed(2**32 - 1, "a" * 10_000) < 2**31


def test_hash_seed_detected_from_process_start():
    assert python("from jupyter_repro import hash_seed_at_start as h; print(h())") == ["None"]
    assert python("from jupyter_repro import hash_seed_at_start as h; print(h())", PYTHONHASHSEED="123") == ["123"]
    assert python("from jupyter_repro import hash_seed_at_start as h; print(h())", PYTHONHASHSEED="0") == ["0"]
    # Setting the variable inside a running process fixes nothing, and is not believed.
    assert python("""
        import os; os.environ['PYTHONHASHSEED'] = '5'
        from jupyter_repro import hash_seed_at_start as h; print(h())""") == ["None"]


@pytest.mark.parametrize("at_start, expected", [("123", "123"), (None, "None")])
def test_hash_seed_without_proc_is_read_as_the_package_first_saw_it(at_start, expected):
    """macOS and Windows have no /proc/self/environ: the environment when jupyter_repro was
    imported stands in, so a variable set later in the process is still not believed."""
    assert python("""
        import os
        import jupyter_repro.seeding.seeder as seeding
        seeding._PROC_ENVIRON = os.path.join(os.sep, "no", "proc", "here")
        os.environ['PYTHONHASHSEED'] = '5'
        print(seeding.hash_seed_at_start())""", **({"PYTHONHASHSEED": at_start} if at_start else {})) == [expected]


def test_seeding_before_import_does_not_import_tensorflow_and_seeds_it_on_import():
    lines = python("""
        import sys
        from jupyter_repro import seed_everything
        report = seed_everything(1234)
        print('tensorflow' in sys.modules, 'keras' in sys.modules, report.frameworks['tensorflow'])
        import keras, tensorflow as tf
        from tensorflow.python.framework import config
        print(config.is_op_determinism_enabled())
        print(tf.random.uniform([4]).numpy().tolist())
        print(keras.random.uniform([3]).numpy().tolist())
        print(type(sys.modules['tensorflow'].__loader__).__name__)
    """)
    expected = python("""
        import keras, tensorflow as tf
        keras.utils.set_random_seed(1234)
        print(tf.random.uniform([4]).numpy().tolist())
        print(keras.random.uniform([3]).numpy().tolist())
    """)
    assert lines[0] == "False False armed: seeded the moment it is imported"
    assert lines[1] == "True"
    assert lines[2:4] == expected
    assert lines[4] != "_NotifyingLoader"   # the real loader is back on the module


def test_import_hook_fires_once_after_module_body(tmp_path, monkeypatch):
    (tmp_path / "repro_fake_mod.py").write_text("VALUE = 41\nVALUE += 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    hook = ImportHook({"repro_fake_mod": lambda module: seen.append(module.VALUE)}).install()
    try:
        import repro_fake_mod  # noqa: F401
        import repro_fake_mod  # noqa: F401,F811
    finally:
        hook.remove()
        sys.modules.pop("repro_fake_mod", None)
    assert seen == [42]
    assert hook not in sys.meta_path


def test_loading_and_seeding_import_neither_numpy_nor_tensorflow():
    lines = python("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jupyter_repro")
        shell.run_line_magic("repro_seed", "42")
        print(sorted(m for m in ("numpy", "pandas", "tensorflow", "keras") if m in sys.modules))
        first = shell.run_cell("import numpy as np\\nnp.random.rand()").result
        again = shell.run_cell("import numpy as np\\nnp.random.rand()").result
        print(first == again)
    """)
    assert lines[0] == "[]" and lines[-1] == "True"   # seeded at import, and reseeded identically per cell


@requires("jax")
def test_too_late_for_xla_flags_is_said_not_hidden():
    lines = python("""
        import jax
        jax.devices()                                  # JAX has created its backend
        from jupyter_repro import seed_everything
        print(seed_everything(1).frameworks["jax"])
    """, XLA_FLAGS="", KERAS_BACKEND="jax")
    assert lines[-1].startswith("⚠ XLA_FLAGS lacks --xla_gpu_deterministic_ops=true and JAX is already "
                                "initialised, so it cannot take effect: restart the kernel")
    early = python("""
        import os
        from jupyter_repro import seed_everything
        report = seed_everything(1)
        import jax
        jax.devices()
        print(os.environ["XLA_FLAGS"], "|", report.frameworks["XLA_FLAGS"])
    """, XLA_FLAGS="", KERAS_BACKEND="jax")
    assert early[-1] == ("--xla_gpu_deterministic_ops=true | --xla_gpu_deterministic_ops=true added "
                         "(JAX not initialised yet)")


def test_repro_seed_sets_the_seed_it_is_given_and_turns_determinism_off_and_on(ip):
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    magics = ip.magics_manager.registry["ReproMagics"]
    ip.run_cell("%repro_seed 42")
    report = ip.run_cell("%repro_seed 5 --no-deterministic").result
    assert report.seed == magics.seed == magics.seeder.seed == 5 and not magics.deterministic
    assert not tf_config.is_op_determinism_enabled()
    assert report.frameworks["tensorflow"] == "seeded; op determinism off"
    assert int(tf.random.uniform((), maxval=2**30, dtype=tf.int32, seed=1)) == int(
        (tf.random.set_seed(5), tf.random.uniform((), maxval=2**30, dtype=tf.int32, seed=1))[1])  # seed 5 took
    ip.run_cell("%repro_seed 5")
    assert magics.deterministic and tf_config.is_op_determinism_enabled()
    ip.run_cell("%config ReproMagics.deterministic = False")
    assert magics.seeder.seed == 5 and not tf_config.is_op_determinism_enabled()
    ip.run_cell("%config ReproMagics.deterministic = True")
    assert tf_config.is_op_determinism_enabled()


@requires("torch")
def test_repro_seed_turns_torch_determinism_off_and_on(ip):
    import torch

    ip.run_cell("%repro_seed 5 --no-deterministic")
    assert not torch.are_deterministic_algorithms_enabled()
    ip.run_cell("%repro_seed 5")
    assert torch.are_deterministic_algorithms_enabled()
    ip.run_cell("%config ReproMagics.deterministic = False")
    assert not torch.are_deterministic_algorithms_enabled()
    ip.run_cell("%config ReproMagics.deterministic = True")
    assert torch.are_deterministic_algorithms_enabled()


def test_cell_seed_ignores_comments_and_layout():
    assert cell_seed(42, "x = f( 1 )  # note\n\n") == cell_seed(42, "x=f(1)")
    assert cell_seed(42, "x = f(1)") != cell_seed(42, "x = f(2)")
