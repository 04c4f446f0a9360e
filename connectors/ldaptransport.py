"""How the ``ldap`` connector talks to a server: a small ``Transport`` interface, and ldap3.

The connector sees entries only as ``(dn, {lower-case attribute: [raw bytes]})``; paging,
TLS, binds and the library's exceptions stay here, so another library (python-ldap) can be
put behind the same interface without touching the mapping or the sync logic.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from ldap3 import (
    ANONYMOUS,
    BASE,
    DEREF_ALWAYS,
    DEREF_NEVER,
    DEREF_SEARCH,
    EXTERNAL,
    LEVEL,
    NONE,
    SASL,
    SIMPLE,
    SUBTREE,
    Connection,
    Server,
    Tls,
)
from ldap3.core import exceptions as lx
from ldap3.strategy.base import RESPONSE_COMPLETE, SESSION_TERMINATED_BY_SERVER
from ldap3.strategy.sync import SyncStrategy
from ldap3.utils.asn1 import decode_message_fast

from syncd import secrets
from syncd.errors import SourceError

Scope = Literal["subtree", "one", "base"]
Aliases = Literal["never", "search", "always"]
Referrals = Literal["ignore", "fail"]
Entry = tuple[str, dict[str, list[bytes]]]
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
NO_ATTRIBUTES = "1.1"  # RFC 4511: ask for no attributes at all

NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"  # RFC 4511 4.4.1

_SCOPES = {"subtree": SUBTREE, "one": LEVEL, "base": BASE}
# The SearchRequest's derefAliases (RFC 4511 4.5.1.3): neverDerefAliases (0),
# derefInSearching (1: entries below the base, not the base) and derefAlways (3).
# derefFindingBaseObj (2) alone is not offered. ldap3's own default is derefAlways.
_DEREF = {"never": DEREF_NEVER, "search": DEREF_SEARCH, "always": DEREF_ALWAYS}


class TransportError(SourceError):
    """A failed LDAP operation; ``transient`` errors may succeed when the run is retried."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)


@dataclass
class References:
    """The search continuation references (RFC 4511 4.5.3) a connection met and did not
    follow: how many, and their distinct URIs."""

    count: int = 0
    uris: set[str] = field(default_factory=set)

    def add(self, uris: Iterable[str]) -> None:
        """One more reference, to ``uris``."""
        self.count += 1
        self.uris.update(uris)

    def merge(self, other: References) -> None:
        """Take in what ``other`` counted."""
        self.count += other.count
        self.uris |= other.uris

    def as_dict(self) -> dict[str, Any]:
        """The count and the URIs, sorted, for reports and logs."""
        return {"count": self.count, "uris": sorted(self.uris)}


class Transport(Protocol):
    """What the connector needs from an LDAP library."""

    #: the continuation references met so far, not followed (``Endpoint.referrals``
    #: "ignore"; with "fail" the search raises TransportError instead)
    references: References

    def search_paged(self, base: str, scope: Scope, filter: str,
                     attributes: list[str]) -> Iterator[Entry]:
        """Every entry of a paged search (in no particular order); raise TransportError."""
        ...

    def read(self, dn: str, attributes: list[str], filter: str = "(objectClass=*)",
             ) -> dict[str, list[bytes]] | None:
        """One entry by DN (a base-scope search), or None when it does not exist."""
        ...

    def close(self) -> None:
        """Unbind and close the connection."""
        ...


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect and bind; secrets are only ever passed, never printed."""

    url: str
    start_tls: bool = False
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    bind_dn: str | None = None
    password: str | None = field(default=None, repr=False)
    sasl_external: bool = False
    allow_insecure: bool = False
    connect_timeout: float = 10.0
    operation_timeout: float = 60.0
    page_size: int = 500
    aliases: Aliases = "never"
    referrals: Referrals = "ignore"

    @property
    def host(self) -> str:
        """The host name or address in the URL."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The port, the scheme's default when the URL has none."""
        parts = urlsplit(self.url)
        return parts.port or (636 if parts.scheme.lower() == "ldaps" else 389)

    @property
    def encrypted(self) -> bool:
        """True for ldaps:// and for StartTLS."""
        return self.url.lower().startswith("ldaps://") or self.start_tls

    def check_insecure(self) -> None:
        """Refuse a clear-text simple bind with a password to a host that is not loopback."""
        if self.encrypted or self.allow_insecure or self.sasl_external or not self.password:
            return
        if not is_loopback(self.host):
            raise TransportError(
                f"refusing a clear-text simple bind to {self.host}: use ldaps:// or "
                "start_tls: true (or allow_insecure: true)")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _detail(exc: Exception) -> str:
    """The library's message on one line, without the tuple wrapping ldap3 adds, its
    secrets masked (text from outside: syncd.secrets)."""
    text = secrets.redact(" ".join(str(exc).split())) or type(exc).__name__
    text = _SSL_SOURCE.sub("", text)
    return _WRAPPING.sub("", text) or type(exc).__name__


