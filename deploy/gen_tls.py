#!/usr/bin/env python3
"""Generate TLS material for fog -> cloud gRPC: a private CA, a cloud server
certificate, and optionally one client certificate per fog (for mutual TLS).

    python deploy/gen_tls.py OUTDIR --host cloud.example.org --host 127.0.0.1 --fog demo-fog

Writes ca.pem/ca.key, server.pem/server.key, and fog-<id>.pem/.key. Keys are
ECDSA P-256, written mode 0600. Fogs need only ca.pem (``[cloud] tls_ca``) and,
with mutual TLS, their own pair. Uses the `cryptography` package the stack
already depends on, so no openssl invocation differs between machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FogPark"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def generate(out: Path, hosts: list[str], fogs: list[str], days: int = 825) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca = (x509.CertificateBuilder().subject_name(_name("FogPark CA")).issuer_name(_name("FogPark CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    written = [out / "ca.pem", out / "ca.key"]
    _write(written[0], ca.public_bytes(serialization.Encoding.PEM))
    _write(written[1], _pem_key(ca_key), private=True)

    def issue(cn: str, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier, stem: str) -> None:
        key = _key()
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        _write(out / f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write(out / f"{stem}.key", _pem_key(key), private=True)
        written.extend([out / f"{stem}.pem", out / f"{stem}.key"])

    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    issue(hosts[0], sans, ExtendedKeyUsageOID.SERVER_AUTH, "server")
    for fog in fogs:
        issue(fog, [], ExtendedKeyUsageOID.CLIENT_AUTH, f"fog-{fog}")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", type=Path)
    p.add_argument("--host", action="append", default=None, help="server name or IP (repeatable)")
    p.add_argument("--fog", action="append", default=[], help="issue a client certificate for this fog id")
    p.add_argument("--days", type=int, default=825)
    args = p.parse_args(argv)
    for path in generate(args.outdir, args.host or ["localhost", "127.0.0.1"], args.fog, args.days):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
