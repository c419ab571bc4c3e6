"""Register connectors through the Connect REST API, idempotently, and wait until running.

``PUT /connectors/<name>/config`` creates or updates; an unchanged config is a no-op.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import StackSettings

if TYPE_CHECKING:
    from core.lineage import LineageEmitter, LineageSpec

CONFIG_DIR = Path(__file__).parent
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


@dataclass(frozen=True)
class ConnectorState:
    name: str
    connector: str
    tasks: tuple[str, ...]
    trace: str = ""

    @property
    def running(self) -> bool:
        return (
            self.connector == "RUNNING"
            and bool(self.tasks)
            and all(t == "RUNNING" for t in self.tasks)
        )


def connector_files() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.json"))


def load_connector(path: Path, values: dict[str, str]) -> dict[str, Any]:
    """The connector file with every ``${NAME}`` replaced; unknown names are an error."""
    text = path.read_text()
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if unknown:
        raise ValueError(f"{path.name}: no value for {', '.join(unknown)}")
    filled = _PLACEHOLDER.sub(lambda m: values[m.group(1)].replace('"', '\\"'), text)
    data: dict[str, Any] = json.loads(filled)
    return data


def local_values(settings: StackSettings) -> dict[str, str]:
    pg = settings.postgres
    return {
        "PG_HOST": settings.host,
        "PG_PORT": str(settings.ports.postgres),
        "PG_USER": pg.user,
        "PG_PASSWORD": pg.password.get_secret_value(),
        "PG_DATABASE": pg.database,
    }


class ConnectClient:
    def __init__(self, settings: StackSettings) -> None:
        self.url = settings.connect_url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(f"connect: {method} {path} -> {exc.code}: {detail}") from exc
        return json.loads(raw) if raw else None

    def put_config(self, name: str, config: dict[str, str]) -> None:
        self._call("PUT", f"/connectors/{name}/config", config)

    def config(self, name: str) -> dict[str, str] | None:
        try:
            result: dict[str, str] = self._call("GET", f"/connectors/{name}/config")
            return result
        except RuntimeError as exc:
            if "-> 404" in str(exc):
                return None
            raise

    def state(self, name: str) -> ConnectorState:
        data = self._call("GET", f"/connectors/{name}/status")
        tasks = tuple(t["state"] for t in data.get("tasks", []))
        traces = [t.get("trace", "") for t in data.get("tasks", []) if t.get("trace")]
        trace = data["connector"].get("trace", "") or (traces[0] if traces else "")
        return ConnectorState(name, data["connector"]["state"], tasks, trace)

    def restart(self, name: str) -> None:
        self._call("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true")


def apply_connectors(
    settings: StackSettings,
    *,
    timeout_s: float = 90.0,
    progress: Any = print,
    lineage: LineageEmitter | None = None,
) -> list[ConnectorState]:
    """Create/update every connector file and wait until each runs (or fail clearly).
    With ``lineage``, each apply is reported as a run (tables -> connector -> topics)."""
    client = ConnectClient(settings)
    values = local_values(settings)
    states = []
    for path in connector_files():
        spec = load_connector(path, values)
        name, config = spec["name"], spec["config"]
        run = lineage.start(_lineage_spec(settings, name, config)) if lineage else None
        try:
            before = client.config(name)
            wanted = {**config, "name": name}
            if before == wanted:
                progress(f"  {name}: unchanged")
            else:
                client.put_config(name, config)
                progress(f"  {name}: {'updated' if before else 'created'}")
            states.append(wait_running(client, name, timeout_s))
        except BaseException as exc:
            if run:
                run.fail(exc)
            raise
        if run:
            run.running()
    return states


def _lineage_spec(settings: StackSettings, name: str, config: dict[str, str]) -> LineageSpec:
    """The captured tables and their topics, read from the connector's own config."""
    from core.lineage import debezium_spec  # not at the top: the client takes ~0.7 s

    tables = [t.strip() for t in config["table.include.list"].split(",") if t.strip()]
    return debezium_spec(
        settings, connector=name, tables=tables, topic_prefix=config["topic.prefix"]
    )


def wait_running(client: ConnectClient, name: str, timeout_s: float) -> ConnectorState:
    deadline = time.monotonic() + timeout_s
    state = ConnectorState(name, "UNKNOWN", ())
    restarted = False
    while time.monotonic() < deadline:
        try:
            state = client.state(name)
        except RuntimeError:
            time.sleep(0.5)
            continue
        if state.running:
            return state
        if "FAILED" in (state.connector, *state.tasks):
            if restarted:
                break
            client.restart(name)  # one retry: a transient start race with the database
            restarted = True
        time.sleep(0.5)
    first = state.trace.splitlines()[0] if state.trace else "no trace"
    raise RuntimeError(
        f"connect: connector {name} is {state.connector} "
        f"(tasks: {', '.join(state.tasks) or 'none'}): {first}"
    )