_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)?")
_WRAPPING = re.compile(r"""^[\s("',]+|[\s)"',]+$""")


def _classify(exc: Exception, doing: str) -> TransportError:
    """One line saying what failed; network and busy errors are transient."""
    detail = _detail(exc)
    if isinstance(exc, lx.LDAPInvalidCredentialsResult):
        return TransportError(f"bind refused: invalid credentials ({doing})")
    if isinstance(exc, lx.LDAPSizeLimitExceededResult):
        return TransportError(f"size limit exceeded ({doing}): the answer is incomplete")
    if isinstance(exc, lx.LDAPTimeLimitExceededResult):
        return TransportError(f"time limit exceeded ({doing}): the answer is incomplete")
    if isinstance(exc, lx.LDAPAdminLimitExceededResult):
        return TransportError(f"administrative limit exceeded ({doing})")
    if isinstance(exc, lx.LDAPReferralResult):
        return TransportError(f"unexpected referral ({doing}): point the connector at the "
                              "server that holds the entries")
    if isinstance(exc, lx.LDAPNoSuchObjectResult):
        return TransportError(f"no such entry ({doing})")
    if isinstance(exc, lx.LDAPBusyResult | lx.LDAPUnavailableResult):
        return TransportError(f"server busy or unavailable ({doing}): {detail}", transient=True)
    if isinstance(exc, lx.LDAPResponseTimeoutError):
        return TransportError(f"operation timed out ({doing})", transient=True)
    if isinstance(exc, lx.LDAPStartTLSError | ssl.SSLError) or "ssl" in detail.lower() \
            or "certificate" in detail.lower():
        return TransportError(f"TLS failed ({doing}): {detail}")
    if isinstance(exc, lx.LDAPSocketOpenError):
        return TransportError(f"cannot connect ({doing}): {detail}", transient=True)
    if isinstance(exc, lx.LDAPCommunicationError | lx.LDAPSessionTerminatedByServerError
                  | OSError):
        return TransportError(f"connection lost ({doing}): {detail}", transient=True)
    return TransportError(f"{doing} failed: {detail}")


def message_ends(buf: bytes | bytearray) -> list[int]:
    """Where each whole LDAP message at the start of ``buf`` ends (BER definite lengths).

    Stops at the first message that is not all there yet, and at anything that is not an
    LDAPMessage (it goes to ldap3's decoder, which rejects it).
    """
    ends: list[int] = []
    pos, size = 0, len(buf)
    while pos + 2 <= size:
        first = buf[pos + 1]
        if buf[pos] != 0x30:
            ends.append(size)
            break
        if first < 0x80:
            stop = pos + 2 + first
        else:
            n = first & 0x7F
            if pos + 2 + n > size:
                break
            stop = pos + 2 + n + int.from_bytes(buf[pos + 2:pos + 2 + n], "big")
        if stop > size:
            break
        ends.append(stop)
        pos = stop
    return ends


