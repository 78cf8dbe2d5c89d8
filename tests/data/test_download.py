"""Downloads from a real local HTTP server serving small files in the real formats:
checksummed, atomic, unpacked safely; a clear message when the server cannot be reached."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest

from data_formats import write_idx
from runlab.data import download as dl
from runlab.errors import ConfigError
from runlab.registry import DATASETS


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on localhost serving tmp_path/www; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve_mnist(www, monkeypatch, n=12):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28))
    for name, arr in (("train-images-idx3-ubyte", imgs), ("train-labels-idx1-ubyte", np.arange(n) % 10),
                      ("t10k-images-idx3-ubyte", imgs[:4]), ("t10k-labels-idx1-ubyte", np.arange(4))):
        write_idx(www / name, arr, gz=True)
    res = dl.RESOURCES["mnist"]
    monkeypatch.setitem(dl.RESOURCES, "mnist", dataclasses.replace(
        res, files={f: md5(www / f) for f in res.files}))
    return imgs


def test_mnist_downloads_checksummed_files_then_reads_them(tmp_path, server, monkeypatch):
    www, url = server
    imgs = serve_mnist(www, monkeypatch)
    monkeypatch.setenv(dl.MIRROR_ENV, url)
    raw = DATASETS.get("mnist").obj(root=tmp_path / "data")
    assert raw.x.shape == (12, 1, 28, 28) and raw.x_test.shape == (4, 1, 28, 28)
    assert np.allclose(raw.x[5, 0].numpy(), imgs[5] / 255.0)
    got = sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir())
    assert got == sorted(dl.RESOURCES["mnist"].files)  # no temporary files left behind


def test_checksum_mismatch_keeps_nothing(tmp_path, server, monkeypatch):
    www, url = server
    serve_mnist(www, monkeypatch)
    (www / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01tampered"))
    with pytest.raises(ConfigError) as e:
        DATASETS.get("mnist").obj(root=tmp_path / "data", mirror=url)
    msg = str(e.value)
    assert f"checksum mismatch for {url}t10k-images-idx3-ubyte.gz" in msg and "not kept" in msg
    left = sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir())
    assert left == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]  # checked, kept


def test_offline_message_names_files_urls_and_folder(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}/x"
    with pytest.raises(ConfigError) as e:
        DATASETS.get("fashion_mnist").obj(root=tmp_path / "data", mirror=mirror)
    msg = str(e.value)
    assert "cannot download dataset 'fashion_mnist' into " + str(tmp_path / "data" / "fashion_mnist") in msg
    assert f"{mirror}/train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "RUNLAB_DATA_MIRROR" in msg


def test_cifar10_archive_is_checked_and_unpacked_safely(tmp_path, server, monkeypatch):
    www, url = server
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": [1, 2, 3],
                     "batch_label": name, "filenames": ["a", "b", "c"]}
            add(f"cifar-10-batches-py/{name}", pickle.dumps(batch, protocol=2))
        add("../escaped", b"outside the data root")
    (www / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    monkeypatch.setitem(dl.RESOURCES, "cifar10", dataclasses.replace(
        dl.RESOURCES["cifar10"], files={"cifar-10-python.tar.gz": md5(www / "cifar-10-python.tar.gz")}))
    raw = DATASETS.get("cifar10").obj(root=tmp_path / "data", mirror=url)
    assert raw.x.shape == (15, 3, 32, 32) and raw.y_test.tolist() == [1, 2, 3]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "data" / "escaped").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-batches-py"]
