# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Look for known secrets in everything a run leaves behind.

Stored bytes are read through every layer they have: age encryption (decrypted with the identities the
scanner is given), gzip and zstd, tar archives (member contents and headers), PostgreSQL custom-format
archives (``pg_dump -Fc`` compresses each table's data with zlib: read back as the SQL script that
``pg_restore -f -`` makes of them), and git repositories found inside them, whose objects are read with
``git cat-file --batch-all-objects --batch`` (packed and loose objects are zlib-compressed, a raw scan would
miss them). Texts (results, output, logs) and the command
lines of processes are scanned as they are. A finding names the secret's label, the form it was found in
and where; never the secret itself. A layer the scanner cannot open is reported too, so that nothing is
skipped silently.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import gzip
import io
import json
import os
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse

from ansible_collections.corebackup.backup.tests.testbed.services import pg_bin_dir

AGE_MAGIC = b"age-encryption.org/v1\n"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PGDMP_MAGIC = b"PGDMP"  # pg_dump's custom format
MAX_DEPTH = 8
# git as the scanner runs it: no configuration of the machine, and repositories owned by anyone
# (archives extracted as root keep the owners they were archived with).
GIT_ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_COUNT="1",
               GIT_CONFIG_KEY_0="safe.directory", GIT_CONFIG_VALUE_0="*")


