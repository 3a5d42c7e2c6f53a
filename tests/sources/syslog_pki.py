"""A throw-away PKI for the syslog TLS tests, made with the openssl command line."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    ca, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    _openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(ca), "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return ca, key


def issue(directory: Path, name: str, ca: tuple[Path, Path], usage: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (``serverAuth`` ones are valid for 127.0.0.1 and localhost)."""
    key, csr, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "ext"))
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/O=keelwatch/CN={name}")
    san = "subjectAltName=IP:127.0.0.1,DNS:localhost\n" if usage == "serverAuth" else ""
    ext.write_text(
        f"{san}extendedKeyUsage={usage}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
    )
    cert = directory / f"{name}.pem"
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Path:
    """ca, server (127.0.0.1), relay (a client of ca) and stranger (a client of another CA)."""
    ca = make_ca(directory, "ca")
    issue(directory, "server", ca, "serverAuth")
    issue(directory, "relay", ca, "clientAuth")
    issue(directory, "stranger", make_ca(directory, "other-ca"), "clientAuth")
    return directory
