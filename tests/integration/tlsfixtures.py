"""TLS servers for integration tests: a local certificate authority and the certificates the
tests need (valid, renewed, expired, for the wrong name), made with python3-cryptography; a
TLS server on 127.0.0.1 that picks its certificate by SNI and can swap it while running; a
port that accepts TCP and never speaks. Everything is stopped by the fixtures, also when a
test fails."""

import datetime
import os
import socket
import ssl
import tempfile
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


class Cert:
    """A certificate and its key, written as PEM files in `folder`."""

    def __init__(self, folder, name, cert, key):
        self.cert = cert
        self.key = key
        self.cert_path = os.path.join(folder, f"{name}.crt")
        self.key_path = os.path.join(folder, f"{name}.key")
        with open(self.cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(self.key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    @property
    def sha256(self):
        return self.cert.fingerprint(hashes.SHA256()).hex()

    @property
    def serial_hex(self):
        """Lower-case hex in whole bytes, as the summariser writes it."""
        h = format(self.cert.serial_number, "x")
        return "0" + h if len(h) % 2 else h

    @property
    def not_after(self):
        return self.cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


class Authority:
    """A throwaway CA that signs leaves for the tests."""

    def __init__(self, folder):
        self.folder = folder
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Domain Monitor Test CA"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - datetime.timedelta(days=30))
                .not_valid_after(NOW + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.ca = Cert(folder, "ca", cert, key)
        self.count = 0

    def leaf(self, names, days_before=1, days_after=90, rsa_bits=None):
        """A leaf for `names` (the first is the CN), valid from `days_before` days ago to
        `days_after` days from now (negative: already expired)."""
        self.count += 1
        key = (rsa.generate_private_key(65537, rsa_bits) if rsa_bits
               else ec.generate_private_key(ec.SECP256R1()))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.ca.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW - datetime.timedelta(days=days_before))
                .not_valid_after(NOW + datetime.timedelta(days=days_after))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                               critical=False)
                .sign(self.ca.key, hashes.SHA256()))
        return Cert(self.folder, f"leaf{self.count}", cert, key)


class TlsServer:
    """TLS on 127.0.0.1:port; the certificate is chosen by SNI from `certs` (name -> Cert)
    and can be replaced while the server runs. Each connection gets a handshake, then is
    closed."""

    def __init__(self, certs):
        self.contexts = {}
        self.default = None
        for name, cert in certs.items():
            self.set(name, cert)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _context(self, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
        return ctx

    def set(self, name, cert):
        """Serves `cert` to clients asking for `name` from the next connection on."""
        ctx = self._context(cert)
        self.contexts[name] = ctx
        if self.default is None:
            self.default = self._context(cert)
            self.default.sni_callback = self._pick

    def _pick(self, sslobj, server_name, ctx):
        chosen = self.contexts.get(server_name)
        if chosen is not None:
            sslobj.context = chosen
        return None

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.default.wrap_socket(conn, server_side=True) as s:
                    self.handshakes += 1
                    try:
                        s.unwrap()
                    except (OSError, ssl.SSLError):
                        pass
            except (OSError, ssl.SSLError):
                conn.close()

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(timeout=5)


class SilentPort:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def stop(self):
        self.stopping = True
        self.sock.close()
        for c in self.held:
            c.close()
        self.thread.join(timeout=5)


def refused_port():
    """A port on 127.0.0.1 with nothing listening (connections are refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def authority():
    with tempfile.TemporaryDirectory(prefix="dm-tls-") as d:
        yield Authority(d)


@pytest.fixture
def tls_server_factory():
    made = []

    def make(certs):
        s = TlsServer(certs)
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.stop()


@pytest.fixture
def silent_port():
    s = SilentPort()
    try:
        yield s
    finally:
        s.stop()
