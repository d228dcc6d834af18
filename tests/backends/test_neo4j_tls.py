"""TLS on Bolt with a CA of our own: a real Neo4j 5 with TLS required on Bolt, its
certificate signed by a CA made here (openssl); ``store.ca_file`` naming that CA connects,
another CA is refused with a clear error, and a plain connection gets nowhere."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from tests.neo4j_server import Neo4jServer, Neo4jUnavailable
from ursprung_graph.config import Settings
from ursprung_graph.store import open_store
from ursprung_graph.store.base import StoreError, StoreUnavailable
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.neo4j import Neo4jStore

ONE = Cypher("RETURN 1 AS one")
OPENSSL = shutil.which("openssl")


def openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(bolt+s URL, the right CA, a wrong CA) of a Neo4j that requires TLS on Bolt."""
    if OPENSSL is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    make_ca(d, "ca")
    make_ca(d, "other")
    bolt = d / "bolt"
    (bolt / "trusted").mkdir(parents=True)
    (bolt / "revoked").mkdir()
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "bolt/private.key", cwd=d)
    openssl("req", "-new", "-key", "bolt/private.key", "-subj", "/CN=127.0.0.1",
            "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", "bolt/public.crt", cwd=d)
    server = Neo4jServer(d / "data", settings=[
        "dbms.ssl.policy.bolt.enabled=true", f"dbms.ssl.policy.bolt.base_directory={bolt}",
        "dbms.ssl.policy.bolt.private_key=private.key",
        "dbms.ssl.policy.bolt.public_certificate=public.crt",
        "dbms.ssl.policy.bolt.client_auth=NONE", "server.bolt.tls_level=REQUIRED"],
        driver_options={"encrypted": True,
                        "trusted_certificates": neo4j.TrustCustomCAs(str(d / "ca.crt"))})
    try:
        target = server.start()
    except Neo4jUnavailable as exc:
        pytest.fail(f"no Neo4j with TLS: {exc}", pytrace=False)
    try:
        yield target.uri.replace("bolt://", "bolt+s://"), d / "ca.crt", d / "other.crt"
    finally:
        server.stop()


def test_the_right_ca_connects_through_the_settings(tls_server: tuple[str, Path, Path],
                                                     tmp_path: Path) -> None:
    url, ca, _ = tls_server
    store = open_store(Settings(home=tmp_path, store_url=url, graph="neo4j",
                                store_ca_file=str(ca)))
    assert store.read(ONE) == [{"one": 1}]
    store.close()


def test_a_wrong_ca_is_refused_with_a_clear_error(tls_server: tuple[str, Path, Path]) -> None:
    url, _, other = tls_server
    store = Neo4jStore(url, ca_file=str(other), connection_timeout=10,
                       max_transaction_retry_time=1)
    with pytest.raises(StoreError, match="TLS certificate is not trusted") as refused:
        store.read(ONE)
    assert not isinstance(refused.value, StoreUnavailable)  # retrying would not help
    assert "store.ca_file" in str(refused.value)
    store.close()


def test_plain_bolt_gets_nowhere(tls_server: tuple[str, Path, Path]) -> None:
    url, _, _ = tls_server
    store = Neo4jStore(url.replace("bolt+s://", "bolt://"), connection_timeout=5,
                       max_transaction_retry_time=1)
    with pytest.raises(StoreError):
        store.read(ONE)
    store.close()


def test_a_ca_file_needs_a_tls_url(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("")
    for url in ("bolt://127.0.0.1:1", "neo4j+ssc://127.0.0.1:1"):
        with pytest.raises(StoreError, match="use neo4j\\+s:// or bolt\\+s://"):
            Neo4jStore(url, ca_file=str(tmp_path / "ca.crt"))
    with pytest.raises(StoreError, match="not a readable file"):
        Neo4jStore("bolt+s://127.0.0.1:1", ca_file=str(tmp_path / "missing.crt"))
