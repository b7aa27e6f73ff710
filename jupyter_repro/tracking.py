"""Each reproducible fit as an MLflow run: its parameters, metrics per epoch, verdict.

``MlflowTracker`` is a ``Session`` listener. In a notebook ``%config ReproMagics.mlflow
= True`` adds it (or ``c.ReproMagics.mlflow = True`` in a profile); a script passes it::

    session = Session(seed=42, listeners=[MlflowTracker()])

Each fit becomes one run: parameters ``seed``, ``fit.epochs``, ``fit.batch_size``...
(each fit call's arguments other than data), ``compile.loss``..., ``optimizer`` and
``optimizer.learning_rate``...; every metric per epoch (step = epoch, from 0, as
MLflow's Keras callback logs them); tags ``repro.verdict`` ("identical to run 2", the
ledger's run numbers), ``repro.verdict.detail`` (the line under the cell),
``repro.input_key``, ``repro.result``, ``repro.snapshot``, ``repro.run``, ``repro.same_as``
(the MLflow run of the earlier run with the same inputs, when it was tracked) and
``repro.env.*`` (versions, devices, determinism flags). ``--trials`` gives one parent run
(seeds, and mean/std/min/max of each column) with one nested run per seed. A run the
user has open (``mlflow.start_run()``) becomes the parent of the fit's run.

Where runs go is MLflow's own choice: ``MLFLOW_TRACKING_URI``, else its default local
store; ``mlflow.set_experiment`` picks the experiment. Nothing here sets either.

``mlflow.keras.autolog()``: its patched ``Model.fit`` logs into the active run instead
of opening its own, and the fit's run is open while the cell runs, so a fit gives one
run, holding autolog's parameters, metrics and model with the tags above; metrics
autolog already logged are not logged again. With ``autolog(exclusive=True)`` autolog
stays out of the run and this logs everything.
"""
from __future__ import annotations

import re
import time
from typing import List, Optional

from .errors import ReproError

EXTRA = "pip install 'jupyter-repro[mlflow]'"


def require_mlflow():
    """The ``mlflow`` module, or ``ReproError`` naming the extra that installs it."""
    try:
        import mlflow
    except ImportError as error:
        raise ReproError(f"MLflow is not installed: {EXTRA}") from error
    return mlflow


