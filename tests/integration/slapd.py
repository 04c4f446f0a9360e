"""A real OpenLDAP ``slapd`` for tests: its own cn=config, mdb database, TLS and free ports.

``Slapd(workdir)`` writes a CA, a server certificate for 127.0.0.1 and a client certificate,
builds cn=config with ``slapadd -n0`` (schemas core, cosine, inetorgperson, nis and the bench
nsAccountLock schema), loads data with ``slapadd`` while stopped, and runs
``slapd -h "ldap://127.0.0.1:PORT/ ldaps://127.0.0.1:PORT2/"`` in the foreground.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIRS = [Path("/usr/lib/ldap"), Path("/usr/lib/openldap"), Path("/usr/libexec/openldap")]
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "s3cret-Root-pw"
LIMITED_DN = f"cn=limited,{SUFFIX}"  # a bind DN with a size limit of 5 entries
LIMITED_PW = "limited-pw"


def find_binary(name: str) -> str | None:
    """The path of ``name`` on PATH or in the sbin directories."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))


def make_ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA written to DIRECTORY/NAME.crt and .key."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write(directory / name, cert, key)
    return cert, key


def issue(directory: Path, name: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
          *, server: bool) -> None:
    """A leaf certificate for 127.0.0.1/localhost (server) or a client, signed by ``ca``."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(
        ca[0].subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    _write(directory / name, builder.sign(ca[1], hashes.SHA256()), key)


class Slapd:
    """One slapd instance in ``workdir``; call ``setup()``, then ``start()``."""

    def __init__(self, workdir: Path, *, max_size: int = 1 << 30) -> None:
        self.dir = workdir
        self.conf = workdir / "slapd.d"
        self.db = workdir / "db"
        self.certs = workdir / "certs"
        self.port = free_port()
        self.tls_port = free_port()
        self.max_size = max_size
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "slapd.log"

    # -- addresses ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The plain (StartTLS-capable) listener."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """The TLS listener."""
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the server certificate."""
        return self.certs / "ca.crt"

    @property
    def other_ca_file(self) -> Path:
        """A CA that signed nothing the server uses."""
        return self.certs / "other-ca.crt"

    # -- setup -------------------------------------------------------------------------

    def _module_dir(self) -> Path | None:
        for d in MODULE_DIRS:
            if any(d.glob("back_mdb*")):
                return d
        return None

    def config_ldif(self) -> str:
        """cn=config for slapadd -n0."""
        modules = self._module_dir()
        module_entry = (f"dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\n"
                        f"cn: module{{0}}\nolcModulePath: {modules}\nolcModuleLoad: back_mdb\n\n"
                        if modules else "")
        includes = [SCHEMA_DIR / f"{n}.ldif" for n in ("core", "cosine", "inetorgperson", "nis")]
        includes.append(REPO / "bench" / "nsaccountlock.ldif")
        c = self.certs
        return (
            "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n"
            f"olcPidFile: {self.dir / 'slapd.pid'}\n"
            f"olcTLSCACertificateFile: {c / 'ca.crt'}\n"
            f"olcTLSCertificateFile: {c / 'server.crt'}\n"
            f"olcTLSCertificateKeyFile: {c / 'server.key'}\n"
            "olcTLSVerifyClient: try\n\n"
            + module_entry
            + "dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n"
            + "".join(f"include: file://{p}\n\n" for p in includes)
            + "dn: olcDatabase={-1}frontend,cn=config\nobjectClass: olcDatabaseConfig\n"
            "objectClass: olcFrontendConfig\nolcDatabase: {-1}frontend\n"
            "olcAccess: {0}to * by * read\n\n"
            "dn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\n"
            "olcDatabase: {0}config\nolcAccess: {0}to * by * none\n\n"
            "dn: olcDatabase={1}mdb,cn=config\nobjectClass: olcDatabaseConfig\n"
            "objectClass: olcMdbConfig\nolcDatabase: {1}mdb\n"
            f"olcSuffix: {SUFFIX}\nolcRootDN: {ROOT_DN}\nolcRootPW: {ROOT_PW}\n"
            f"olcDbDirectory: {self.db}\nolcDbMaxSize: {self.max_size}\n"
            "olcDbIndex: objectClass eq\nolcDbIndex: entryUUID eq\n"
            f'olcLimits: {{0}}dn.exact="{LIMITED_DN}" size=5 size.pr=noEstimate '
            "size.prtotal=5\n"
            "olcLimits: {1}* size=unlimited size.pr=unlimited size.prtotal=unlimited\n"
            "olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none\n"
            "olcAccess: {1}to * by * read\n\n"
        )

    def setup(self, data: str | Path | None = None) -> None:
        """Certificates, cn=config and (optionally) the initial data, loaded with slapadd."""
        for d in (self.conf, self.db, self.certs):
            d.mkdir(parents=True, exist_ok=True)
        ca = make_ca(self.certs, "ca")
        issue(self.certs, "server", ca, server=True)
        issue(self.certs, "client", ca, server=False)
        make_ca(self.certs, "other-ca")
        (self.dir / "config.ldif").write_text(self.config_ldif(), encoding="utf-8")
        self._slapadd(["-n0", "-l", str(self.dir / "config.ldif")])
        if data is not None:
            self.load(data)

    def load(self, data: str | Path, *, quick: bool = True) -> None:
        """Add entries with slapadd (the server must be stopped)."""
        assert self.proc is None, "slapadd needs the server stopped"
        path = data if isinstance(data, Path) else self.dir / f"load-{time.monotonic_ns()}.ldif"
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        self._slapadd([*(["-q"] if quick else []), "-b", SUFFIX, "-l", str(path)])

    def _slapadd(self, args: list[str]) -> None:
        slapadd = find_binary("slapadd")
        assert slapadd, "slapadd is not installed"
        proc = subprocess.run([slapadd, "-F", str(self.conf), *args], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"slapadd {' '.join(args)} failed: {proc.stderr.strip()}")

    # -- running -----------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Start slapd and wait until it answers a search."""
        slapd = find_binary("slapd")
        assert slapd, "slapd is not installed"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [slapd, "-d", "0", "-h", f"{self.url}/ {self.ldaps_url}/", "-F", str(self.conf)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("slapd did not answer within the timeout")

    def _answers(self) -> bool:
        from ldap3 import BASE, Connection, Server

        try:
            conn = Connection(Server("127.0.0.1", port=self.port, connect_timeout=1),
                              ROOT_DN, ROOT_PW, receive_timeout=2)
            conn.bind()
            ok = conn.search(SUFFIX, "(objectClass=*)", BASE) or conn.result.get(
                "result") == 32
            conn.unbind()
            return bool(ok)
        except Exception:  # not up yet
            return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop slapd (SIGKILL with ``kill``, else SIGTERM) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Kill slapd at once, as a crash would."""
        self.stop(kill=True)

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.proc is not None and self.proc.poll() is None

    def connection(self) -> object:
        """An ldap3 connection bound as the root DN, for changing data in tests."""
        from ldap3 import Connection, Server

        return Connection(Server("127.0.0.1", port=self.port), ROOT_DN, ROOT_PW,
                          raise_exceptions=True, auto_bind=True)


def slapd_problem() -> str | None:
    """Why slapd cannot run here, or None."""
    for name in ("slapd", "slapadd"):
        if find_binary(name) is None:
            return f"{name} is not installed (apt-get install slapd ldap-utils)"
    if not (SCHEMA_DIR / "core.ldif").exists():
        return f"the OpenLDAP schemas are not in {SCHEMA_DIR}"
    return None
