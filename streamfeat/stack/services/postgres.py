"""PostgreSQL: its own cluster directory, wal_level=logical, a replication-capable user."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from streamfeat.stack.base import Command, Health, Service, StackContext
from streamfeat.stack.errors import StackError

PG_FIX = "apt-get install -y postgresql (or run `make install`)"


def pg_bindir() -> Path:
    """The newest PostgreSQL server installed from Debian (/usr/lib/postgresql/N/bin)."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*/bin/postgres")),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise StackError("postgres", "PostgreSQL server binaries not found", fix=PG_FIX)


def _reachable_by(user: str, folder: Path) -> bool:
    """Can OS ``user`` enter ``folder`` (every ancestor traversable)?"""
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={user}",
            f"--regid={user}",
            "--init-groups",
            "--",
            "test",
            "-x",
            str(folder),
        ],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return done.returncode == 0


class Postgres(Service):
    name = "postgres"
    wave = 0
    stop_signal = signal.SIGINT  # "fast" shutdown: abort sessions, checkpoint, exit

    def ports(self, ctx: StackContext) -> dict[str, int]:
        return {"postgres": ctx.settings.ports.postgres}

    def url(self, ctx: StackContext) -> str:
        s = ctx.settings
        return f"postgresql://{s.postgres.user}@{s.host}:{s.ports.postgres}/{s.postgres.database}"

    def _os_user(self, ctx: StackContext) -> str | None:
        """PostgreSQL refuses to run as root: run as the configured OS account then."""
        if os.geteuid() != 0:
            return None
        name = ctx.settings.postgres.os_user
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise StackError(
                self.name, f"OS user {name!r} (to run PostgreSQL as) not found", fix=PG_FIX
            ) from None
        return name

    def _home_for(self, ctx: StackContext, user: str | None) -> Path:
        """The folder holding the cluster: under the stack home when the server's OS user can
        reach it; otherwise (a checkout inside a private home folder, as root) a folder under
        /var/lib/postgresql, linked from the stack home so `status` and backups find it."""
        home = ctx.data_dir("postgres")
        if user is None or _reachable_by(user, home.parent):
            return home
        digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:12]
        outside = Path(pwd.getpwnam(user).pw_dir) / "streamfeat" / digest
        outside.mkdir(parents=True, exist_ok=True)
        link = home / "cluster"
        if not link.is_symlink():
            link.symlink_to(outside)
        return outside

    def prepare(self, ctx: StackContext) -> None:
        user = self._os_user(ctx)
        home = self._home_for(ctx, user)
        data, socket_dir = home / "data", home / "socket"
        socket_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (home, socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
                path.chmod(0o700)
        if (data / "PG_VERSION").exists():
            return
        pwfile = home / ".pwfile"
        pwfile.write_text(ctx.settings.postgres.superuser_password.get_secret_value() + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        argv = [
            str(pg_bindir() / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            log = ctx.log_path(self.name)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(done.stdout + done.stderr)
            shutil.rmtree(data, ignore_errors=True)
            raise StackError(self.name, "initdb failed", log=log, fix="read the log")

    def command(self, ctx: StackContext) -> Command:
        s = ctx.settings
        user = self._os_user(ctx)
        home = self._home_for(ctx, user)
        data, socket_dir = home / "data", home / "socket"
        settings = {
            "listen_addresses": s.host,
            "port": s.ports.postgres,
            "unix_socket_directories": socket_dir,
            "wal_level": "logical",
            # commit times of rows: the demo CRM export is generated around them
            "track_commit_timestamp": "on",
            "max_wal_senders": 16,
            "max_replication_slots": 16,
            "max_connections": 200,
            "shared_buffers": "256MB",
            "log_destination": "stderr",
            "logging_collector": "off",
        }
        argv = [str(pg_bindir() / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return Command(argv, user=user)

    def check(self, ctx: StackContext) -> Health:
        import psycopg

        with psycopg.connect(ctx.settings.postgres_dsn(superuser=True)) as conn:
            level = conn.execute("SHOW wal_level").fetchone()
        return Health(True, f"wal_level={level[0] if level else '?'}")

    def after_healthy(self, ctx: StackContext) -> None:
        """Create (or re-password) the platform's user, with REPLICATION, and its database."""
        import psycopg
        from psycopg import sql

        pg = ctx.settings.postgres
        with psycopg.connect(ctx.settings.postgres_dsn(superuser=True), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.user,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                    sql.Identifier(pg.user), sql.Literal(pg.password.get_secret_value())
                )
            )
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (pg.database,)
            ).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(pg.database), sql.Identifier(pg.user)
                    )
                )
