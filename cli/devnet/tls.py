"""A local certificate authority for `bakong testnet init --tls`: one CA per testnet home
and one server certificate per node, signed by it, for the nodes' HTTP API.

Keys are EC P-256 and signatures ECDSA with SHA-256, which Python's ssl, curl and the
browsers accept. The CA certificate is marked as a CA (BasicConstraints ca=True, critical;
KeyUsage keyCertSign and cRLSign) and carries a SubjectKeyIdentifier; a node's
certificate is an end entity (ca=False) for serverAuth, names its hosts in the
SubjectAlternativeName (127.0.0.1 and localhost always) and points to the CA with an
AuthorityKeyIdentifier, as OpenSSL's strict verification (Python 3.13's default) wants.

Private keys are written with mode 0600, never over an existing file. Where the files
go is the testnet manager's business (cli/devnet/testnet.py); this module is imported
only by `init --tls` (cryptography's x509 takes a while to import).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY: Final = datetime.timedelta(days=3650)
# Apple's clients refuse server certificates valid for longer than 825 days.
NODE_VALIDITY: Final = datetime.timedelta(days=825)
# A certificate is valid from a little before its creation: clocks of one machine's
# processes agree, those of two machines may not.
BACKDATE: Final = datetime.timedelta(hours=1)
DEFAULT_HOSTS: Final = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def make_ca(common_name: str, now: datetime.datetime) -> CertificateAuthority:
    """A fresh self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bakong-sim testnet"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, cert)


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """127.0.0.1 and localhost, then `hosts`: IP addresses as IPs, the rest as DNS names,
    each once."""
    names: list[x509.GeneralName] = []
    for host in (*DEFAULT_HOSTS, *hosts):
        try:
            general: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            general = x509.DNSName(host)
        if general not in names:
            names.append(general)
    return names


def make_node_cert(
    ca: CertificateAuthority,
    common_name: str,
    hosts: Sequence[str],
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server certificate (and its new key) for a node reachable at `hosts`."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bakong-sim testnet"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + NODE_VALIDITY, ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return key, cert


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """PEM (PKCS#8, unencrypted: nodes start unattended), mode 0600."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(path, pem, 0o600)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """PEM, readable by all (a certificate is public)."""
    _write_new(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start (a key is never readable by others, not
    even for a moment); an existing file is an error, not overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
