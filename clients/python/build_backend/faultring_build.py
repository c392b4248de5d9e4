"""A stdlib-only PEP 517 / PEP 660 build backend for faultring_client.

Why not setuptools: with build isolation (pip's default) pip must download
the backend from a package index; this backend lives in the tree
(``backend-path``), needs nothing, and so ``pip install ./clients/python``
works offline, on every Python >= 3.9. It builds one pure-Python wheel
(``py3-none-any``) of the ``faultring_client`` package, an sdist, and an
editable wheel (a ``.pth`` file pointing at this directory).

The metadata comes from ``[project]`` in ``pyproject.toml`` (name, version,
description, requires-python, readme); only those plain string keys are read.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "faultring_client"
TAG = "py3-none-any"


def _project() -> dict:
    """The string keys of ``[project]`` in pyproject.toml."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    try:
        import tomllib  # Python 3.11+
        return tomllib.loads(text)["project"]
    except ImportError:
        pass
    project, section = {}, None
    for line in text.splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1).strip()
            continue
        pair = re.match(r'\s*([A-Za-z0-9_-]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$', line)
        if section == "project" and pair:
            project[pair.group(1)] = pair.group(2).replace('\\"', '"')
    return project


def _names():
    p = _project()
    name, version = p["name"], p["version"]
    dist = re.sub(r"[-_.]+", "_", name).lower()
    return p, name, version, dist


def _metadata() -> str:
    p, name, version, _ = _names()
    with open(os.path.join(ROOT, p.get("readme", "README.md")), encoding="utf-8") as f:
        readme = f.read()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             f"Summary: {p.get('description', '')}", f"Requires-Python: {p.get('requires-python', '>=3.9')}",
             "License: MIT", "Classifier: Operating System :: POSIX :: Linux",
             "Description-Content-Type: text/markdown"]
    return "\n".join(lines) + "\n\n" + readme


def _package_files():
    base = os.path.join(ROOT, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".py", ".typed")):
                full = os.path.join(dirpath, fn)
                yield full, os.path.relpath(full, ROOT).replace(os.sep, "/")


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory: str, files) -> str:
    _, _, version, dist = _names()
    distinfo = f"{dist}-{version}.dist-info"
    wheel_name = f"{dist}-{version}-{TAG}.whl"
    entries = list(files)
    entries.append((f"{distinfo}/METADATA", _metadata().encode("utf-8")))
    entries.append((f"{distinfo}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: faultring_build\nRoot-Is-Purelib: true\n"
        f"Tag: {TAG}\n").encode()))
    entries.append((f"{distinfo}/top_level.txt", f"{PACKAGE}\n".encode()))
    record = [_record_line(a, d) for a, d in entries] + [f"{distinfo}/RECORD,,"]
    entries.append((f"{distinfo}/RECORD", ("\n".join(record) + "\n").encode()))
    path = os.path.join(wheel_directory, wheel_name)
    stamp = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")))[:6]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel_name


# ---------------------------------------------------------------- PEP 517


def get_requires_for_build_wheel(config_settings=None):
    """Nothing: this backend is the standard library."""
    return []


def get_requires_for_build_sdist(config_settings=None):
    """Nothing: this backend is the standard library."""
    return []


def get_requires_for_build_editable(config_settings=None):
    """Nothing: this backend is the standard library."""
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """The package's .py files plus the dist-info, as ``<dist>-<version>-py3-none-any.whl``."""
    files = []
    for full, arcname in _package_files():
        with open(full, "rb") as f:
            files.append((arcname, f.read()))
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """A wheel whose only file is a .pth putting this directory on sys.path."""
    _, _, _, dist = _names()
    return _write_wheel(wheel_directory, [(f"_{dist}_editable.pth", (ROOT + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    """``<dist>-<version>.tar.gz``: sources, tests, build backend, PKG-INFO."""
    _, _, version, dist = _names()
    top = f"{dist}-{version}"
    path = os.path.join(sdist_directory, f"{top}.tar.gz")
    keep = ("pyproject.toml", "README.md", "bench.py", "test.sh")
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        def add(rel: str) -> None:
            tar.add(os.path.join(ROOT, rel), arcname=f"{top}/{rel}", recursive=False)
        for rel in keep:
            if os.path.exists(os.path.join(ROOT, rel)):
                add(rel)
        for sub in (PACKAGE, "tests", "build_backend"):
            for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, sub)):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for fn in sorted(filenames):
                    add(os.path.relpath(os.path.join(dirpath, fn), ROOT))
        data = _metadata().encode("utf-8")
        info = tarfile.TarInfo(f"{top}/PKG-INFO")
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return os.path.basename(path)