class MlflowTracker:
    """Logs each run of a ``Session`` to MLflow (see the module docstring)."""

    def __init__(self):
        self.mlflow = require_mlflow()
        self._open: List[str] = []  # run ids this tracker started and has not ended, innermost last

    # -- Session events -----------------------------------------------------------
    def run_started(self, report) -> None:
        self._start(f"{report.model} (repro_fit)", {"repro.model": report.model, "repro.seed": str(report.seed)})

    def run_finished(self, report, error: Optional[BaseException]) -> None:
        run_id = self._open[-1]
        if error is not None:
            self._end(run_id, _failed(error))
            return
        from mlflow.exceptions import MlflowException

        try:
            self._log(run_id, report)
        except MlflowException as failure:  # the fit is done and in the ledger: say so, do not lose it
            report.notes.append(f"MLflow: run {run_id} not fully logged: {failure}")
        finally:
            self._end(run_id, "FINISHED")

    def trials_started(self, seeds) -> None:
        self._start(f"trials: seeds {', '.join(map(str, seeds))}", {"repro.trials": str(len(seeds))})
        self.mlflow.MlflowClient().log_param(self._open[-1], "seeds", ",".join(map(str, seeds)))

    def trials_finished(self, frame, error: Optional[BaseException]) -> None:
        run_id = self._open[-1]
        try:
            if error is None:
                from mlflow.entities import Metric

                now = _now()
                metrics = [Metric(_key(f"{column}.{stat}"), float(frame.loc[stat, column]), now, 0)
                           for column in frame.columns for stat in ("mean", "std", "min", "max")
                           if frame.loc[stat, column] == frame.loc[stat, column]]  # std of one trial is NaN
                self.mlflow.MlflowClient().log_batch(run_id, metrics=metrics)
        finally:
            self._end(run_id, "FINISHED" if error is None else _failed(error))

    # -- MLflow -------------------------------------------------------------------
    def _start(self, name: str, tags: dict) -> None:
        from mlflow.exceptions import MlflowException

        mlflow = self.mlflow
        try:
            # nested under the trials' parent, or under a run the user opened
            run = mlflow.start_run(run_name=name, nested=mlflow.active_run() is not None, tags=tags)
        except MlflowException as error:
            raise ReproError(f"MLflow could not start a run at {mlflow.get_tracking_uri()}: {error}; "
                             "nothing was run") from error
        self._open.append(run.info.run_id)

    def _end(self, run_id: str, status: str) -> None:
        self._open.remove(run_id)
        active = self.mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            self.mlflow.end_run(status)
        else:  # the cell ended it, or opened one of its own on top
            self.mlflow.MlflowClient().set_terminated(run_id, status)

    def _log(self, run_id: str, report) -> None:
        from mlflow.entities import Metric, Param, RunTag

        mlflow = self.mlflow
        client = mlflow.MlflowClient()
        mlflow.flush_async_logging()  # autolog's callback logs metrics asynchronously
        logged = client.get_run(run_id).data
        params = {"seed": report.seed, **report.parameters}
        now = _now()
        client.log_batch(
            run_id,
            metrics=[Metric(name, value, now, step) for name, values in report.history.items()
                     if name not in logged.metrics for step, value in enumerate(values)],
            params=[Param(_key(k), _text(v, 500)) for k, v in params.items() if _key(k) not in logged.params],
            tags=[RunTag(k, _text(v, 5000)) for k, v in self._tags(report).items()])

    def _tags(self, report) -> dict:
        from .run import environment  # 40 ms: this module loads with the extension when mlflow is configured

        verdict = report.verdict
        tags = {"repro.input_key": report.input_key, "repro.result": report.fingerprint,
                "repro.snapshot": report.snapshot_fingerprint, "repro.snapshot.name": report.snapshot,
                "repro.verdict": verdict.summary if verdict else "not recorded (no store)",
                "mlflow.runName": f"{report.model} #{report.run}" if report.run else f"{report.model}"}
        if verdict is not None:
            tags.update({"repro.verdict.detail": str(verdict), "repro.run": str(report.run),
                         "repro.record": verdict.record["id"]})
            earlier = verdict.earlier.get("id") if verdict.status in ("identical", "differs", "cached") else None
            same_as = self._tracked(earlier) if earlier else None
            if same_as:
                tags["repro.same_as"] = same_as
            if verdict.record.get("computed_by"):  # replayed from the team store
                tags["repro.computed_by"] = str(verdict.record["computed_by"].get("computed_by"))
        if report.notes:
            tags["repro.notes"] = "\n".join(report.notes)
        env = verdict.record.get("env") if verdict is not None else environment.collect()
        tags.update((f"repro.env.{_key(k)}", str(v)) for k, v in (env or {}).items())
        return tags

    def _tracked(self, record_id: str) -> Optional[str]:
        """The MLflow run that logged the ledger record ``record_id``, if one did."""
        runs = self.mlflow.search_runs(search_all_experiments=True, output_format="list", max_results=1,
                                       filter_string=f"tags.`repro.record` = '{record_id}'")
        return runs[0].info.run_id if runs else None


def _failed(error: BaseException) -> str:
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


def _now() -> int:
    return int(time.time() * 1000)


def _key(name: str) -> str:
    """A name MLflow accepts as a key (letters, digits, _ - . space / :)."""
    return re.sub(r"[^\w\-. /:]", "_", str(name))


def _text(value, limit: int) -> str:
    """A parameter or tag value as readable text: plain values as they are, a schedule
    or a loss object by its class and configuration."""
    if not isinstance(value, (str, int, float, bool, type(None), list, tuple, dict)):
        config = getattr(value, "get_config", None)
        name = getattr(value, "__name__", None) or type(value).__name__
        try:
            value = f"{name}({config()})" if callable(config) and not isinstance(value, type) else name
        except (TypeError, NotImplementedError):  # a get_config that needs arguments or is not there
            value = name
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
