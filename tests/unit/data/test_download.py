"""fetch() against a loopback HTTP server (never the internet): good file, hash mismatch, 404, offline."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import DATASETS, cifar, idx
from miaudit.data.download import Remote, fetch
from miaudit.errors import DataError

PAYLOAD = b"some dataset bytes\n" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    """Serves ``files`` (path -> bytes) on 127.0.0.1 at a free port; counts requests."""
    files: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield base, files, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_good_download(tmp_path, server):
    base, files, _ = server
    files["/data.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "data.bin"
    assert fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, timeout=5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["data.bin"]  # no temporary file left behind


def test_existing_file_with_the_right_hash_is_not_downloaded_again(tmp_path, server):
    base, files, hits = server
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    fetch(f"{base}/data.bin", dest, PAYLOAD_SHA.upper(), timeout=5)
    assert hits == []
    dest.write_bytes(b"something else")
    with pytest.raises(DataError, match="exists but its SHA-256 is .*delete it"):
        fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, timeout=5)


def test_hash_mismatch_is_refused_and_deleted(tmp_path, server):
    base, files, _ = server
    files["/data.bin"] = PAYLOAD + b"tampered"
    dest = tmp_path / "data.bin"
    with pytest.raises(DataError) as e:
        fetch(f"{base}/data.bin", dest, PAYLOAD_SHA, timeout=5)
    msg = str(e.value)
    assert PAYLOAD_SHA in msg and hashlib.sha256(PAYLOAD + b"tampered").hexdigest() in msg
    assert leftovers(tmp_path) == []


def test_404(tmp_path, server):
    base, _, _ = server
    dest = tmp_path / "missing.bin"
    with pytest.raises(DataError, match=f"HTTP 404.*put it at {dest}"):
        fetch(f"{base}/missing.bin", dest, PAYLOAD_SHA, timeout=5)
    assert leftovers(tmp_path) == []


def test_offline_says_which_file_to_put_where(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "cifar-10-binary.tar.gz"
    with pytest.raises(DataError, match=f"put cifar-10-binary.tar.gz in {tmp_path}"):
        fetch(f"http://127.0.0.1:{port}/x", dest, PAYLOAD_SHA, timeout=5)
    assert leftovers(tmp_path) == []


def test_no_pinned_hash_no_download(tmp_path, server):
    base, files, hits = server
    files["/data.bin"] = PAYLOAD
    with pytest.raises(DataError, match="no pinned SHA-256"):
        fetch(f"{base}/data.bin", tmp_path / "data.bin", None, timeout=5)
    assert hits == [] and leftovers(tmp_path) == []
    with pytest.raises(DataError, match="only http and https"):
        fetch("file:///etc/passwd", tmp_path / "p", PAYLOAD_SHA)


def test_every_pinned_hash_is_a_sha256():
    remotes = [cifar.CIFAR10_BINARY, cifar.CIFAR100_BINARY, *idx.FASHION_REMOTES, *idx.MNIST_REMOTES]
    for r in remotes:
        assert r.sha256 is not None and len(r.sha256) == 64 and int(r.sha256, 16) >= 0
        assert r.url.startswith("https://") and r.url.endswith(r.filename)


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def test_idx_loader_downloads_only_when_asked(tmp_path, server, monkeypatch):
    base, files, hits = server
    arrays = [np.full((2, 28, 28), 255), np.array([1, 2]), np.zeros((1, 28, 28)), np.array([3])]
    remotes = []
    for (_, name), arr in zip(idx._PARTS, arrays):
        body = gzip.compress(_idx(arr))
        files[f"/{name}.gz"] = body
        remotes.append(Remote(f"{name}.gz", f"{base}/{name}.gz", hashlib.sha256(body).hexdigest()))
    monkeypatch.setattr(idx, "MNIST_REMOTES", tuple(remotes))
    spec = DATASETS.get("mnist")
    with pytest.raises(DataError, match="download: true"):
        spec.load(spec.params(), tmp_path, 0)
    assert hits == []
    ds = spec.load(spec.params(download=True, timeout=5), tmp_path, 0)
    np.testing.assert_array_equal(ds.y, [1, 2, 3])
    assert ds.x[:2].min() == 1.0 and ds.x[2].max() == 0.0
    assert len(hits) == 4
    ds = spec.load(spec.params(download=True, timeout=5), tmp_path, 0)  # now on disk: no new requests
    assert len(hits) == 4


def test_cifar_loader_downloads_the_binary_archive(tmp_path, server, monkeypatch):
    import io
    import tarfile

    base, files, _ = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
            record = bytes([i]) + bytes(3072)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(record)
            tar.addfile(info, io.BytesIO(record))
    body = buf.getvalue()
    files["/cifar-10-binary.tar.gz"] = body
    remote = Remote("cifar-10-binary.tar.gz", f"{base}/cifar-10-binary.tar.gz", hashlib.sha256(body).hexdigest())
    monkeypatch.setattr(cifar, "CIFAR10", dataclasses.replace(cifar.CIFAR10, bin_archive=remote))
    spec = DATASETS.get("cifar10")
    ds = spec.load(spec.params(download=True, timeout=5), tmp_path, 0)
    np.testing.assert_array_equal(ds.y, [0, 1, 2, 3, 4, 5])
    assert (tmp_path / "cifar-10-binary.tar.gz").is_file()
