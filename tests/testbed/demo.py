# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""`make demo` until playbooks/backup.yml exists: the shared core against local stand-in services.

Backs up this collection's own source tree into a filesystem store and into an S3 bucket on a
moto server started on 127.0.0.1, compressed and encrypted to a fresh age key, then reads every
artifact back, verifies its sha256 and restores one with the standard tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from ansible_collections.corebackup.backup.plugins.module_utils._checksum import verify_artifact
from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter, tar_stream
from ansible_collections.corebackup.backup.plugins.module_utils._storage import backend_from_params
from ansible_collections.corebackup.backup.tests.testbed.services import S3_TEST_CREDENTIALS, moto_s3


def main() -> int:
    source = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
    workdir = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else ".demo")
    os.makedirs(workdir, exist_ok=True)
    identity = os.path.join(workdir, "age-identity.txt")
    if not os.path.exists(identity):
        subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", identity], check=True, capture_output=True,
                               text=True).stdout.strip()

    with moto_s3(os.path.join(workdir, "logs")) as s3:
        stores = {
            "filesystem": {"type": "filesystem", "path": os.path.join(workdir, "backups")},
            "s3": dict(type="s3", bucket="demo-backups", prefix="corebackup/",
                       endpoint_url="http://127.0.0.1:%d" % s3.port, **S3_TEST_CREDENTIALS),
        }
        for label, storage in stores.items():
            backend = backend_from_params(storage)
            if label == "s3":
                backend.client.create_bucket(Bucket="demo-backups")
            writer = ArtifactWriter(backend, "gzip", 6, {"type": "age", "recipients": [recipient]})
            artifact = writer.store("demo", "corebackup-source", "tar", tar_stream(source))
            check = verify_artifact(backend, artifact.key, artifact.sha256, artifact.size)
            print("%-10s %s" % (label, json.dumps(artifact.to_dict(), sort_keys=True)))
            print("%-10s verify: %s, %d bytes, sha256 %s" % (label, check.status, check.size, check.sha256))
            if not check.ok:
                return 1
            with tempfile.TemporaryDirectory() as restore_dir:
                stored = os.path.join(restore_dir, "artifact")
                with backend.open(artifact.key) as reader, open(stored, "wb") as out:
                    out.write(reader.read())
                with open(stored, "rb") as encrypted:
                    tar = subprocess.run(["age", "-d", "-i", identity], stdin=encrypted, check=True,
                                         capture_output=True).stdout
                members = subprocess.run(["tar", "-tz"], input=tar, check=True, capture_output=True).stdout
                print("%-10s restore: age -d | tar -tz lists %d entries" % (label, len(members.splitlines())))
    print("demo: both stores hold verified, restorable artifacts (filesystem store: %s)" % stores["filesystem"]["path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
