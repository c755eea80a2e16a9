"""pebble, Let's Encrypt's ACME test server (Debian's package), as the ACME CA of the deploy
tier's ACME test: a real ACME server that checks the HTTP-01 challenge on the front door's
HTTP port. It stands in for Let's Encrypt, which cannot reach this host."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DIRECTORY_PORT, MANAGEMENT_PORT = 14000, 15000


def _tls_for_localhost(directory: Path) -> Path:
    """A CA and a localhost certificate for pebble's own HTTPS (Debian's package ships none);
    returns the CA's certificate."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble listener test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "cert.pem").write_bytes(cert.public_bytes(pem))
    (directory / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory / "ca.pem"


@contextlib.contextmanager
def pebble(directory: Path, http_port: int):
    """pebble validating HTTP-01 on ``http_port``, without its random waits; yields
    (directory URL, a CA bundle that trusts both its directory and what it issues)."""
    listener_ca = _tls_for_localhost(directory)
    config = directory / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{DIRECTORY_PORT}",
                    "managementListenAddress": f"127.0.0.1:{MANAGEMENT_PORT}",
                    "certificate": str(directory / "cert.pem"),
                    "privateKey": str(directory / "key.pem"),
                    "httpPort": http_port,
                    "tlsPort": 5001,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    log = (directory / "pebble.log").open("w")
    process = subprocess.Popen(
        ["pebble", "-config", str(config), "-strict=false"],
        # Pebble rejects 5% of good nonces by default to test clients' retry; certbot retries
        # once, so one run in a few hundred fails on it. The test is about our role, not that.
        env=os.environ | {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    trust = ssl.create_default_context(cafile=listener_ca)
    try:
        root = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(
                    f"https://localhost:{MANAGEMENT_PORT}/roots/0", context=trust, timeout=2
                ) as answer:
                    root = answer.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert root, (directory / "pebble.log").read_text()
        bundle = directory / "acme-ca.pem"
        bundle.write_text(listener_ca.read_text() + root)
        yield f"https://localhost:{DIRECTORY_PORT}/dir", bundle
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        log.close()
