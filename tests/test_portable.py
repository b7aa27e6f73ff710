"""The portable mode's pins: set where they still take effect, reported too late where not
(in-process; the bits under emulated CPUs: test_emulated_cpus.py)."""
from types import SimpleNamespace

from jupyter_repro.seeding.frameworks import XLA_DETERMINISM
from jupyter_repro.kernelspec import kernel_spec
from jupyter_repro.seeding.portable import PINS, XLA_PINS, apply

AT_START = {"GLIBC_TUNABLES": PINS["GLIBC_TUNABLES"]}


def test_before_any_import_every_pin_is_set_but_glibcs_which_only_the_kernelspec_can():
    environ = {}
    report = apply(environ, initial={}, loaded={}, machine="x86_64")
    assert report.set == ["ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "OPENBLAS_CORETYPE",
                          "NPY_DISABLE_CPU_FEATURES"]
    assert environ == {name: PINS[name] for name in report.set}
    assert [name for name, _ in report.too_late] == ["GLIBC_TUNABLES"]
    assert "install-kernel --portable" in report.too_late[0][1] and not report.complete
    assert str(report).splitlines()[0] == ("portable mode (tensorflow backend, floor x86-64 with AVX (Intel Sandy "
                                           "Bridge, AMD Bulldozer or later)): INCOMPLETE")


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


def test_a_users_other_value_is_kept_and_said_and_other_machines_and_torch_are_not_claimed():
    report = apply({"ONEDNN_MAX_CPU_ISA": "AVX2"}, initial=AT_START, loaded={}, machine="x86_64")
    assert report.kept == [("ONEDNN_MAX_CPU_ISA", "AVX2")] and not report.complete
    arm = apply({}, initial={}, loaded={}, machine="aarch64")
    assert arm.set == [] and arm.not_covered == ["this machine is aarch64; the portable mode covers x86-64 only"]
    torch = apply({"KERAS_BACKEND": "torch", **PINS}, initial=dict(PINS), loaded={}, machine="x86_64")
    assert torch.not_covered[0].startswith("PyTorch: torch.sqrt (Adam uses it) goes through MKL") and not torch.complete
    assert str(torch).splitlines()[0] == "portable mode (torch backend, no floor: not covered): INCOMPLETE"
    assert str(torch).splitlines()[-1].startswith("not portable: PyTorch: ")


def test_on_jax_the_xla_pins_go_after_the_users_own_flags_before_jax_starts():
    environ = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false", **PINS}
    report = apply(environ, initial=dict(PINS), loaded={"numpy": 1}, machine="x86_64")
    assert environ["XLA_FLAGS"] == " ".join(("--xla_cpu_multi_thread_eigen=false",) + XLA_PINS)
    assert report.set == ["XLA_FLAGS --xla_cpu_max_isa", "XLA_FLAGS --xla_cpu_experimental_ynn_fusion_type",
                          "XLA_FLAGS --xla_cpu_enable_platform_dependent_math"] and report.complete
    assert str(report).splitlines()[0].startswith("portable mode (jax backend, floor x86-64 with AVX")
    again = apply(environ, initial=dict(PINS), loaded={"numpy": 1}, machine="x86_64")
    assert again.set == [] and environ["XLA_FLAGS"].count("--xla_cpu_max_isa") == 1 and again.complete


def test_on_jax_a_users_other_isa_is_kept_and_after_jax_started_the_pins_are_too_late():
    environ = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2", **PINS}
    report = apply(environ, initial=dict(PINS), loaded={}, machine="x86_64")
    assert report.kept == [("XLA_FLAGS --xla_cpu_max_isa", "AVX2")] and not report.complete
    assert "kept the value already set: XLA_FLAGS --xla_cpu_max_isa=AVX2 (the mode's: AVX)" in str(report)
    assert environ["XLA_FLAGS"].startswith("--xla_cpu_max_isa=AVX2 ")          # theirs stays, first
    started = {"jax._src.xla_bridge": SimpleNamespace(_backends={"cpu": object()})}
    environ = {"KERAS_BACKEND": "jax", **PINS}
    late = apply(environ, initial=dict(PINS), loaded=started, machine="x86_64")
    assert [name for name, _ in late.too_late] == ["XLA_FLAGS " + pin.split("=")[0] for pin in XLA_PINS]
    assert late.too_late[0][1].startswith("JAX already created its backend") and "XLA_FLAGS" not in environ


def test_the_jax_kernelspec_has_the_xla_pins_beside_determinism_and_the_tensorflow_one_has_none():
    jax = kernel_spec(42, "k", backend="jax", portable=True)["env"]
    assert jax["XLA_FLAGS"].split() == [XLA_DETERMINISM, *XLA_PINS] and jax["KERAS_BACKEND"] == "jax"
    assert kernel_spec(42, "k", portable=True)["env"]["XLA_FLAGS"] == XLA_DETERMINISM       # the twin
    assert kernel_spec(42, "k", backend="jax")["env"]["XLA_FLAGS"] == XLA_DETERMINISM


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
