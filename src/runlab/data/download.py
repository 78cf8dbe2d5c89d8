"""Checksummed downloads of the file datasets into `data.root`.

Each file is fetched into a temporary file beside its target, its MD5 compared with the
value the dataset's publishers (and torchvision) list, and only then renamed into place,
so an interrupted or corrupted download never leaves a file that looks complete. CIFAR-10's
archive is checked, then unpacked (regular files under `cifar-10-batches-py/` only) into a
temporary folder that is renamed into place.

`RUNLAB_DATA_MIRROR` (or the dataset's `mirror` parameter) replaces the list of base URLs
with one of your own: a lab cache, or a local `python -m http.server`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from runlab.errors import ConfigError

MIRROR_ENV = "RUNLAB_DATA_MIRROR"
TIMEOUT_S = 30
CHUNK = 1 << 20


@dataclass(frozen=True)
class Resource:
    """Where a dataset's files come from: base URLs tried in order, {file name: MD5}, the
    folder under data.root they go to, and whether they are a tar.gz to unpack."""

    bases: tuple[str, ...]
    files: dict[str, str]
    folder: str
    archive_folder: str | None = None  # the folder a .tar.gz unpacks into

    def urls(self, name: str, mirror: str | None) -> list[str]:
        bases = (mirror,) if mirror else self.bases
        return [b.rstrip("/") + "/" + name for b in bases]


# URLs and MD5 values as torchvision lists them (MNIST's original site answers 403 today).
RESOURCES = {
    "mnist": Resource(
        ("https://ossci-datasets.s3.amazonaws.com/mnist",),
        {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        "mnist"),
    "fashion_mnist": Resource(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion"),
        {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        "fashion_mnist"),
    "cifar10": Resource(
        ("https://www.cs.toronto.edu/~kriz",),
        {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        ".", archive_folder="cifar-10-batches-py"),
}


def md5sum(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(dataset: str, root: Path, mirror: str | None = None) -> Path:
    """Fetch `dataset`'s files into `root / folder` (skipping those already there and
    intact); returns that folder. ConfigError naming files, URLs and folder on failure."""
    res = RESOURCES[dataset]
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    target = Path(root) / res.folder
    target.mkdir(parents=True, exist_ok=True)
    for name, md5 in res.files.items():
        dest = target / name
        if res.archive_folder is None and dest.is_file() and md5sum(dest) == md5:
            continue
        _fetch_first(dataset, res, name, md5, dest, mirror)
        if res.archive_folder is not None:
            _unpack(dest, target, res.archive_folder)
            dest.unlink()
    return target


def _fetch_first(dataset: str, res: Resource, name: str, md5: str, dest: Path,
                 mirror: str | None) -> None:
    errors = []
    for url in res.urls(name, mirror):
        try:
            _fetch(url, dest, md5)
            return
        except ChecksumMismatch as e:
            raise ConfigError(f"data: downloading dataset '{dataset}': {e}") from None
        except OSError as e:  # URLError, HTTPError, timeouts, refused connections
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
    files = ", ".join(res.files)
    urls = ", ".join(u for n in res.files for u in res.urls(n, mirror))
    raise ConfigError(
        f"data: cannot download dataset '{dataset}' into {dest.parent} (data.root): "
        f"{'; '.join(errors)}. Files needed: {files}, from {urls}. Put them into "
        f"{dest.parent} by hand, or point {MIRROR_ENV} (or data.mirror) at a reachable copy")


class ChecksumMismatch(Exception):
    pass


def _fetch(url: str, dest: Path, md5: str) -> None:
    """Download into a temporary file beside `dest`; rename it into place if its MD5 matches."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with _progress(url, total) as advance:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    advance(len(block))
        got = md5sum(tmp)
        if got != md5:
            raise ChecksumMismatch(f"checksum mismatch for {url}: MD5 {got}, expected {md5}; "
                                   "the file was not kept")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


class _progress:
    """A rich progress bar on a terminal, one line on stderr otherwise."""

    def __init__(self, url: str, total: int | None):
        self.url, self.total, self.bar = url, total, None

    def __enter__(self):
        from runlab.logging.console import is_interactive

        if is_interactive(sys.stderr):
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress(*Progress.get_default_columns(), DownloadColumn(),
                                TransferSpeedColumn(), console=Console(file=sys.stderr))
            self.bar.start()
            task = self.bar.add_task(f"download {self.url.rsplit('/', 1)[-1]}", total=self.total)
            return lambda n: self.bar.advance(task, n)
        print(f"downloading {self.url}", file=sys.stderr, flush=True)
        return lambda n: None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


def _unpack(archive: Path, target: Path, folder: str) -> None:
    """Unpack the regular files under `folder/` of a checked .tar.gz, then rename the folder
    into place (replacing an incomplete one)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", dir=target))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and Path(m.name).parts[:1] == (folder,) and ".." not in Path(m.name).parts]
            tar.extractall(tmp, members=members, filter="data")
        final = target / folder
        if final.exists():
            shutil.rmtree(final)
        (tmp / folder).replace(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