def decode_entry(buf: bytes, start: int = 0, end: int | None = None,
                 ) -> tuple[int, dict[str, Any]] | None:
    """The searchResEntry message without controls at ``buf[start:end]`` (the whole of
    ``buf`` by default) as (message id, entry), else None.

    The entry holds the DN as text and raw values under lower-case attribute names. Any
    other message, or anything unexpected, gives None and goes through ldap3's decoder.
    BER lengths are read inline: this runs once for every entry of every search.
    """
    if end is None:
        end = len(buf)
    try:
        if buf[start] != 0x30:
            return None
        b = buf[start + 1]
        if b < 0x80:
            i = start + 2
            length = b
        else:
            n = b & 0x7F
            length = int.from_bytes(buf[start + 2:start + 2 + n], "big")
            i = start + 2 + n
        if i + length != end:  # one whole message, nothing more or less
            return None
        if buf[i] != 0x02:
            return None
        length = buf[i + 1]  # a message id takes at most 4 octets: short form
        if length > 4:
            return None
        message_id = int.from_bytes(buf[i + 2:i + 2 + length], "big", signed=True)
        i += 2 + length
        if buf[i] != 0x64:  # [APPLICATION 4] searchResEntry
            return None
        b = buf[i + 1]
        if b < 0x80:
            i += 2
            length = b
        else:
            n = b & 0x7F
            length = int.from_bytes(buf[i + 2:i + 2 + n], "big")
            i += 2 + n
        if i + length != end:  # controls follow
            return None
        if buf[i] != 0x04:
            return None
        b = buf[i + 1]
        if b < 0x80:
            i += 2
            length = b
        else:
            n = b & 0x7F
            length = int.from_bytes(buf[i + 2:i + 2 + n], "big")
            i += 2 + n
        dn = buf[i:i + length].decode("utf-8", "replace")
        i += length
        if buf[i] != 0x30:
            return None
        b = buf[i + 1]
        if b < 0x80:
            i += 2
            attrs_end = i + b
        else:
            n = b & 0x7F
            attrs_end = i + 2 + n + int.from_bytes(buf[i + 2:i + 2 + n], "big")
            i += 2 + n
        if attrs_end != end:
            return None
        attrs: dict[str, list[bytes]] = {}
        while i < attrs_end:
            if buf[i] != 0x30:
                return None
            b = buf[i + 1]
            if b < 0x80:
                i += 2
                partial_end = i + b
            else:
                n = b & 0x7F
                partial_end = i + 2 + n + int.from_bytes(buf[i + 2:i + 2 + n], "big")
                i += 2 + n
            if buf[i] != 0x04:
                return None
            length = buf[i + 1]
            if length >= 0x80:  # attribute names are short
                return None
            name = buf[i + 2:i + 2 + length].decode("ascii", "replace").lower()
            i += 2 + length
            if buf[i] != 0x31:
                return None
            b = buf[i + 1]
            if b < 0x80:
                i += 2
                set_end = i + b
            else:
                n = b & 0x7F
                set_end = i + 2 + n + int.from_bytes(buf[i + 2:i + 2 + n], "big")
                i += 2 + n
            if set_end != partial_end:  # a partial attribute is its type and its values
                return None
            values: list[bytes] = []
            append = values.append
            while i < set_end:
                if buf[i] != 0x04:
                    return None
                b = buf[i + 1]
                if b < 0x80:
                    i += 2
                    append(buf[i:i + b])
                    i += b
                else:
                    n = b & 0x7F
                    length = int.from_bytes(buf[i + 2:i + 2 + n], "big")
                    i += 2 + n
                    append(buf[i:i + length])
                    i += length
            if i != set_end:
                return None
            attrs[name] = values
        if i != attrs_end:
            return None
    except IndexError:
        return None
    return message_id, {"type": "searchResEntry", "dn": dn, "raw_attributes": attrs}


# Bytes asked of the socket at a time (ldap3 asks 4,096): a page of entries is often
# hundreds of kilobytes.
RECEIVE_SIZE = 1 << 16


