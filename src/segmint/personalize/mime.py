"""Fast MIME: a message assembled from precomputed bytes around the rendered parts.

A :class:`Skeleton` is built once per compiled template: the multipart boundary and every
part header are fixed bytes. Per recipient only the header values (RFC 2047 encoded when
not ASCII) and the two bodies are produced, with C-speed :mod:`binascii`. The boundary
contains ``=_``, which neither quoted-printable nor base64 output can contain, and 7bit
bodies are checked not to contain it, so it cannot collide with a body.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from segmint.personalize.errors import TemplateRenderError

CRLF = b"\r\n"
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Skeleton:
    """The fixed bytes of a multipart/alternative message (text part, then HTML part).

    Each part head exists in two variants: ``7bit`` (ASCII with short lines: no encoding
    at all) and ``base64`` (anything else; four times cheaper to produce than
    quoted-printable, and never flagged as needless since the content is not 7-bit).
    """

    content_headers: bytes
    text_heads: tuple[bytes, bytes]
    html_heads: tuple[bytes, bytes]
    tail: bytes

    @classmethod
    def for_template(cls, name: str) -> Skeleton:
        """Build the skeleton for template ``name`` (the boundary is derived from it)."""
        digest = hashlib.sha256(name.encode()).hexdigest()[:24]
        boundary = f"=_segmint_{digest}".encode()
        start = b"--" + boundary + CRLF

        def head(subtype: bytes, cte: bytes) -> bytes:
            return (
                start + b'Content-Type: text/' + subtype + b'; charset="utf-8"' + CRLF
                + b"Content-Transfer-Encoding: " + cte + CRLF + CRLF
            )  # fmt: skip

        return cls(
            content_headers=b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;"
            b'\r\n boundary="' + boundary + b'"\r\n\r\n',
            text_heads=(head(b"plain", b"7bit"), head(b"plain", b"base64")),
            html_heads=(
                CRLF + head(b"html", b"7bit"),
                CRLF + head(b"html", b"base64"),
            ),
            tail=CRLF + b"--" + boundary + b"--" + CRLF,
        )

    def assemble(self, headers: bytes, text: str, html: str) -> bytes:
        """Join the header block and the two bodies into one RFC 5322 message."""
        text_raw = seven_bit(text)
        html_raw = seven_bit(html)
        return b"".join(
            (
                headers,
                self.content_headers,
                self.text_heads[text_raw is None],
                base64_lines(text) if text_raw is None else text_raw,
                self.html_heads[html_raw is None],
                base64_lines(html) if html_raw is None else html_raw,
                self.tail,
            )
        )


def _crlf(text: str) -> str:
    if "\r" in text:
        return text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def seven_bit(text: str) -> bytes | None:
    """Return ``text`` as CRLF bytes if it can go unencoded (ASCII, lines <= 998), else None."""
    if not text.isascii() or "=_segmint_" in text:
        return None
    lines = _crlf(text).split("\n")
    if max(map(len, lines)) > 998:
        return None
    return "\r\n".join(lines).encode("ascii")


def base64_lines(text: str) -> bytes:
    """Encode a body as base64 UTF-8 in lines of 76 characters."""
    raw = text.encode("utf-8")
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    data = binascii.b2a_base64(raw.replace(b"\n", CRLF), newline=False)
    return CRLF.join([data[i : i + 76] for i in range(0, len(data), 76)])


def _encoded_words(value: str) -> bytes:
    """RFC 2047 base64 encoded words of at most 75 characters, folded with CRLF SP."""
    data = value.encode("utf-8")
    words: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + 39, len(data))  # 52 base64 chars: a word fits after "Subject: "
        while end < len(data) and end > start + 1 and data[end] & 0xC0 == 0x80:
            end -= 1  # never split a UTF-8 sequence between two words
        chunk = binascii.b2a_base64(data[start:end], newline=False)
        words.append(b"=?utf-8?b?" + chunk + b"?=")
        start = end
    return b"\r\n ".join(words)


def _fold_ascii(name: str, value: str) -> bytes:
    """Fold an ASCII header value at spaces so lines stay near 78 characters."""
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines).encode("ascii")


def text_header(name: str, value: str) -> bytes:
    """Return ``Name: value`` CRLF for unstructured text (newlines become spaces)."""
    value = _WS.sub(" ", value).strip()
    if value.isascii() and "=?" not in value:
        return _fold_ascii(name, value) + CRLF
    return name.encode("ascii") + b": " + _encoded_words(value) + CRLF


@lru_cache(maxsize=4096)
def address_header(name: str, value: str) -> bytes:
    """Return ``Name: address`` CRLF; a display name is quoted or RFC 2047 encoded.

    Raises:
        TemplateRenderError: If the address is malformed or contains a line break.
    """
    if "\r" in value or "\n" in value:
        raise TemplateRenderError(f"{name}: line break in address {value!r}")
    if _PLAIN_ADDRESS.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    display, addr = parseaddr(value)
    local, _, domain = addr.rpartition("@")
    if not local or not domain or not local.isascii():
        raise TemplateRenderError(f"{name}: not a valid address {value!r}")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    address = f"<{local}@{domain}>".encode("ascii")
    if not display:
        return name.encode("ascii") + b": " + address + CRLF
    if display.isascii() and _ATOM.fullmatch(display):
        shown = display.encode("ascii")
    elif display.isascii():
        escaped = display.replace("\\", "\\\\").replace('"', '\\"')
        shown = f'"{escaped}"'.encode("ascii")
    else:
        shown = _encoded_words(display)
    return name.encode("ascii") + b": " + shown + b" " + address + CRLF


def message_id_header(message_id: str) -> bytes:
    """Return the ``Message-ID`` header, adding angle brackets when missing.

    Raises:
        TemplateRenderError: If the id is not ``local@domain`` in printable ASCII.
    """
    bare = message_id.strip().removeprefix("<").removesuffix(">")
    if not bare.isascii() or "@" not in bare or any(c in bare for c in " \t\r\n<>"):
        raise TemplateRenderError(f"Message-ID must look like local@domain, got {message_id!r}")
    return f"Message-ID: <{bare}>\r\n".encode("ascii")


@lru_cache(maxsize=256)
def date_header(when: datetime) -> bytes:
    """Return the ``Date`` header for an instant (naive values are taken as UTC)."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return f"Date: {format_datetime(aware)}\r\n".encode("ascii")


def list_unsubscribe_headers(uris: tuple[str, str]) -> bytes:
    """Return ``List-Unsubscribe`` (and, for an HTTP URI, ``List-Unsubscribe-Post``).

    ``uris`` holds two URIs (one-click HTTPS URL and ``mailto:``, in either order; either
    may be empty). RFC 8058 one-click needs the HTTPS one and the ``Post`` header.
    """
    given = [u.strip() for u in uris if u and u.strip()]
    for uri in given:
        if not uri.isascii() or any(c in uri for c in " \t\r\n<>"):
            raise TemplateRenderError(f"List-Unsubscribe: not a valid URI {uri!r}")
    if not given:
        return b""
    value = ",\r\n ".join(f"<{u}>" for u in given)
    out = f"List-Unsubscribe: {value}\r\n".encode("ascii")
    if any(u.lower().startswith(("https:", "http:")) for u in given):
        out += b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    return out
