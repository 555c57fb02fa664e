"""A real single-node Apache Kafka (KRaft) broker on 127.0.0.1, run from Maven Central jars.

Docker is not needed: Maven fetches the broker jars once into a cache folder and the broker runs as
a detached JVM whose pid, log and data live under ``home/<port>/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import platformdirs
from pydantic import SecretStr

from shopstream.devbroker import security as broker_security
from shopstream.devbroker.security import BrokerSecurity, ScramUser
from shopstream.settings import KafkaSettings

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
LOG4J_VERSION = "2.24.3"
_MARKER = ".complete"


def _resource(name: str) -> str:
    return resources.files("shopstream").joinpath("resources", "local_kafka", name).read_text()


def _default_home() -> Path:
    base = os.environ.get("SHOPSTREAM_CACHE") or platformdirs.user_cache_dir("shopstream")
    return Path(base) / "local-kafka"


@dataclass(frozen=True)
class LocalBrokerConfig:
    port: int = 9092
    controller_port: int = 9093
    home: Path = field(default_factory=_default_home)
    kafka_version: str = "4.0.2"
    heap_mb: int = 512
    # Tests point this at the default cache so a throwaway home does not download the jars again.
    jars_home: Path | None = None
    security: BrokerSecurity | None = None
    """SASL/SCRAM client listener and ACLs; None keeps the open PLAINTEXT broker."""

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def jars_dir(self) -> Path:
        return (self.jars_home or self.home / "jars") / self.kafka_version

    @property
    def run_dir(self) -> Path:
        return self.home / str(self.port)

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "broker.pid"

    @property
    def tls_dir(self) -> Path:
        return self.run_dir / "tls"

    def kafka_settings(self, user: ScramUser | None = None) -> KafkaSettings:
        """Client settings for this broker, authenticated as `user` when it is secured."""
        if self.security is None:
            return KafkaSettings(bootstrap_servers=self.bootstrap_servers)
        chosen = user or self.security.admin
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=self.security.listener,
            sasl_mechanism=self.security.mechanism,
            sasl_username=chosen.name,
            sasl_password=SecretStr(chosen.password),
            ssl_cafile=self.tls_dir / "ca.pem" if self.security.tls else None,
        )


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str
    startup_seconds: float | None
    already_running: bool = False


class LocalBrokerError(RuntimeError):
    pass


class PortInUseError(LocalBrokerError):
    pass


def log_path(config: LocalBrokerConfig) -> Path:
    return config.run_dir / "broker.log"


def _startup_file(config: LocalBrokerConfig) -> Path:
    return config.run_dir / "startup_seconds"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_jars(
    config: LocalBrokerConfig, *, progress: Callable[[str], None] | None = None
) -> Path:
    target = config.jars_dir
    if (target / _MARKER).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalBrokerError("Maven (mvn) is not on PATH; it is needed to fetch the Kafka jars")
    if progress:
        progress(f"Fetching Kafka {config.kafka_version} jars from Maven Central into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download into a private folder and rename it into place, so a concurrent or interrupted
    # run never leaves a half-filled jars dir that looks complete.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(
            _resource("pom.xml.template").format(kafka=config.kafka_version, log4j=LOG4J_VERSION)
        )
        out = Path(work) / "jars"
        goal = [
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out}",
        ]
        cmd = [mvn, "-B", "-q", "-f", str(pom), *goal]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0 or not any(out.glob("kafka_2.13-*.jar")):
            plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # Maven's colours
            lines = [line for line in plain.splitlines() if line.strip()]
            last = "\n".join(lines[-30:])
            raise LocalBrokerError(
                f"mvn failed to fetch the Kafka jars (exit {done.returncode}):\n{last}"
            )
        (out / _MARKER).write_text(f"kafka_2.13 {config.kafka_version}\n")
        with contextlib.suppress(OSError):  # another process may have won the race
            out.rename(target)
    if not (target / _MARKER).exists():
        raise LocalBrokerError(f"{target} exists but is incomplete; delete it and retry")
    if progress:
        progress(f"Kafka jars ready in {target}")
    return target


# Brokers launched by this process: polling their Popen reaps them once they exit, and keeping
# them referenced stops Python from warning that a still-running child was leaked.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _alive(pid: int) -> bool:
    if pid in _children:
        return _children[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # a recycled pid owned by someone else is not our broker
    proc = Path(f"/proc/{pid}")
    if proc.exists():  # Linux: reject zombies nobody reaps and pids recycled by other programs
        with contextlib.suppress(OSError):
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            return b"kafka.Kafka" in proc.joinpath("cmdline").read_bytes()
    return True


def _read_pid(config: LocalBrokerConfig) -> int | None:
    try:
        return int(config.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _accepting(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the JVM sets, so sockets left in TIME_WAIT by a stopped broker do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def status(config: LocalBrokerConfig) -> BrokerStatus:
    pid = _read_pid(config)
    if pid is None or not _alive(pid):
        return BrokerStatus(
            running=False,
            pid=None,
            bootstrap_servers=config.bootstrap_servers,
            startup_seconds=None,
        )
    try:
        startup: float | None = float(_startup_file(config).read_text())
    except (OSError, ValueError):
        startup = None
    return BrokerStatus(
        running=True, pid=pid, bootstrap_servers=config.bootstrap_servers, startup_seconds=startup
    )


def _java(tool: str = "java") -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / tool) if java_home else shutil.which(tool)
    if not java or not Path(java).exists():
        raise LocalBrokerError(f"{tool} is not on PATH (Kafka needs a JDK/JRE 17+)")
    return java


def _server_properties(config: LocalBrokerConfig) -> str:
    ports = {"port": config.port, "controller_port": config.controller_port}
    plain = _resource("server.properties.template").format(**ports, data_dir=config.data_dir)
    security = config.security
    if security is None:
        return plain
    tls = None
    if security.tls:
        try:
            tls = broker_security.ensure_self_signed(_java("keytool"), config.tls_dir)
        except RuntimeError as error:
            raise LocalBrokerError(str(error)) from error
    lines = broker_security.server_properties(security, config.port, config.controller_port, tls)
    return broker_security.replace_listener_settings(plain, lines)


def _security_marker(config: LocalBrokerConfig) -> Path:
    return config.run_dir / "security.json"


def _check_formatted_security(config: LocalBrokerConfig) -> None:
    # SCRAM users live in the metadata log written at format time: a data dir formatted with
    # other users (or none) would start fine and then refuse every login.
    marker = _security_marker(config)
    wanted = config.security.fingerprint() if config.security else ""
    found = marker.read_text() if marker.exists() else ""
    if found != wanted:
        raise LocalBrokerError(
            f"the data in {config.data_dir} was formatted with other SASL settings or users; "
            "run `shopstream broker reset` (deletes the data) or use another home/port"
        )


def _jvm(config: LocalBrokerConfig, jars: Path, log4j: Path) -> list[str]:
    # Stock scripts use a fixed 1 GiB heap and G1; a dev broker needs far less and starts faster
    # with the serial collector and C1 only.
    flags = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError"
    heap = [f"-Xms{min(64, config.heap_mb)}m", f"-Xmx{config.heap_mb}m"]
    log = [f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true"]
    return [_java(), *heap, *flags.split(), *log, "-cp", f"{jars}/*"]


def _wait_until_ready(config: LocalBrokerConfig, pid: int, deadline: float) -> None:
    while not _accepting(config.port):
        if not _alive(pid):
            config.pid_file.unlink(missing_ok=True)
            raise LocalBrokerError(
                f"Kafka exited during start-up; last lines of {log_path(config)}:\n"
                f"{_tail(log_path(config))}"
            )
        if time.monotonic() > deadline:
            _kill(pid, timeout=0)
            config.pid_file.unlink(missing_ok=True)
            raise LocalBrokerError(
                f"Kafka did not open port {config.port} in time; last lines of "
                f"{log_path(config)}:\n{_tail(log_path(config))}"
            )
        time.sleep(0.1)


def start(config: LocalBrokerConfig, *, timeout: float = 90.0) -> BrokerStatus:
    began = time.monotonic()
    current = status(config)
    if current.running and current.pid is not None:
        _wait_until_ready(config, current.pid, began + timeout)  # may still be starting
        return dataclasses.replace(current, already_running=True)
    config.pid_file.unlink(missing_ok=True)  # stale: the process is gone
    for port in (config.port, config.controller_port):
        if not _port_free(port):
            raise PortInUseError(
                f"port {port} on 127.0.0.1 is already in use by something else (not this "
                f"shopstream broker); stop it or choose other ports"
            )
    jars = ensure_jars(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    props, log4j = config.run_dir / "server.properties", config.run_dir / "log4j2.properties"
    log = log_path(config)
    props.write_text(_server_properties(config))
    props.chmod(0o600)  # holds the admin's SCRAM password when secured
    log4j.write_text(_resource("log4j2.properties"))
    log.write_text("")
    jvm = _jvm(config, jars, log4j)
    launched = time.monotonic()  # start-up time includes formatting on a fresh data dir
    if not (config.data_dir / "meta.properties").exists():
        fmt = [*jvm, "kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c", str(props), "-g"]
        if config.security is not None:
            fmt += broker_security.format_arguments(config.security)
        with log.open("ab") as out:
            done = subprocess.run(fmt, stdout=out, stderr=subprocess.STDOUT, check=False)  # noqa: S603
        if done.returncode != 0:
            raise LocalBrokerError(f"formatting Kafka storage failed:\n{_tail(log)}")
        marker = _security_marker(config)
        marker.write_text(config.security.fingerprint() if config.security else "")
        marker.chmod(0o600)
    else:
        _check_formatted_security(config)
    with log.open("ab") as out:
        # A new session keeps the broker alive after the caller exits and away from its Ctrl-C.
        proc = subprocess.Popen(  # noqa: S603
            [*jvm, "kafka.Kafka", str(props)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=config.run_dir,
        )
    _children[proc.pid] = proc
    config.pid_file.write_text(f"{proc.pid}\n")
    _wait_until_ready(config, proc.pid, began + timeout)
    seconds = round(time.monotonic() - launched, 2)
    _startup_file(config).write_text(f"{seconds}\n")
    return BrokerStatus(
        running=True,
        pid=proc.pid,
        bootstrap_servers=config.bootstrap_servers,
        startup_seconds=seconds,
    )


def _kill(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM if timeout > 0 else signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    _children.pop(pid, None)


def stop(config: LocalBrokerConfig, *, timeout: float = 30.0) -> bool:
    pid = _read_pid(config)
    was_running = pid is not None and _alive(pid)
    if pid is not None and was_running:
        _kill(pid, timeout)
    config.pid_file.unlink(missing_ok=True)
    _startup_file(config).unlink(missing_ok=True)
    return was_running


def reset(config: LocalBrokerConfig) -> None:
    stop(config)
    shutil.rmtree(config.data_dir, ignore_errors=True)
    _security_marker(config).unlink(missing_ok=True)
