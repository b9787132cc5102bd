"""The upstream protobuf schema of the kinds kubesim serves, fetched and compiled into var/cache.

kubectl's generator commands (``kubectl create deployment``, ``auth can-i``, ...) send their
bodies as ``application/vnd.kubernetes.protobuf``. The message definitions are the
``generated.proto`` files of the ``k8s.io/api`` and ``k8s.io/apimachinery`` Go modules, which
are not committed here. ``python -m kubesim fetch-protobuf`` downloads both module zips from
the Go module proxy over HTTPS, checks each against its go.sum hash (the ``h1:`` values below
are realcluster/go.sum's, a test keeps them equal), extracts the ``generated.proto`` files that
the served kinds need (their imports followed), and compiles them with ``grpc_tools.protoc``
(pinned in requirements-dev.txt) into one ``FileDescriptorSet``. A descriptor set, rather than
``*_pb2.py`` modules, loads into a private descriptor pool: no ``k8s`` package on sys.path and
no gencode-versus-runtime version check.

The wire format alone cannot say what the JSON form of a field is: Go marshals a non-pointer
scalar even when it is zero, but its JSON tag may say ``omitempty``; an embedded struct is a
nested message on the wire and ``,inline`` (flattened) in JSON. So the same step reads the Go
struct tags of those packages (``types.go`` and friends, from the same verified zips) into
``go-fields.json``: per message, per proto field number, its JSON name and whether it is a pointer,
omitted when zero, or inlined. kubesim/protobuf.py turns wire bytes into the JSON dict with it.

``KUBESIM_PROTOBUF_DIR`` points kubesim at another compiled copy.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from .openapi_spec import download, module_zip_hash, staged_directory

# zipfile, tempfile, shutil, subprocess and urllib.request are imported where used: the server
# only needs schema_dir().

VERSION = "v0.37.2"
# Module -> go.sum ``h1:`` hash of its zip (realcluster/go.sum, verified by ``go mod download``).
MODULE_SUMS = {
    "k8s.io/api": "h1:PnxqnUFy93jr2GcpWDkKOm8wfy25kT9wa572MuQS8oc=",
    "k8s.io/apimachinery": "h1:G4t9RGoPDbQML38hz/kQQiltttgd3egg2ODCR8aIc2o=",
}
PROXY = "https://proxy.golang.org"
ENV = "KUBESIM_PROTOBUF_DIR"
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "var" / "cache" / "kubesim-protobuf" / VERSION
DESCRIPTORS = "descriptors.binpb"
GO_FIELDS = "go-fields.json"
META_PACKAGE = "k8s.io/apimachinery/pkg/apis/meta/v1"
# Served through subresources rather than as kinds: autoscaling/v1 Scale (``/scale``).
EXTRA_GROUP_VERSIONS = (("autoscaling", "v1"),)


def schema_dir() -> Path | None:
    """The compiled schema directory, or None when it has not been fetched."""
    path = Path(os.environ.get(ENV) or DEFAULT_DIR)
    return path if (path / DESCRIPTORS).is_file() and (path / GO_FIELDS).is_file() else None


def api_package(group: str, version: str) -> str:
    """The ``k8s.io/api`` Go (and proto) package of a group version: ``apps/v1`` -> apps/v1.

    The core group is ``core``; ``networking.k8s.io`` is ``networking``.
    """
    return f"k8s.io/api/{group.split('.')[0] if group else 'core'}/{version}"


def needed_packages() -> list[str]:
    """The Go packages whose messages kubesim decodes: every served group version, and meta."""
    from .resources import TYPES

    gvs = {(t.group, t.version) for t in TYPES} | set(EXTRA_GROUP_VERSIONS)
    return sorted({api_package(g, v) for g, v in gvs} | {META_PACKAGE})


def _module_of(package: str) -> str:
    for module in MODULE_SUMS:
        if package == module or package.startswith(module + "/"):
            return module
    raise ValueError(f"no pinned module provides {package}")


_IMPORT = re.compile(r'^import\s+"([^"]+)/generated\.proto";', re.M)


def proto_closure(read_proto: Callable[[str], str], roots: list[str]) -> dict[str, str]:
    """Package -> ``generated.proto`` text, for ``roots`` and everything they import."""
    protos: dict[str, str] = {}
    todo = list(roots)
    while todo:
        pkg = todo.pop()
        if pkg not in protos:
            protos[pkg] = read_proto(pkg)
            todo += _IMPORT.findall(protos[pkg])
    return dict(sorted(protos.items()))


# A struct field with a protobuf tag: ``Name Type `json:"name,omitempty" protobuf:"..."` ``, or
# an embedded one (``VolumeSource `json:",inline" protobuf:"..."` ``).
_STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.M | re.S)
_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([\w.*\[\]]+)\s+`([^`]*)`", re.M)
_TAG = re.compile(r'(\w+):"([^"]*)"')


def go_struct_fields(source: str) -> dict[str, dict[str, list[object]]]:
    """Go type name -> proto field number -> ``[json name, pointer, omit, inline]``.

    Only fields with a ``protobuf`` tag (``"bytes,3,opt,name=spec"``) are on the wire, by the
    number that tag gives. ``omit`` is 1 for ``omitempty`` (drops a zero scalar), 2 for
    ``omitzero`` (drops a zero struct too, such as an unset ``creationTimestamp``), else 0.
    An embedded struct without a JSON name (``VolumeSource `json:",inline"` ``) is flattened
    into its parent, as encoding/json does.
    """
    out: dict[str, dict[str, list[object]]] = {}
    for struct, body in _STRUCT.findall(source):
        fields: dict[str, list[object]] = {}
        for go_name, gotype, tags in _FIELD.findall(body):
            tag = dict(_TAG.findall(tags))
            if "protobuf" not in tag:
                continue
            wire = tag["protobuf"].split(",")
            if len(wire) < 2 or not wire[1].isdigit():
                continue
            opts = dict(o.partition("=")[::2] for o in wire if "=" in o)
            json_name, *json_opts = tag.get("json", "").split(",")
            pointer = gotype.startswith("*")
            omit = 2 if "omitzero" in json_opts else 1 if "omitempty" in json_opts else 0
            # encoding/json flattens an embedded struct unless its tag gives it a name.
            inline = not go_name and not json_name
            fields[wire[1]] = [json_name or opts.get("name", ""), pointer, omit, inline]
        if fields:
            out[struct] = fields
    return out


def build(zips: dict[str, str | os.PathLike[str]], dest: Path) -> Path:
    """Check each module zip's hash, extract the needed protos and compile them into ``dest``.

    ``zips`` maps a module (``k8s.io/api``) to its downloaded zip. ``dest`` is replaced only
    once everything has been built, so a failure leaves any previous schema in place.
    """
    import subprocess
    import sys
    import zipfile

    for module, path in zips.items():
        got = module_zip_hash(path)
        if got != MODULE_SUMS[module]:
            raise ValueError(
                f"{module}@{VERSION} zip hash mismatch: got {got}, want {MODULE_SUMS[module]}"
            )
    archives = {module: zipfile.ZipFile(path) for module, path in zips.items()}
    try:

        def member(package: str, name: str) -> str:
            module = _module_of(package)
            return f"{module}@{VERSION}{package[len(module) :]}/{name}"

        def read(package: str, name: str) -> str:
            return archives[_module_of(package)].read(member(package, name)).decode()

        protos = proto_closure(lambda pkg: read(pkg, "generated.proto"), needed_packages())
        go_fields: dict[str, dict[str, list[object]]] = {}
        for pkg in protos:
            zf = archives[_module_of(pkg)]
            prefix = member(pkg, "")
            for name in zf.namelist():
                rest = name[len(prefix) :]
                if not name.startswith(prefix) or "/" in rest or not rest.endswith(".go"):
                    continue
                if rest.endswith("_test.go") or rest.endswith(".pb.go"):
                    continue
                proto_pkg = pkg.replace("/", ".")
                for struct, fields in go_struct_fields(zf.read(name).decode()).items():
                    go_fields[f"{proto_pkg}.{struct}"] = fields
    finally:
        for zf in archives.values():
            zf.close()

    with staged_directory(dest, ".protobuf-") as staging:
        for pkg, text in protos.items():
            target = staging / "proto" / pkg / "generated.proto"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        files = [f"{pkg}/generated.proto" for pkg in sorted(protos)]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"--proto_path={staging / 'proto'}",
                f"--descriptor_set_out={staging / DESCRIPTORS}",
                "--include_imports",
                *files,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"protoc failed ({proc.returncode}): {proc.stderr.strip()}")
        (staging / GO_FIELDS).write_text(json.dumps(go_fields, sort_keys=True))
    return dest


def fetch(dest: Path | None = None, proxy: str = PROXY, timeout: float = 120.0) -> Path:
    """Download both module zips over HTTPS and build the schema; returns its directory."""
    import tempfile

    dest = dest or Path(os.environ.get(ENV) or DEFAULT_DIR)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".protobuf-zips-", dir=dest.parent) as tmp:
        zips: dict[str, str | os.PathLike[str]] = {}
        for module in MODULE_SUMS:
            path = Path(tmp) / (module.replace("/", "_") + ".zip")
            url = f"{proxy}/{module}/@v/{VERSION}.zip"
            download(url, path, agent="kubesim-fetch-protobuf", timeout=timeout)
            zips[module] = path
        return build(zips, dest)
