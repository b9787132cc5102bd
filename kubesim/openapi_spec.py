"""The upstream OpenAPI documents (``api/openapi-spec/``), fetched into a git-ignored cache.

kube-apiserver publishes OpenAPI v2 (``/openapi/v2``) and v3 (``/openapi/v3/...``) documents
with full schemas; ``kubectl explain`` reads the v3 ones. They are generated files of the
``k8s.io/kubernetes`` Go module (``api/openapi-spec/swagger.json`` and ``v3/*.json``, 17 MB),
so they are not committed here. ``python -m kubesim fetch-openapi`` downloads that module's zip
from the Go module proxy over HTTPS, checks it against the module's go.sum hash (``h1:``,
``golang.org/x/mod/sumdb/dirhash.Hash1``; the value below is what ``go mod download`` verified
against sum.golang.org), and extracts only ``api/openapi-spec/`` into ``var/cache/`` (ignored by
git). kubesim serves those documents whenever they are there (kubesim/openapi.py), and its own
schemaless ones otherwise.

``KUBESIM_OPENAPI_DIR`` points kubesim at another copy of the ``api/openapi-spec`` directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# zipfile, tempfile, shutil and urllib.request are imported where used: the server itself
# only needs spec_dir().

MODULE = "k8s.io/kubernetes"
VERSION = "v1.37.2"
MODULE_SUM = "h1:A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE="
PROXY_URL = f"https://proxy.golang.org/{MODULE}/@v/{VERSION}.zip"
SPEC_PREFIX = f"{MODULE}@{VERSION}/api/openapi-spec/"
ENV = "KUBESIM_OPENAPI_DIR"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "var" / "cache" / "kubesim-openapi" / VERSION


def spec_dir() -> Path | None:
    """The ``api/openapi-spec`` directory to serve, or None when it has not been fetched."""
    path = Path(os.environ.get(ENV) or DEFAULT_DIR)
    return path if (path / "v3").is_dir() else None


def module_zip_hash(path: str | os.PathLike[str]) -> str:
    """``dirhash.HashZip`` with ``Hash1``: the ``h1:`` line of go.sum for a module zip."""
    import zipfile

    summary = []
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        for name in names:
            if "\n" in name:
                raise ValueError(f"zip entry name contains a newline: {name!r}")
            digest = hashlib.sha256(zf.read(name)).hexdigest()
            summary.append(f"{digest}  {name}\n")
    return "h1:" + base64.b64encode(hashlib.sha256("".join(summary).encode()).digest()).decode()


@contextmanager
def staged_directory(dest: Path, prefix: str) -> Iterator[Path]:
    """A fresh directory beside ``dest`` that replaces ``dest`` only if the block succeeds, so
    a failed fetch or build never leaves a half-written cache behind."""
    import shutil
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    try:
        yield staging
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def download(url: str, target: Path, *, agent: str, timeout: float) -> None:
    """Copy ``url`` (HTTPS, the Go module proxy) into the file ``target``."""
    import shutil
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": agent})
    with urllib.request.urlopen(request, timeout=timeout) as resp, target.open("wb") as out:
        shutil.copyfileobj(resp, out)


def extract_spec(zip_path: str | os.PathLike[str], dest: Path, expected_sum: str) -> Path:
    """Check the module zip's hash, then extract ``api/openapi-spec/`` alone into ``dest``."""
    import zipfile

    got = module_zip_hash(zip_path)
    if got != expected_sum:
        raise ValueError(f"{MODULE}@{VERSION} zip hash mismatch: got {got}, want {expected_sum}")
    with staged_directory(dest, ".openapi-") as staging, zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            if not name.startswith(SPEC_PREFIX) or name.endswith("/"):
                continue
            rel = Path(name[len(SPEC_PREFIX) :])
            if rel.is_absolute() or ".." in rel.parts:
                raise ValueError(f"unsafe path in module zip: {name!r}")
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
        if not (staging / "v3").is_dir():
            raise ValueError(f"{MODULE}@{VERSION} has no api/openapi-spec/v3")
    return dest


def fetch(dest: Path | None = None, url: str = PROXY_URL, timeout: float = 120.0) -> Path:
    """Download the module zip over HTTPS and extract the spec; returns the spec directory."""
    import tempfile

    dest = dest or Path(os.environ.get(ENV) or DEFAULT_DIR)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".openapi-zip-", dir=dest.parent) as tmp:
        zip_path = Path(tmp) / "module.zip"
        download(url, zip_path, agent="kubesim-fetch-openapi", timeout=timeout)
        return extract_spec(zip_path, dest, MODULE_SUM)
