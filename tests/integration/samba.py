"""A real Samba AD DC for tests: provisioned in a tmp dir, LDAP only, TLS with a test CA.

``samba-tool domain provision --server-role=dc --dns-backend=NONE --use-rfc2307`` (about
3 s), then ``samba -i -M single`` in the foreground with ``server services = ldap``, bound to
127.0.0.1. Samba's LDAP ports are fixed (389, 636): one DC per machine at a time.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from slapd import find_binary, issue, make_ca

REALM = "CORP.EXAMPLE"
BASE = "DC=corp,DC=example"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE}"
ADMIN_PW = "Adm1n-Passw0rd!x"
LDAP_PORT, LDAPS_PORT = 389, 636


def samba_problem() -> str | None:
    """Why a Samba DC cannot run here, or None."""
    for name in ("samba", "samba-tool"):
        if find_binary(name) is None:
            return f"{name} is not installed (apt-get install samba samba-ad-provision " \
                   "samba-ad-dc)"
    for port in (LDAP_PORT, LDAPS_PORT):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return f"port {port} on 127.0.0.1 is taken"
    return None


class SambaDc:
    """One provisioned DC in ``workdir``; ``provision()``, then ``start()``."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.target = workdir / "dc"
        self.certs = workdir / "certs"
        self.log = workdir / "samba.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The LDAPS listener."""
        return f"ldaps://127.0.0.1:{LDAPS_PORT}"

    @property
    def ca_file(self) -> Path:
        """The CA of the DC's certificate."""
        return self.certs / "ca.crt"

    def provision(self) -> None:
        """A new domain, LDAP only, with a certificate for 127.0.0.1 from a test CA."""
        self.certs.mkdir(parents=True, exist_ok=True)
        ca = make_ca(self.certs, "ca")
        issue(self.certs, "server", ca, server=True)
        (self.certs / "server.key").chmod(0o600)
        options = {
            "interfaces": "127.0.0.1", "bind interfaces only": "yes",
            "server services": "ldap", "log file": str(self.dir / "log.%m"),
            "tls enabled": "yes", "tls keyfile": str(self.certs / "server.key"),
            "tls certfile": str(self.certs / "server.crt"),
            "tls cafile": str(self.certs / "ca.crt"),
        }
        argv = [str(find_binary("samba-tool")), "domain", "provision", f"--realm={REALM}",
                "--domain=CORP", "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
                f"--adminpass={ADMIN_PW}", f"--targetdir={self.target}", "--host-name=dc1",
                *(f"--option={k}={v}" for k, v in options.items())]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"samba-tool domain provision failed: {proc.stderr[-2000:]}")

    def start(self, timeout: float = 60.0) -> None:
        """Start samba and wait until an LDAPS bind as the administrator works."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(find_binary("samba")), "-i", "-M", "single", "-s",
                 str(self.target / "etc" / "smb.conf")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"samba exited with {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            try:
                self.connection().unbind()
                return
            except Exception:  # not up yet
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("samba did not answer within the timeout")

    def connection(self) -> Any:
        """An ldap3 connection bound as the administrator over LDAPS (for test data)."""
        from ldap3 import Connection, Server, Tls

        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca_file))
        return Connection(Server("127.0.0.1", port=LDAPS_PORT, use_ssl=True, tls=tls,
                                 connect_timeout=5), ADMIN_DN, ADMIN_PW,
                          raise_exceptions=True, auto_bind=True, receive_timeout=60)

    def stop(self) -> None:
        """Stop samba and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def remove(self) -> None:
        """Delete the provisioned files."""
        shutil.rmtree(self.dir, ignore_errors=True)
