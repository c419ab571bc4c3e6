"""Start, check and stop the local stack as plain processes on loopback.

Invariants:
- `up` is idempotent: a service already running and healthy is left alone.
- Every failure is a :class:`StackError` naming the service, its log and the fix; nothing
  waits without a deadline. A service that fails to turn healthy is stopped again.
- `down` only signals processes recorded by `up` (pid + start time), in reverse waves.
- A process that ended without `down` is "exited", never just "stopped": `status` and the
  next `up` say so, with the line of its log that says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psutil

from core.settings import StackSettings
from streamfeat.stack.base import Health, Service, StackContext, port_is_free
from streamfeat.stack.errors import StackError
from streamfeat.stack.process import (
    ProcessRecord,
    ProcessTable,
    exit_sign,
    port_owner,
    reap,
    spawn,
    tail,
    terminate,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # healthy | unhealthy | stopped | exited (ended without `down`)
    pid: int | None
    ports: dict[str, int]
    url: str
    log: str
    detail: str = ""


class Supervisor:
    def __init__(self, settings: StackSettings, services: Sequence[Service]) -> None:
        self.ctx = StackContext(settings)
        self.services = list(services)
        self.table = ProcessTable(self.ctx.run_dir)

    # ---- selection ----

    def select(self, names: Iterable[str] | None) -> list[Service]:
        if not names:
            return self.services
        known = {s.name: s for s in self.services}
        wanted = list(names)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise StackError(
                ", ".join(unknown), "unknown service", fix=f"choose from: {', '.join(known)}"
            )
        return [s for s in self.services if s.name in wanted]

    # ---- up ----

    def up(self, names: Iterable[str] | None = None, progress: Progress = print) -> None:
        chosen = self.select(names)
        for wave in sorted({s.wave for s in chosen}):
            self._start_wave([s for s in chosen if s.wave == wave], progress)

    def _start_wave(self, services: list[Service], progress: Progress) -> None:
        started: dict[str, float] = {}
        pending: list[Service] = []
        for svc in services:
            if (proc := self.table.alive(svc.name)) is not None:
                if not self._stuck(svc, proc):
                    pending.append(svc)  # running: confirm health below, start nothing
                    continue
                progress(f"  {svc.name} is running but unhealthy: replacing pid {proc.pid}")
                terminate(proc, svc.stop_signal, self.ctx.settings.stop_timeout_s)
                self.table.forget(svc.name)
            if (rec := self.table.exited(svc.name)) is not None:
                progress(f"  {svc.name} had exited: {self._exit_detail(svc.name, rec)}")
                self._reap(svc, rec, progress)
            if svc.needs_java:
                _ = self.ctx.java  # a missing Java is reported before anything starts
            self._check_ports(svc)
            svc.prepare(self.ctx)
            cmd = svc.command(self.ctx)
            popen = spawn(cmd, self.ctx.log_path(svc.name))
            self.table.remember(svc.name, popen, cmd.argv)
            started[svc.name] = time.monotonic()
            pending.append(svc)
            progress(f"  starting {svc.name:<18} pid {popen.pid}")
        try:
            self._await_healthy(pending, started, progress)
        except StackError:
            for name in started:
                proc = self.table.alive(name)
                if proc is not None:
                    terminate(proc, self.by_name(name).stop_signal, 10)
                self.table.forget(name)
            raise

    def _stuck(self, svc: Service, proc: psutil.Process) -> bool:
        """A running service that has had its whole health timeout to become healthy and
        is not (a TaskManager alive but no longer registered): `up` replaces it."""
        try:
            age = time.time() - proc.create_time()
        except psutil.Error:
            return False
        return age > self.ctx.settings.health_timeout_s and not _safe_check(svc, self.ctx).ok

    def _reap(self, svc: Service, rec: ProcessRecord, progress: Progress) -> None:
        n = reap(rec, self.ctx.settings.stop_timeout_s)
        if n:
            progress(f"  stopped {n} process(es) exited {svc.name} left running (group {rec.pid})")

    def _check_ports(self, svc: Service) -> None:
        host = self.ctx.settings.host
        for label, port in svc.ports(self.ctx).items():
            if not port_is_free(host, port):
                raise StackError(
                    svc.name,
                    f"port {port} ({label}) on {host} is taken by {port_owner(port)}",
                    log=self.ctx.log_path(svc.name),
                    fix=f"stop that process, or move this service with "
                    f"STREAMFEAT_PORTS__{label.upper()}=<free port>",
                )

    def _await_healthy(
        self, services: list[Service], started: dict[str, float], progress: Progress
    ) -> None:
        timeout = self.ctx.settings.health_timeout_s
        t0 = time.monotonic()
        deadline = t0 + timeout
        waiting = {s.name: s for s in services}
        last: dict[str, Health] = {}
        delay = 0.1
        while waiting:
            for name, svc in list(waiting.items()):
                if self.table.alive(name) is None:
                    log = self.ctx.log_path(name)
                    raise StackError(
                        name,
                        "exited while starting; last log lines:\n" + _indent(tail(log, 15)),
                        log=log,
                        fix=f"read the log, fix the cause, then `streamfeat up {name}`",
                    )
                health = _safe_check(svc, self.ctx)
                last[name] = health
                if health.ok:
                    svc.after_healthy(self.ctx)
                    took = time.monotonic() - started.get(name, t0)
                    verb = "healthy in" if name in started else "already running,"
                    progress(f"  {name:<27} {verb} {took:.1f}s")
                    del waiting[name]
            if not waiting:
                return
            if time.monotonic() > deadline:
                name = next(iter(waiting))
                raise StackError(
                    name,
                    f"not healthy after {timeout:.0f}s ({last[name].detail or 'no answer'})",
                    log=self.ctx.log_path(name),
                    fix="read the log; on a slow machine raise STREAMFEAT_HEALTH_TIMEOUT_S",
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    # ---- down ----

    def down(self, names: Iterable[str] | None = None, progress: Progress = print) -> None:
        chosen = self.select(names)
        for wave in sorted({s.wave for s in chosen}, reverse=True):
            for svc in [s for s in chosen if s.wave == wave]:
                proc = self.table.alive(svc.name)
                if proc is None:
                    if (rec := self.table.record(svc.name)) is not None:
                        self._reap(svc, rec, progress)
                    self.table.forget(svc.name)
                    continue
                polite = terminate(proc, svc.stop_signal, self.ctx.settings.stop_timeout_s)
                self.table.forget(svc.name)
                progress(
                    f"  stopped {svc.name:<18} pid {proc.pid}"
                    + ("" if polite else " (killed after timeout)")
                )

    # ---- status ----

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        out = []
        for svc in self.select(names):
            rec = self.table.record(svc.name)
            proc = self.table.alive(svc.name) if rec else None
            if proc is None and rec is not None:
                state, detail = "exited", self._exit_detail(svc.name, rec)
            elif proc is None:
                state, detail = "stopped", ""
            else:
                health = _safe_check(svc, self.ctx)
                state = "healthy" if health.ok else "unhealthy"
                detail = health.detail
            out.append(
                ServiceStatus(
                    name=svc.name,
                    state=state,
                    pid=proc.pid if proc else None,
                    ports=svc.ports(self.ctx),
                    url=svc.url(self.ctx),
                    log=str(self.ctx.log_path(svc.name)),
                    detail=detail,
                )
            )
        return out

    def deaths(self) -> dict[str, str]:
        """Services that ended without `down` (no health checks: cheap), with why."""
        recs = {svc.name: self.table.exited(svc.name) for svc in self.services}
        return {name: self._exit_detail(name, rec) for name, rec in recs.items() if rec}

    def _exit_detail(self, name: str, rec: ProcessRecord) -> str:
        log = self.ctx.log_path(name)
        sign = exit_sign(log) or "its log says nothing of why"
        return f"pid {rec.pid} ended without `down`: {sign} (log: {log})"

    def by_name(self, name: str) -> Service:
        return self.select([name])[0]


def _safe_check(svc: Service, ctx: StackContext) -> Health:
    try:
        return svc.check(ctx)
    except Exception as exc:  # a health probe must never crash the supervisor
        return Health(False, f"{type(exc).__name__}: {exc}")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
