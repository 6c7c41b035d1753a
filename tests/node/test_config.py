"""node.toml's HTTPS settings (`[http] tls_cert`, `tls_key`) and the server TLS context
the node builds from them (node.main.load_server_tls)."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest

from cli.devnet import tls
from node.config import (
    ConfigError,
    HttpConfig,
    NodeConfig,
    TlsConfigError,
    load_config,
    render_config,
)
from node.main import load_server_tls

NOW = datetime.datetime.now(datetime.UTC)


def write_config(home: Path, http: str = "") -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "node.toml"
    path.write_text(f'name = "nbc"\nbank = "nbc"\n\n[http]\nport = 26657\n{http}')
    return path


def write_pair(folder: Path, name: str = "node") -> tls.CertificateAuthority:
    """A CA and a node certificate `<name>.crt` with its key `<name>.key` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = tls.make_ca("test CA", NOW)
    key, cert = tls.make_node_cert(ca, name, [], NOW)
    tls.write_certificate(folder / f"{name}.crt", cert)
    tls.write_private_key(folder / f"{name}.key", key)
    return ca


def test_plain_http_is_the_default(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert config.http.tls_cert == config.http.tls_key == ""
    assert not config.http.tls
    assert config.tls_cert_path is None and config.tls_key_path is None
    assert config.http_url == "http://127.0.0.1:26657"
    assert load_server_tls(config) is None


def test_tls_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f'tls_cert = "tls/node.crt"\ntls_key = "{tmp_path / "elsewhere.key"}"\n'
    )
    config = load_config(path)
    assert config.http.tls
    assert config.tls_cert_path == tmp_path.resolve() / "tls" / "node.crt"
    assert config.tls_key_path == tmp_path / "elsewhere.key"
    assert config.http_url == "https://127.0.0.1:26657"


def test_render_writes_the_tls_settings_and_loads_back(tmp_path: Path) -> None:
    config = NodeConfig(
        name="nbc",
        bank="nbc",
        path=tmp_path / "node.toml",
        http=HttpConfig(port=26001, tls_cert="tls/node.crt", tls_key="tls/node.key"),
    )
    text = render_config(config)
    assert 'tls_cert = "tls/node.crt"' in text and 'tls_key = "tls/node.key"' in text
    (tmp_path / "node.toml").write_text(text)
    assert load_config(tmp_path / "node.toml").http == config.http
    # plain configs still write both settings, empty, so users see they exist
    plain = render_config(NodeConfig(name="nbc", bank="nbc", path=tmp_path / "node.toml"))
    assert 'tls_cert = ""' in plain and 'tls_key = ""' in plain


@pytest.mark.parametrize(
    ("http", "named"),
    [
        ('tls_cert = "tls/node.crt"\n', "http.tls_cert"),
        ('tls_key = "tls/node.key"\n', "http.tls_key"),
    ],
)
def test_invalid_only_one_of_cert_and_key(tmp_path: Path, http: str, named: str) -> None:
    with pytest.raises(TlsConfigError) as caught:
        load_config(write_config(tmp_path, http))
    assert caught.value.code == "tls_config"
    assert str(caught.value).startswith(f"{named} is set but")
    assert isinstance(caught.value, ConfigError)


def test_invalid_tls_cert_not_a_string(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"http\.tls_cert: expected a string"):
        load_config(write_config(tmp_path, "tls_cert = 1\ntls_key = 2\n"))


def test_server_tls_context(tmp_path: Path) -> None:
    write_pair(tmp_path / "tls")
    path = write_config(tmp_path, 'tls_cert = "tls/node.crt"\ntls_key = "tls/node.key"\n')
    context = load_server_tls(load_config(path))
    assert context is not None
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert not context.check_hostname  # a server does not check its clients' names


@pytest.mark.parametrize("missing", ["node.crt", "node.key"])
def test_invalid_server_tls_missing_file(tmp_path: Path, missing: str) -> None:
    write_pair(tmp_path / "tls")
    (tmp_path / "tls" / missing).unlink()
    path = write_config(tmp_path, 'tls_cert = "tls/node.crt"\ntls_key = "tls/node.key"\n')
    with pytest.raises(TlsConfigError) as caught:
        load_server_tls(load_config(path))
    setting = "http.tls_cert" if missing.endswith(".crt") else "http.tls_key"
    assert str(caught.value).startswith(f"{setting}: cannot read ")
    assert missing in str(caught.value) and "No such file" in str(caught.value)


def test_invalid_server_tls_key_of_another_cert(tmp_path: Path) -> None:
    write_pair(tmp_path / "tls", "node")
    write_pair(tmp_path / "tls", "other")
    path = write_config(tmp_path, 'tls_cert = "tls/node.crt"\ntls_key = "tls/other.key"\n')
    with pytest.raises(TlsConfigError, match=r"is not the private key of http\.tls_cert"):
        load_server_tls(load_config(path))


def test_invalid_server_tls_not_pem(tmp_path: Path) -> None:
    write_pair(tmp_path / "tls")
    (tmp_path / "tls" / "node.crt").write_text("not a certificate\n")
    path = write_config(tmp_path, 'tls_cert = "tls/node.crt"\ntls_key = "tls/node.key"\n')
    with pytest.raises(TlsConfigError, match="expected a PEM certificate"):
        load_server_tls(load_config(path))


def test_http_url_brackets_ipv6(tmp_path: Path) -> None:
    from dataclasses import replace

    from node.config import HttpConfig, NodeConfig

    base = NodeConfig(name="n", bank="aba", path=tmp_path / "node.toml")
    assert base.http_url == "http://127.0.0.1:26657"
    v6 = replace(base, http=HttpConfig(host="fd00::5", port=80))
    assert v6.http_url == "http://[fd00::5]:80"


def test_shared_verification_settings(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    base = 'name = "nbc"\nbank = "nbc"\n\n[mempool]\n'
    path.write_text(base)
    config = load_config(path)
    assert config.mempool.shared_verification and config.mempool.vouchers == "quorum"
    assert config.mempool.vouch_wait_ms == 300
    path.write_text(base + 'vouchers = "one_correct"\nshared_verification = false\n')
    config = load_config(path)
    assert config.mempool.vouchers == "one_correct" and not config.mempool.shared_verification
    path.write_text(base + 'vouchers = "some"\n')
    with pytest.raises(ConfigError, match=r"mempool\.vouchers: 'some' is not one of"):
        load_config(path)
    path.write_text(base + "vouch_wait_ms = -1\n")
    with pytest.raises(ConfigError, match=r"mempool\.vouch_wait_ms: expected a non-negative"):
        load_config(path)
