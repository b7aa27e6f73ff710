"""The portable mode's pins: set where they still take effect, reported too late where not
(in-process; the bits under emulated CPUs: test_emulated_cpus.py)."""
from jupyter_repro.kernelspec import kernel_spec
from jupyter_repro.seeding.portable import PINS, apply

AT_START = {"GLIBC_TUNABLES": PINS["GLIBC_TUNABLES"]}


def test_before_any_import_every_pin_is_set_but_glibcs_which_only_the_kernelspec_can():
    environ = {}
    report = apply(environ, initial={}, loaded={}, machine="x86_64")
    assert report.set == ["ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "OPENBLAS_CORETYPE",
                          "NPY_DISABLE_CPU_FEATURES"]
    assert environ == {name: PINS[name] for name in report.set}
    assert [name for name, _ in report.too_late] == ["GLIBC_TUNABLES"]
    assert "install-kernel --portable" in report.too_late[0][1] and not report.complete
    assert str(report).splitlines()[0] == ("portable mode (x86-64 with AVX (Intel Sandy Bridge, AMD Bulldozer or "
                                           "later)): INCOMPLETE")


def test_from_the_kernelspec_every_pin_is_in_force():
    environ = dict(PINS)
    report = apply(environ, initial=dict(PINS), loaded={"numpy": 1, "tensorflow": 1}, machine="x86_64")
    assert report.complete and report.already == list(PINS) and report.set == []
    spec = kernel_spec(42, "k", portable=True)
    assert {name: spec["env"][name] for name in PINS} == PINS
    assert "--ReproMagics.portable=True" in spec["argv"]
    assert not set(PINS) & set(kernel_spec(42, "k")["env"])       # the twin: not portable, no pins


def test_after_numpy_and_tensorflow_are_imported_their_pins_are_too_late_not_set():
    environ = {}
    report = apply(environ, initial=AT_START, loaded={"numpy": 1, "tensorflow": 1}, machine="x86_64")
    assert [name for name, _ in report.too_late] == ["ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS",
                                                      "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"]
    assert report.too_late[0][1].startswith("tensorflow already imported") and environ == {}


def test_a_users_other_value_is_kept_and_said_and_other_machines_and_backends_are_not_claimed():
    report = apply({"ONEDNN_MAX_CPU_ISA": "AVX2"}, initial=AT_START, loaded={}, machine="x86_64")
    assert report.kept == [("ONEDNN_MAX_CPU_ISA", "AVX2")] and not report.complete
    arm = apply({}, initial={}, loaded={}, machine="aarch64")
    assert arm.set == [] and arm.not_covered == ["this machine is aarch64; the portable mode covers x86-64 only"]
    jax = apply({"KERAS_BACKEND": "jax"}, initial=AT_START, loaded={}, machine="x86_64")
    assert jax.not_covered[0].startswith("JAX: XLA's --xla_cpu_max_isa caps only") and not jax.complete


def test_session_and_repro_seed_report_what_came_too_late(ip, monkeypatch, capsys):
    import numpy  # noqa: F401  (loaded in this process: its pins are too late here)

    for name in PINS:
        monkeypatch.delenv(name, raising=False)
    from jupyter_repro import Session

    session = Session(portable=True, store=None)
    assert ("NPY_DISABLE_CPU_FEATURES" in dict(session.portable.too_late))
    ip.run_line_magic("load_ext", "jupyter_repro")
    out = ip.run_line_magic("repro_seed", "42 --portable")
    assert out.seed == 42
    printed = capsys.readouterr().out
    assert "INCOMPLETE" in printed and "too late: NPY_DISABLE_CPU_FEATURES: numpy already imported" in printed
