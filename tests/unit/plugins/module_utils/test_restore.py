# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ArtifactStream with real age: an identity without the artifact's key is told from an artifact damaged in the store."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.corebackup.backup.plugins.module_utils._pipeline import ArtifactWriter, bytes_stream
from ansible_collections.corebackup.backup.plugins.module_utils._restore import ArtifactStream, RestoreError


def read_all(stream: ArtifactStream) -> bytes:
    return b"".join(stream.chunks())


def test_a_wrong_key_is_named_as_such_and_a_damaged_recipient_stanza_as_damage(fs_backend, age_identity, tmp_path):
    identity, recipient = age_identity
    other = tmp_path / "other-identity.txt"
    subprocess.run(["age-keygen", "-o", str(other)], capture_output=True, check=True)
    artifact = ArtifactWriter(fs_backend, "gzip", 1, {"recipients": [recipient]}).store(
        "job", "blob", "bin", bytes_stream([b"payload " * 1000])).to_dict()
    assert read_all(ArtifactStream(fs_backend, artifact, identity)) == b"payload " * 1000

    with pytest.raises(RestoreError) as wrong_key:
        read_all(ArtifactStream(fs_backend, artifact, str(other)))
    assert str(wrong_key.value) == (
        "%s cannot be decrypted with identity_file %s: none of its keys is a recipient of the artifact, which is "
        "encrypted to %s; nothing was restored from it" % (artifact["key"], other, recipient))

    # One character of the recipient's stanza (the second line of age's header) changed in the store: age says the
    # same of it ("no identity matched"), but the key is right and the artifact is not what was recorded.
    path = os.path.join(fs_backend.root, artifact["key"])
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    at = data.index(b"\n", data.index(b"\n") + 1) + 4  # inside the stanza's body
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    with open(path, "wb") as handle:
        handle.write(data)
    with pytest.raises(RestoreError) as damaged:
        read_all(ArtifactStream(fs_backend, artifact, identity))
    assert "no identity matched" in str(damaged.value) and "it is not what was recorded" in str(damaged.value)