def base64_fragments(value: bytes) -> list[bytes]:
    """What of ``value`` shows in any base64 text that encodes it, at each of the three alignments."""
    fragments = []
    for start in range(3):
        chunk = value[start:]
        chunk = chunk[:len(chunk) // 3 * 3]
        if len(chunk) >= 12:
            fragments.append(base64.b64encode(chunk))
    return fragments


def forms(value: str, basic_user: str | None = None, lowercase: bool = False) -> dict[str, bytes]:
    """The forms a secret can leak in: as it is, URL-encoded, inside base64 (a Basic authorization header
    among others: ``basic_user`` adds the exact ``base64(user:value)``), and lowercase (bech32 age keys)."""
    raw = value.encode()
    found = {"plain": raw}
    quoted = urllib.parse.quote(value, safe="").encode()
    if quoted != raw:
        found["url-encoded"] = quoted
    if "\n" in value or '"' in value or "\\" in value:
        found["json-escaped"] = json.dumps(value)[1:-1].encode()
    for number, fragment in enumerate(base64_fragments(raw)):
        found["base64-%d" % number] = fragment
    if basic_user:
        found["basic-auth"] = base64.b64encode(("%s:%s" % (basic_user, value)).encode())
    if lowercase and value.lower() != value:
        found["lowercase"] = value.lower().encode()
    return found


@dataclasses.dataclass(frozen=True)
class Finding:
    label: str
    form: str
    where: str
    context: str = ""  # what surrounds it, every known secret replaced by its label

    def __str__(self) -> str:
        return "%s (%s) in %s%s" % (self.label, self.form, self.where, ": ...%s..." % self.context if self.context else "")


class SecretScanner:
    """Collects findings over many scans; ``secrets`` maps a label to its forms (see :func:`forms`)."""

    def __init__(self, secrets: dict[str, dict[str, bytes]], identities: tuple[str, ...] = (),
                 pg_restore: str | None = None):
        self.needles = [(label, form, needle) for label, found in secrets.items() for form, needle in found.items()]
        self.identities = list(identities)
        self.pg_restore = pg_restore or os.path.join(pg_bin_dir(), "pg_restore")
        self.findings: list[Finding] = []
        self.unreadable: list[str] = []
        self.counts: collections.Counter = collections.Counter()

    # -- the check ------------------------------------------------------------------------------------
    def check(self, data: bytes | str, where: str) -> list[Finding]:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        found = [Finding(label, form, where, self._context(data, needle)) for label, form, needle in self.needles
                 if needle in data]
        self.findings.extend(found)
        return found

    def _context(self, data: bytes, needle: bytes) -> str:
        at = data.index(needle)
        start, end = max(0, at - 120), at + len(needle) + 60
        for _label, _form, other in self.needles:  # no secret cut in half at the edges
            for edge in (start, end):
                found = data.find(other, max(0, edge - len(other) + 1), edge + len(other) - 1)
                if found != -1:
                    start, end = min(start, found), max(end, found + len(other))
        around = data[start:end]
        for label, form, other in sorted(self.needles, key=lambda n: -len(n[2])):
            around = around.replace(other, ("<%s (%s)>" % (label, form)).encode())
        return around.decode("utf-8", "replace").encode("unicode_escape").decode("ascii")

    def scan_text(self, text: bytes | str, where: str) -> None:
        self.counts["texts"] += 1
        self.counts["text bytes"] += len(text)
        self.check(text, where)

    def scan_argv(self, cmdlines, where: str) -> None:
        """Command lines as /proc/<pid>/cmdline has them (NUL-separated bytes)."""
        for cmdline in set(cmdlines):
            self.counts["argv"] += 1
            program = cmdline.split(b"\0", 1)[0].decode("utf-8", "replace")[-60:]
            self.check(cmdline, "%s: the command line of %s" % (where, program))

    # -- stored bytes, layer by layer -------------------------------------------------------------------
    def scan_bytes(self, data: bytes, where: str, depth: int = 0) -> None:
        self.counts["layers"] += 1
        self.counts["bytes"] += len(data)
        self.check(data, where)
        if depth >= MAX_DEPTH:
            return
        if data.startswith(AGE_MAGIC):
            plain = self._run(["age", "-d"] + [arg for path in self.identities for arg in ("-i", path)], data,
                              where, "age -d")
            if plain is not None:
                self.counts["age decrypted"] += 1
                self.scan_bytes(plain, where + " | age -d", depth + 1)
        elif data.startswith(GZIP_MAGIC):
            try:
                plain = gzip.decompress(data)
            except (OSError, EOFError, ValueError) as exc:
                self.unreadable.append("%s: gzip: %s" % (where, exc))
            else:
                self.counts["decompressed"] += 1
                self.scan_bytes(plain, where + " | gunzip", depth + 1)
        elif data.startswith(ZSTD_MAGIC):
            plain = self._run(["zstd", "-dc"], data, where, "zstd -dc")
            if plain is not None:
                self.counts["decompressed"] += 1
                self.scan_bytes(plain, where + " | unzstd", depth + 1)
        elif data.startswith(PGDMP_MAGIC):
            self._scan_pg_dump(data, where, depth)
        elif len(data) >= 512 and data[257:262] == b"ustar":
            self._scan_tar(data, where, depth)

    def _run(self, argv: list[str], data: bytes, where: str, what: str) -> bytes | None:
        try:
            proc = subprocess.run(argv, input=data, capture_output=True, check=False)
        except OSError as exc:  # the program is missing: a layer not read is reported, not passed over
            self.unreadable.append("%s: %s: %s" % (where, what, exc))
            return None
        if proc.returncode:
            self.unreadable.append("%s: %s failed: %s" % (where, what, proc.stderr.decode("utf-8", "replace")[:200]))
            return None
        return proc.stdout

    def _scan_pg_dump(self, data: bytes, where: str, depth: int) -> None:
        """A pg_dump custom-format archive, as the SQL script pg_restore makes of it (every definition, comment,
        grant and row, decompressed), from a file: a seekable one reads whatever order its entries are in."""
        with tempfile.TemporaryDirectory(prefix="secret-scan-") as scratch:
            path = os.path.join(scratch, "archive.dump")
            with open(path, "wb") as handle:
                handle.write(data)
            plain = self._run([self.pg_restore, "-f", "-", path], b"", where, "pg_restore -f -")
        if plain is not None:
            self.counts["pg_dump archives"] += 1
            self.scan_bytes(plain, where + " | pg_restore", depth + 1)

    def _scan_tar(self, data: bytes, where: str, depth: int) -> None:
        self.counts["tars"] += 1
        with tempfile.TemporaryDirectory(prefix="secret-scan-") as scratch:
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                    members = archive.getmembers()
                    for member in members:
                        self.counts["tar members"] += 1
                        header = "\n".join([member.name, member.linkname, member.uname, member.gname,
                                            json.dumps(member.pax_headers)])
                        self.check(header, "%s!%s (tar header)" % (where, member.name))
                    # Contents: regular files and folders, readable whatever mode they were archived with.
                    archive.extractall(scratch, members=[m for m in members if m.isreg() or m.isdir()],
                                       filter=_readable)
            except (tarfile.TarError, OSError) as exc:
                self.unreadable.append("%s: tar: %s" % (where, exc))
                return
            self.scan_tree(scratch, where + "!", depth + 1)

    def scan_tree(self, root: str, where: str, depth: int = 0) -> None:
        """Every regular file below ``root``, and the objects of every git repository there."""
        for folder, dirs, files in os.walk(root):
            rel = os.path.relpath(folder, root)
            prefix = where if rel == "." else where + rel + "/"
            if is_git_dir(folder):
                self.scan_git(folder, prefix.rstrip("/"))
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                if depth == 0:
                    self.counts["files"] += 1
                with open(path, "rb") as handle:
                    self.scan_bytes(handle.read(), prefix + name, depth)

    def scan_git(self, git_dir: str, where: str) -> None:
        """Every object of a repository, uncompressed."""
        self.counts["git repositories"] += 1
        proc = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "--batch-all-objects", "--batch", "--unordered"],
                              capture_output=True, check=False, env=GIT_ENV)
        if proc.returncode:
            self.unreadable.append("%s: git cat-file failed: %s" % (where, proc.stderr.decode("utf-8", "replace")[:200]))
            return
        out, pos = proc.stdout, 0
        self.counts["git bytes"] += len(out)
        while pos < len(out):
            end = out.index(b"\n", pos)
            sha, kind, size = out[pos:end].decode().split()
            content = out[end + 1:end + 1 + int(size)]
            pos = end + 1 + int(size) + 1
            self.counts["git objects"] += 1
            self.check(content, "%s: git %s %s" % (where, kind, sha))

    def scan_s3(self, client, bucket: str) -> None:
        """Every object of ``bucket``: its key, its metadata and its bytes, layer by layer."""
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                answer = client.get_object(Bucket=bucket, Key=entry["Key"])
                where = "s3://%s/%s" % (bucket, entry["Key"])
                self.counts["s3 objects"] += 1
                self.check(json.dumps({"key": entry["Key"], "metadata": answer.get("Metadata") or {}}),
                           where + " (key and metadata)")
                self.scan_bytes(answer["Body"].read(), where)

    def report(self) -> str:
        return "\n".join(str(finding) for finding in sorted(set(self.findings), key=str))


