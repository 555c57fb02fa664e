"""SASL/SCRAM, ACLs and optional TLS for the local broker (`LocalBrokerConfig.security`).

The client listener becomes SASL_PLAINTEXT (or SASL_SSL with a throwaway self-signed
certificate), `StandardAuthorizer` denies everything no ACL allows, and the SCRAM users are
written into the metadata log when the storage is formatted. The KRaft controller listener stays
PLAINTEXT on loopback: the broker half of the node registers with the controller half over it as
`User:ANONYMOUS`, which therefore has to be a super user; nothing but 127.0.0.1 reaches it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ScramMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512"]
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Characters that survive both StorageTool's `[name=...,password=...]` syntax and a JAAS string.
_SAFE = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")


@dataclass(frozen=True)
class ScramUser:
    name: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        for value in (self.name, self.password):
            if not _SAFE.match(value):
                # Never echo the value: it may be the password.
                raise ValueError(
                    "SCRAM user names and passwords may use letters, digits and ._~- only"
                )


@dataclass(frozen=True)
class BrokerSecurity:
    admin: ScramUser
    """Super user: creates topics and ACLs; also the broker's own inter-broker identity."""
    users: tuple[ScramUser, ...] = ()
    """Further SCRAM users (one per service); they get only the ACLs granted to them."""
    mechanism: ScramMechanism = "SCRAM-SHA-512"
    tls: bool = False
    """SASL_SSL instead of SASL_PLAINTEXT, with a self-signed certificate for 127.0.0.1."""

    @property
    def listener(self) -> Literal["SASL_SSL", "SASL_PLAINTEXT"]:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    @property
    def all_users(self) -> tuple[ScramUser, ...]:
        return (self.admin, *self.users)

    def fingerprint(self) -> str:
        """Identifies the credentials a data dir was formatted with, without storing them."""
        pairs = sorted((user.name, user.password) for user in self.all_users)
        digest = hashlib.sha256(json.dumps([self.mechanism, pairs]).encode()).hexdigest()
        return json.dumps(
            {"mechanism": self.mechanism, "users": [n for n, _ in pairs], "sha256": digest}
        )


@dataclass(frozen=True)
class TlsFiles:
    keystore: Path
    ca_file: Path
    """The self-signed certificate in PEM: what clients pass as `ssl_cafile`."""
    password: str = field(repr=False)


def format_arguments(security: BrokerSecurity) -> list[str]:
    """`StorageTool format` arguments that create every SCRAM user in the new metadata log."""
    arguments: list[str] = []
    for user in security.all_users:
        arguments += [
            "--add-scram",
            f"{security.mechanism}=[name={user.name},password={user.password}]",
        ]
    return arguments


def server_properties(
    security: BrokerSecurity, port: int, controller_port: int, tls: TlsFiles | None
) -> str:
    """Lines that replace the PLAINTEXT listener settings of the server.properties template."""
    listener = security.listener
    mechanism = security.mechanism
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{security.admin.name}" password="{security.admin.password}";'
    )
    lines = [
        f"listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners={listener}://127.0.0.1:{port}",
        f"inter.broker.listener.name={listener}",
        f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,{listener}:{listener}",
        f"sasl.enabled.mechanisms={mechanism}",
        f"sasl.mechanism.inter.broker.protocol={mechanism}",
        f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config={jaas}",
        f"authorizer.class.name={AUTHORIZER}",
        f"super.users=User:{security.admin.name};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found=false",
    ]
    if tls is not None:
        lines += [
            f"ssl.keystore.location={tls.keystore}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.password={tls.password}",
            f"ssl.key.password={tls.password}",
            # The broker's own inter-broker client trusts the same self-signed certificate.
            f"ssl.truststore.location={tls.ca_file}",
            "ssl.truststore.type=PEM",
        ]
    return "\n".join(lines) + "\n"


def replace_listener_settings(template: str, security_lines: str) -> str:
    """Drop the template's PLAINTEXT listener lines and append the secured ones."""
    replaced = (
        "listeners=",
        "advertised.listeners=",
        "inter.broker.listener.name=",
        "listener.security.protocol.map=",
    )
    kept = [line for line in template.splitlines() if not line.startswith(replaced)]
    return (
        "\n".join(kept)
        + "\n# SASL/SCRAM and ACLs (shopstream.devbroker.security)\n"
        + security_lines
    )


def ensure_self_signed(keytool: str, directory: Path) -> TlsFiles:
    """A PKCS12 keystore with a self-signed certificate for 127.0.0.1/localhost, made once."""
    secret = directory / "keystore-password"
    if secret.exists() and (directory / "broker.p12").exists() and (directory / "ca.pem").exists():
        return TlsFiles(directory / "broker.p12", directory / "ca.pem", secret.read_text().strip())
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(18)
    secret.touch(mode=0o600)
    secret.write_text(password)
    files = TlsFiles(directory / "broker.p12", directory / "ca.pem", password)
    files.keystore.unlink(missing_ok=True)
    store = ["-keystore", str(files.keystore), "-storetype", "PKCS12", "-storepass", password]
    generate = [
        keytool, "-genkeypair", "-alias", "broker", "-keyalg", "EC", "-groupname", "secp256r1",
        "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-validity", "30",
        "-keypass", password, *store,
    ]  # fmt: skip
    export = [
        keytool,
        "-exportcert",
        "-rfc",
        "-alias",
        "broker",
        "-file",
        str(files.ca_file),
        *store,
    ]
    for command in (generate, export):
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(
                f"keytool failed: {done.stdout}{done.stderr}".replace(password, "***")
            )
    return files


def load_or_create_users(path: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Random passwords for `names`, kept in `path` (mode 0600) so restarts reuse them."""
    users: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in names if name not in users]
    if missing:
        users.update({name: secrets.token_urlsafe(18) for name in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(users, indent=2) + "\n")
    return users