class _RawSyncStrategy(SyncStrategy):  # type: ignore[misc]
    """ldap3's synchronous strategy, decoding search entries to raw values only.

    ldap3 builds every entry twice (raw bytes, and text through a per-value config lookup)
    with a general BER decoder, and cuts each message off its receive buffer with a copy of
    the rest; on a large directory that is most of the run. Here messages are cut by offset
    and entries decoded in one pass; every other message goes the usual way. There is no
    SASL security layer to unwrap: syncd binds simple, anonymous or with SASL EXTERNAL.
    """

    def decode_response_fast(self, ldap_message: dict[str, Any]) -> dict[str, Any]:
        if ldap_message["protocolOp"] != 4 or ldap_message["controls"]:
            result: dict[str, Any] = super().decode_response_fast(ldap_message)
            return result
        dn, attributes = ldap_message["payload"][0][3], ldap_message["payload"][1][3]
        return {"type": "searchResEntry", "dn": bytes(dn).decode("utf-8", "replace"),
                "raw_attributes": {
                    bytes(a[3][0][3]).decode("ascii", "replace").lower():
                        [bytes(v[3]) for v in a[3][1][3]] for a in attributes}}

    def _receive(self) -> bytes:
        """The next bytes from the socket (empty when the server closed it); errors as
        ldap3's ``receiving`` raises them."""
        try:
            data: bytes = self.connection.socket.recv(RECEIVE_SIZE)
        except (OSError, AttributeError) as exc:
            self.connection.last_error = f"error receiving data: {exc}"
            with contextlib.suppress(OSError, lx.LDAPExceptionError):
                self.close()
            raise lx.communication_exception_factory(lx.LDAPSocketReceiveError, type(exc)(
                str(exc)))(self.connection.last_error) from None
        return data

    def _get_response(self, message_id: int, timeout: int) -> Any:
        """ldap3's SyncStrategy._get_response (2.9.1), with messages cut by offset and
        entries decoded by ``decode_entry``."""
        out: list[Any] = []
        pending = bytearray()
        while True:
            data = self._receive()
            if not data:
                return SESSION_TERMINATED_BY_SERVER
            pending += data
            ends = message_ends(pending)
            if not ends:
                continue
            with memoryview(pending) as view:
                block = bytes(view[:ends[-1]])
            del pending[:ends[-1]]
            complete = False
            start = 0
            for stop in ends:
                fast = decode_entry(block, start, stop)
                if fast is not None and fast[0] == message_id:
                    out.append(fast[1])
                    start = stop
                    continue
                response = block[start:stop]
                start = stop
                try:
                    ldap_resp = decode_message_fast(response)
                    decoded = self.decode_response_fast(ldap_resp)
                except (KeyError, IndexError, ValueError, TypeError) as exc:
                    # garbage on the wire: treat it as a broken connection
                    self.connection.last_error = f"malformed message from the server ({exc!r})"
                    raise lx.LDAPSocketReceiveError(self.connection.last_error) from None
                got = int(ldap_resp["messageID"])
                if got == message_id:
                    out.append(decoded)
                    if decoded["type"] not in ("searchResEntry", "searchResRef",
                                               "intermediateResponse"):
                        complete = True
                elif got == 0 and decoded.get("responseName") == NOTICE_OF_DISCONNECTION:
                    return SESSION_TERMINATED_BY_SERVER
                else:
                    self.connection.last_error = "invalid or unsolicited message received"
                    raise lx.LDAPSocketReceiveError(self.connection.last_error)
            if complete:
                out.append(RESPONSE_COMPLETE)
                return out


def _use_raw_strategy(conn: Connection) -> None:
    """Swap in the raw strategy; Connection keeps bound methods of its strategy, so rebind."""
    strategy = _RawSyncStrategy(conn)
    conn.strategy = strategy
    conn.send = strategy.send
    conn.open = strategy.open
    conn.get_response = strategy.get_response
    conn.post_send_single_response = strategy.post_send_single_response
    conn.post_send_search = strategy.post_send_search


