"""Submit PyFlink jobs to the local standalone cluster and follow them over REST.

Submission goes through the wheel's `bin/flink run -py` (PyFlink 2.2's
JobClient.stop_with_savepoint is broken, so the CLI/REST is the one path for the whole job
lifecycle). The CLI's output goes to a log file under the stack's logs/jobs/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT
from streamfeat.stack.base import StackContext
from streamfeat.stack.errors import StackError
from streamfeat.stack.process import tail
from streamfeat.stack.services.flink import FlinkLayout

TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "CANCELED"})
_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


@dataclass(frozen=True)
class Submission:
    job_id: str
    log: Path


class FlinkClient:
    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.layout = FlinkLayout(ctx)
        self.rest = ctx.settings.flink_rest_url

    def run_python(
        self,
        script: Path,
        args: list[str],
        *,
        name: str,
        detached: bool = True,
        timeout_s: float = 600.0,
        savepoint: str | None = None,
        allow_non_restored_state: bool = False,
    ) -> Submission:
        """Submit ``script`` with ``args``; returns once the cluster accepted the job
        (``detached``) or once it ended (attached). ``savepoint``: restore its state (Kafka
        offsets, window state) first; ``allow_non_restored_state``: drop the state of
        operators the new job graph no longer has instead of refusing to start."""
        log = self.ctx.log_dir / "jobs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        python = str(self.ctx.python)
        argv = [
            "bash",
            str(self.layout.bin / "flink"),
            "run",
            *(["--detached"] if detached else []),
            *(["--fromSavepoint", savepoint] if savepoint else []),
            *(["--allowNonRestoredState"] if allow_non_restored_state else []),
            "-py",
            str(script),
            "-pyexec",
            python,
            "-pyclientexec",
            python,
            *args,
        ]
        env = {
            **os.environ,
            **self.layout.env(),
            "PATH": f"{self.ctx.venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        with open(log, "ab") as fh:
            fh.write(f"\n===== streamfeat: {' '.join(argv)}\n".encode())
            fh.flush()
            try:
                done = subprocess.run(
                    argv,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=PROJECT_ROOT,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise StackError(
                    f"job {name}",
                    f"`flink run` did not return in {timeout_s:.0f}s",
                    log=log,
                    fix="check `streamfeat status` and the Flink UI at " + self.rest,
                ) from None
        text = tail(log, 400)
        ids = _JOB_ID.findall(text)
        if done.returncode != 0 or not ids:
            cause = [ln.strip() for ln in text.splitlines() if "Caused by" in ln or "Error" in ln]
            raise StackError(
                f"job {name}",
                f"submission failed (exit {done.returncode}): "
                f"{cause[-1] if cause else 'no job id printed'}",
                log=log,
                fix="read the log; is the stack up (`streamfeat status`)?",
            )
        return Submission(ids[-1], log)

    def job(self, job_id: str) -> dict[str, object]:
        return self._get(f"/jobs/{job_id}")

    def wait_terminal(self, job_id: str, timeout_s: float) -> str:
        """Poll the job until FINISHED/FAILED/CANCELED; a StackError after the deadline."""
        deadline = time.monotonic() + timeout_s
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = str(self.job(job_id).get("state"))
            if state in TERMINAL_STATES:
                return state
            time.sleep(0.5)
        raise StackError(
            f"job {job_id}",
            f"still {state} after {timeout_s:.0f}s",
            fix=f"see {self.rest}/#/job/running/{job_id}",
        )

    def wait_state(self, job_id: str, wanted: str, timeout_s: float) -> None:
        """Poll until the job (and all its tasks) reach ``wanted``; fail early if it ends."""
        deadline = time.monotonic() + timeout_s
        state, behind = "UNKNOWN", ""
        while time.monotonic() < deadline:
            job = self.job(job_id)
            state = str(job.get("state"))
            vertices: list[dict[str, object]] = list(job.get("vertices") or [])  # type: ignore[call-overload]
            lagging = [v for v in vertices if v.get("status") != wanted]
            if state == wanted and not lagging:
                return
            behind = "; ".join(f"{str(v.get('name'))[:60]}: {v.get('status')}" for v in lagging)
            if state in TERMINAL_STATES:
                raise StackError(
                    f"job {job_id}",
                    f"ended {state}: {self.exceptions(job_id)}",
                    fix="read the TaskManager log (`streamfeat logs flink-taskmanager`)",
                )
            time.sleep(0.5)
        raise StackError(
            f"job {job_id}",
            f"not {wanted} after {timeout_s:.0f}s (is {state}"
            + (f"; tasks not {wanted}: {behind})" if behind else ")"),
            fix=f"see {self.rest}/#/job/running/{job_id}",
        )

    def cancel(self, job_id: str) -> None:
        req = urllib.request.Request(f"{self.rest}/jobs/{job_id}?mode=cancel", method="PATCH")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def end(self, job_id: str, timeout_s: float = 60.0) -> str:
        """End a job and keep no savepoint; returns its terminal state.

        Gracefully first: a stop with a throwaway savepoint (deleted after), whose final
        checkpoint commits what the sinks hold. A job that cannot take a savepoint
        (failing, restarting) is cancelled the hard way. Either is safe for the TaskManager
        while Python functions run in thread mode (the feature job's default); in process
        mode a hard cancel can end it (docs/operations.md, Stopping and cancelling)."""
        scratch = self.layout.root / "cancel-savepoints" / job_id
        try:
            self.stop_with_savepoint(job_id, timeout_s=timeout_s, target=scratch)
        except (StackError, OSError):
            self.cancel(job_id)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return self.wait_terminal(job_id, timeout_s=timeout_s)

    def stop_with_savepoint(
        self, job_id: str, timeout_s: float = 120.0, target: Path | None = None
    ) -> str:
        """Stop the job with a savepoint (REST ``/jobs/<id>/stop``: sources stop at one
        barrier, the final checkpoint commits every sink); returns the savepoint's location.
        The job ends FINISHED; on failure it keeps running and the error says why.
        ``target``: the folder for the savepoint (default: the stack's savepoints)."""
        body = {"targetDirectory": (target or self.layout.savepoints).as_uri(), "drain": False}
        trigger = self._post(f"/jobs/{job_id}/stop", body)
        return self._savepoint_result(job_id, str(trigger["request-id"]), timeout_s)

    def trigger_savepoint(self, job_id: str, timeout_s: float = 120.0) -> str:
        """A savepoint of the running job (it keeps running); returns its location."""
        body = {"target-directory": self.layout.savepoints.as_uri(), "cancel-job": False}
        trigger = self._post(f"/jobs/{job_id}/savepoints", body)
        return self._savepoint_result(job_id, str(trigger["request-id"]), timeout_s)

    def _savepoint_result(self, job_id: str, request: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            res = self._get(f"/jobs/{job_id}/savepoints/{request}")
            status: dict[str, Any] = res.get("status") or {}  # type: ignore[assignment]
            if status.get("id") == "COMPLETED":
                op: dict[str, Any] = res.get("operation") or {}  # type: ignore[assignment]
                if "location" in op:
                    return str(op["location"])
                cause = str((op.get("failure-cause") or {}).get("stack-trace", ""))
                raise StackError(
                    f"job {job_id}",
                    f"savepoint failed: {cause.splitlines()[0] if cause else '?'}",
                    fix="read `streamfeat logs flink-jobmanager`; the job keeps running",
                )
            time.sleep(0.5)
        raise StackError(
            f"job {job_id}",
            f"savepoint not complete after {timeout_s:.0f}s",
            fix=f"see {self.rest}/#/job/running/{job_id}/checkpoints",
        )

    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(
            self.rest + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # loopback
                result: dict[str, object] = json.loads(resp.read())
                return result
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise StackError(
                "flink", f"POST {path}: HTTP {exc.code} {detail}", fix="is the job running?"
            ) from None
        except OSError as exc:
            raise StackError(
                "flink", f"POST {path} failed: {exc}", fix="is the stack up? `streamfeat status`"
            ) from None

    def restarts(self, job_id: str) -> int:
        """How often the job restarted since it was submitted (Flink's ``numRestarts``)."""
        got: object = self._get(f"/jobs/{job_id}/metrics?get=numRestarts")
        found = (
            [m.get("value") for m in got if isinstance(m, dict)] if isinstance(got, list) else []
        )
        return int(found[0]) if found and found[0] is not None else 0

    def input_watermarks(self, job_id: str, vertex: str) -> list[int]:
        """Each subtask's input watermark (epoch ms) of the job's vertices whose name contains
        ``vertex``; an empty list when none has one yet."""
        vertices = self.job(job_id).get("vertices")
        out: list[int] = []
        for v in vertices if isinstance(vertices, list) else []:
            if vertex not in str(v.get("name", "")):
                continue
            got: object = self._get(f"/jobs/{job_id}/vertices/{v['id']}/watermarks")
            for m in got if isinstance(got, list) else []:
                value = m.get("value") if isinstance(m, dict) else None
                if value is not None and int(value) > -(2**62):  # Long.MIN_VALUE: none yet
                    out.append(int(value))
        return out

    def latest_checkpoint(self, job_id: str) -> dict[str, Any] | None:
        """The job's latest completed checkpoint as the REST API reports it (``id``,
        ``state_size`` = its full state, ``checkpointed_size`` = what it uploaded,
        ``end_to_end_duration``, ``latest_ack_timestamp``), or None before the first."""
        latest = self._get(f"/jobs/{job_id}/checkpoints").get("latest")
        done = latest.get("completed") if isinstance(latest, dict) else None
        return done if isinstance(done, dict) else None

    def taskmanager_metrics(self, *names: str) -> dict[str, dict[str, int]]:
        """TaskManager id -> metric name -> value, for each registered TaskManager (e.g.
        ``Status.JVM.Memory.Heap.Used``); a metric it does not report is left out."""
        tms = self._get("/taskmanagers").get("taskmanagers")
        out: dict[str, dict[str, int]] = {}
        for tm in tms if isinstance(tms, list) else []:
            got: object = self._get(f"/taskmanagers/{tm['id']}/metrics?get={','.join(names)}")
            out[str(tm["id"])] = {
                str(m["id"]): int(float(m["value"]))
                for m in (got if isinstance(got, list) else [])
                if isinstance(m, dict) and m.get("value") not in (None, "")
            }
        return out

    def quality_counts(self, job_id: str) -> dict[tuple[str, str], int]:
        """(source, verdict) -> records since the job started (the gates' ``dq_verdict``
        counters, summed over subtasks): verdict ``good`` or a DLQ reason."""
        out: dict[tuple[str, str], int] = {}
        vertices = self.job(job_id).get("vertices")
        for v in vertices if isinstance(vertices, list) else []:
            path = f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics"
            listed: object = self._get(path)
            names = [
                str(m["id"])
                for m in (listed if isinstance(listed, list) else [])
                if isinstance(m, dict) and ".streamfeat_dq." in str(m.get("id"))
            ]
            if not names:
                continue
            got: object = self._get(f"{path}?get={','.join(names)}&agg=sum")
            for m in got if isinstance(got, list) else []:
                if not isinstance(m, dict) or m.get("sum") is None:
                    continue
                source, verdict = str(m["id"]).split(".streamfeat_dq.", 1)[1].split(".", 1)
                out[(source, verdict)] = out.get((source, verdict), 0) + int(float(m["sum"]))
        return out

    def exceptions(self, job_id: str) -> str:
        data = self._get(f"/jobs/{job_id}/exceptions")
        root = data.get("root-exception") or ""
        return str(root).splitlines()[0] if root else ""

    def _get(self, path: str) -> dict[str, object]:
        try:
            with urllib.request.urlopen(self.rest + path, timeout=5) as resp:  # loopback
                return json.load(resp)  # type: ignore[no-any-return]
        except (urllib.error.URLError, OSError) as exc:
            raise StackError(
                "flink-jobmanager",
                f"REST {path} failed: {exc}",
                log=self.ctx.log_path("flink-jobmanager"),
                fix="streamfeat up flink-jobmanager",
            ) from exc
