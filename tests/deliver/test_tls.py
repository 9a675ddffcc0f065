"""STARTTLS, implicit TLS and AUTH against aiosmtpd, with a throwaway certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from segmint.config.model import SmtpDef
from segmint.deliver.errors import AuthenticationFailed
from segmint.deliver.transport import SmtpPool

from .conftest import RecordingHandler, free_port  # type: ignore[import-not-found]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem", folder / "key.pem"


def contexts(cert: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(*cert)
    client = ssl.create_default_context(cafile=str(cert[0]))
    return server, client


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"shop", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def server(cert: tuple[Path, Path], request: pytest.FixtureRequest) -> Iterator[Any]:
    mode = request.param
    server_ctx, _ = contexts(cert)
    handler = RecordingHandler()
    port = free_port()
    if mode == "tls":
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    else:
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            tls_context=server_ctx,
            require_starttls=True,
            authenticator=authenticator,
            auth_required=mode == "auth",
        )
    controller.start()
    yield mode, port, handler
    controller.stop()


def send_one(pool: SmtpPool) -> None:
    async def main() -> None:
        try:
            await pool.send(b"Subject: hi\r\n\r\nhello\r\n", "shop@example.com", ["a@example.com"])
        finally:
            await pool.close()

    asyncio.run(main())


@pytest.mark.parametrize("server", ["starttls", "tls"], indirect=True)
def test_encrypted_delivery(server: Any, cert: tuple[Path, Path]) -> None:
    mode, port, handler = server
    _, client_ctx = contexts(cert)
    smtp = SmtpDef(host="127.0.0.1", port=port, security=mode, timeout=5)
    send_one(SmtpPool(smtp, tls_context=client_ctx))
    assert handler.by_recipient() == {"a@example.com": 1}


@pytest.mark.parametrize("server", ["starttls"], indirect=True)
def test_plain_connection_is_refused_by_a_server_requiring_starttls(
    server: Any, cert: tuple[Path, Path]
) -> None:
    from segmint.deliver.errors import MessageRejected

    _, port, handler = server
    with pytest.raises(MessageRejected):
        send_one(SmtpPool(SmtpDef(host="127.0.0.1", port=port, timeout=5)))
    assert handler.received == []


@pytest.mark.parametrize("server", ["auth"], indirect=True)
def test_auth_with_password_from_the_environment(
    server: Any, cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port, handler = server
    _, client_ctx = contexts(cert)
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    smtp = SmtpDef(host="127.0.0.1", port=port, security="starttls", username="shop",
                   password_env="SMTP_PASSWORD", timeout=5)  # fmt: skip
    send_one(SmtpPool(smtp, tls_context=client_ctx))
    assert handler.by_recipient() == {"a@example.com": 1}

    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    with pytest.raises(AuthenticationFailed):
        send_one(SmtpPool(smtp, tls_context=client_ctx))