def _readable(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    member = tarfile.tar_filter(member, path)
    return member.replace(mode=(member.mode or 0) | (0o700 if member.isdir() else 0o600), deep=False)


def is_git_dir(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "HEAD")) and os.path.isdir(os.path.join(folder, "objects"))


class ArgvSampler:
    """Records the command line of every process on the machine, every 50 ms, while it is entered (a
    secret in an argv can be read by any local user in /proc)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.seen: set[bytes] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        self.seen.add(handle.read())
                except OSError:
                    pass
            self.samples += 1
            time.sleep(self.interval)

    def __enter__(self) -> "ArgvSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclasses.dataclass
class SeenProcess:
    """A process of the watched runs, as :class:`EnvSampler` saw it (no secret is kept, only where they were)."""

    program: str  # the base name of its program (of the script, for an interpreter or pg_wrapper)
    kept: dict[str, str]  # the values of the variables it was asked to keep (paths such as PGPASSFILE)
    present: set[str]  # which of the variables it was asked to look for were set (never their values)
    modes: dict[str, int | None]  # each kept value that is a path: its mode when seen (None: not there)
    secrets: set[str]  # the labels of the secrets found in its environment


class EnvSampler:
    """Records, every ``interval`` s while entered, the environment of each process of some runs: those whose
    environment holds ``marker`` (``NAME=value``, the runs' own TMPDIR for one), so that the processes of others
    on this machine are left out. Of each it keeps the values of ``keep`` (with the mode of the file each names),
    whether each of ``flags`` is set, and the labels of the ``secrets`` (label: forms) its environment holds."""

    INTERPRETERS = ("perl", "python", "python3", "sh", "bash")

    def __init__(self, marker: str, secrets: dict[str, dict[str, bytes]], keep: tuple[str, ...] = (),
                 flags: tuple[str, ...] = (), interval: float = 0.05):
        self.marker = marker.encode()
        self.needles = [(label, needle) for label, found in secrets.items() for needle in found.values()]
        self.keep, self.flags, self.interval = keep, flags, interval
        self.seen: dict[tuple[int, str], SeenProcess] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @classmethod
    def program(cls, cmdline: bytes) -> str:
        args = [os.path.basename(arg.decode("utf-8", "replace")) for arg in cmdline.split(b"\0")[:2] if arg]
        if len(args) == 2 and args[0].rstrip("0123456789.") in cls.INTERPRETERS:
            return args[1]
        return args[0] if args else "?"

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/environ" % pid, "rb") as handle:
                        environ = handle.read()
                    if self.marker not in environ.split(b"\0"):
                        continue
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        cmdline = handle.read()
                except OSError:
                    continue
                self._note(int(pid), cmdline, environ)
            self.samples += 1
            time.sleep(self.interval)

    def _note(self, pid: int, cmdline: bytes, environ: bytes) -> None:
        variables = dict(item.partition(b"=")[::2] for item in environ.split(b"\0") if b"=" in item)
        program = self.program(cmdline)
        seen = self.seen.setdefault((pid, program), SeenProcess(program, {}, set(), {}, set()))
        for name in self.keep:
            value = variables.get(name.encode())
            if value is not None:
                path = seen.kept[name] = value.decode("utf-8", "surrogateescape")
                try:
                    mode = os.stat(path).st_mode & 0o7777
                except OSError:
                    mode = None
                if seen.modes.get(path) is None:
                    seen.modes[path] = mode
        seen.present.update(name for name in self.flags if name.encode() in variables)
        seen.secrets.update(label for label, needle in self.needles if needle in environ)

    def __enter__(self) -> "EnvSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