class Ldap3Transport:
    """A Transport on ldap3: raw values, no schema, every search paged."""

    def __init__(self, endpoint: Endpoint) -> None:
        endpoint.check_insecure()
        self.endpoint = endpoint
        self.references = References()
        self._deref = _DEREF[endpoint.aliases]
        self.conn = self._connect(endpoint)

    @staticmethod
    def _tls(ep: Endpoint) -> Tls:
        # ldap3's Tls() defaults to CERT_NONE: always say what we want.
        return Tls(validate=ssl.CERT_REQUIRED if ep.verify else ssl.CERT_NONE,
                   ca_certs_file=ep.ca_file, local_certificate_file=ep.cert_file,
                   local_private_key_file=ep.key_file, sni=ep.host)

    def _connect(self, ep: Endpoint) -> Connection:
        ldaps = ep.url.lower().startswith("ldaps://")
        server = Server(ep.host, port=ep.port, use_ssl=ldaps, tls=self._tls(ep), get_info=NONE,
                        connect_timeout=max(1, round(ep.connect_timeout)))
        if ep.sasl_external:
            # An empty authorisation identity: with None ldap3 sends no credentials
            # and slapd answers saslBindInProgress.
            auth: dict[str, object] = {"authentication": SASL, "sasl_mechanism": EXTERNAL,
                                       "sasl_credentials": ""}
        elif ep.bind_dn:
            auth = {"authentication": SIMPLE, "user": ep.bind_dn, "password": ep.password}
        else:
            auth = {"authentication": ANONYMOUS}
        conn = Connection(server, receive_timeout=max(1, round(ep.operation_timeout)),
                          auto_referrals=False, check_names=False, raise_exceptions=True,
                          read_only=True, return_empty_attributes=False, auto_range=False,
                          **auth)
        _use_raw_strategy(conn)
        try:
            conn.open()
            if ep.start_tls:
                conn.start_tls()
            conn.bind()
        except (lx.LDAPException, OSError) as exc:
            _close_quietly(conn)
            raise _classify(exc, f"connecting to {ep.host}:{ep.port}") from None
        return conn

    def search_paged(self, base: str, scope: Scope, filter: str,
                     attributes: list[str]) -> Iterator[Entry]:
        """Every entry of a paged search; pages come back in any order (ldap3 reverses)."""
        conn = self.conn
        cookie: bytes | None = None
        doing = f"searching {base or 'the root'!r} for {filter}"
        time_limit = max(1, int(self.endpoint.operation_timeout))
        while True:
            try:
                conn.search(base, filter, _SCOPES[scope], attributes=attributes or
                            [NO_ATTRIBUTES], paged_size=self.endpoint.page_size,
                            paged_cookie=cookie, time_limit=time_limit,
                            dereference_aliases=self._deref)
            except (lx.LDAPException, OSError) as exc:
                raise _classify(exc, doing) from None
            # Take the page and its cookie now: the caller may read other entries on this
            # connection (AD ranges, outside members) before asking for the next page.
            response, result = conn.response or [], conn.result
            conn.response = None
            _check_result(result, doing)
            controls = (result or {}).get("controls") or {}
            cookie = controls.get(PAGED_RESULTS_OID, {}).get("value", {}).get("cookie")
            references: list[list[str]] = []
            for item in response:
                kind = item.get("type")
                if kind == "searchResEntry":
                    yield item["dn"], item["raw_attributes"]
                elif kind == "searchResRef":
                    references.append(item.get("uri") or [])
            if references:
                self._met(references, doing)
            if not cookie:
                return

    def read(self, dn: str, attributes: list[str], filter: str = "(objectClass=*)",
             ) -> dict[str, list[bytes]] | None:
        """One entry by DN, or None when it does not exist or does not match ``filter``."""
        try:
            self.conn.search(dn, filter, BASE, attributes=attributes or [NO_ATTRIBUTES],
                             time_limit=max(1, int(self.endpoint.operation_timeout)),
                             dereference_aliases=self._deref)
        except lx.LDAPNoSuchObjectResult:
            return None
        except (lx.LDAPException, OSError) as exc:
            raise _classify(exc, f"reading {dn!r}") from None
        _check_result(self.conn.result, f"reading {dn!r}")
        response = self.conn.response or []
        # A base-scope search has no continuation references (RFC 4511 4.5.3); should a
        # server send one anyway, it is treated as in any other search.
        references = [item.get("uri") or [] for item in response
                      if item.get("type") == "searchResRef"]
        if references:
            self._met(references, f"reading {dn!r}")
        for item in response:
            if item.get("type") == "searchResEntry":
                attrs: dict[str, list[bytes]] = item["raw_attributes"]
                return attrs
        return None

    def _met(self, references: list[list[str]], doing: str) -> None:
        """Count the continuation references of one answer, or refuse them (``referrals:
        fail``). They are never followed: what they point at is another partition or
        server, not the one configured."""
        cleaned = [[_one_line(uri) for uri in uris] for uris in references]
        if self.endpoint.referrals == "fail":
            shown = ", ".join(dict.fromkeys(u for uris in cleaned for u in uris)) or "no URI"
            several = len(references) > 1
            raise TransportError(
                f"continuation reference{'s' if several else ''} to {shown} ({doing}): not "
                f"followed, and referrals: fail refuses {'them' if several else 'it'}")
        for uris in cleaned:
            self.references.add(uris)

    def close(self) -> None:
        """Unbind; errors on the way out do not matter."""
        _close_quietly(self.conn)


# ldap3 does not raise for these even with raise_exceptions: a partial answer would pass.
_PARTIAL = {
    3: "time limit exceeded ({}): the answer is incomplete",
    4: "size limit exceeded ({}): the answer is incomplete",
    11: "administrative limit exceeded ({}): the answer is incomplete",
}


def _one_line(text: str) -> str:
    """Text from the server (a URI) on one line, secrets masked."""
    return secrets.redact(" ".join(str(text).split()))


def _check_result(result: dict[str, object] | None, doing: str) -> None:
    """Raise unless the operation ended in success."""
    code = (result or {}).get("result", 0)
    if code == 0:
        return
    if code == 10:  # not raised either: the search itself was referred, its base is elsewhere
        uris = (result or {}).get("referrals")
        where = f" to {', '.join(map(_one_line, uris))}" if isinstance(uris, list) and uris \
            else ""
        raise TransportError(f"unexpected referral ({doing}){where}: point the connector at "
                             "the server that holds the entries")
    if isinstance(code, int) and code in _PARTIAL:
        raise TransportError(_PARTIAL[code].format(doing))
    description = (result or {}).get("description") or code
    raise TransportError(f"{doing} failed: {description}", transient=code in (51, 52))


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # a broken connection: nothing left to close
        conn.unbind()
