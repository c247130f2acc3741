# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.corebackup.backup.plugins.module_utils._layout import (
    ArtifactKey,
    LayoutError,
    sanitize_name,
    set_prefix,
    validate_job,
)

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2024, 5, 1, 2, 3, 4, tzinfo=UTC)

jobs = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,30}\Z")
exts = st.from_regex(r"\A[a-z0-9]{1,4}(\.[a-z0-9]{1,4}){0,3}\Z")
times = st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(9999, 12, 31),
                     timezones=st.just(UTC))


def test_key_has_the_documented_shape():
    key = ArtifactKey.build("nightly-github", "ansible", "tar.gz", when=WHEN).key
    assert key == "nightly-github/objects/ansible_20240501T020304Z.tar.gz"
    # An older release's artifact, in its set's folder, is still read.
    legacy = ArtifactKey.parse("nightly-github/2024-05-01/ansible_20240501T020304Z.tar.gz")
    assert not legacy.shared and legacy.date == datetime.date(2024, 5, 1) and legacy.name == "ansible"
    assert ArtifactKey.build("nightly-github", "ansible", "tar.gz", when=WHEN, shared=False) == legacy


def test_timestamps_are_utc_whatever_the_input_zone():
    cest = datetime.timezone(datetime.timedelta(hours=2))
    local = datetime.datetime(2024, 5, 1, 1, 30, tzinfo=cest)  # 2024-04-30 23:30 UTC
    assert ArtifactKey.build("j", "n", "tar", when=local).key == "j/objects/n_20240430T233000Z.tar"


def test_naive_datetimes_are_refused():
    with pytest.raises(LayoutError, match="timezone-aware"):
        ArtifactKey.build("j", "n", "tar", when=datetime.datetime(2024, 5, 1))


@given(job=jobs, name=st.text(min_size=1, max_size=80), ext=exts, when=times)
def test_round_trip(job, name, ext, when):
    built = ArtifactKey.build(job, name, ext, when=when)
    parsed = ArtifactKey.parse(built.key)
    assert parsed == built
    assert parsed.name == sanitize_name(name)
    assert parsed.timestamp == when.replace(microsecond=0)
    assert parsed.date == when.date() and parsed.shared
    assert built.key.startswith(job + "/objects/")
    legacy = ArtifactKey.build(job, name, ext, when=when, shared=False)
    assert ArtifactKey.parse(legacy.key) == legacy and legacy.key.startswith(set_prefix(job, when.date()))


@given(name=st.text(min_size=1, max_size=200))
def test_sanitized_names_are_single_safe_path_components(name):
    safe = sanitize_name(name)
    assert "/" not in safe and "." not in safe and "\\" not in safe
    assert safe.isascii() and safe[0].isalnum()


@pytest.mark.parametrize("raw", ["my.repo", "a/b", "../etc", "ünïcødé", "日本語", ".hidden", "with space"])
def test_unsafe_names_are_cleaned_and_stay_distinct(raw):
    safe = sanitize_name(raw)
    assert safe != raw
    assert ArtifactKey.parse(ArtifactKey.build("j", raw, "tar", when=WHEN).key).name == safe


def test_names_that_clean_to_the_same_text_do_not_collide():
    assert sanitize_name("my.repo") != sanitize_name("my-repo") == "my-repo"
    assert sanitize_name("my.repo") != sanitize_name("my/repo")
    assert sanitize_name("ünïcödé").startswith("unicode-")


def test_safe_names_are_kept():
    for name in ("ansible", "my-repo", "my_repo", "Repo2"):
        assert sanitize_name(name) == name


@pytest.mark.parametrize("job", ["", "../x", "a/b", "-lead", "has space", "x" * 101, "dot.ted"])
def test_invalid_jobs_are_refused_with_the_name(job):
    with pytest.raises(LayoutError, match="job"):
        validate_job(job)


@pytest.mark.parametrize("key", [
    "j/2024-05-01/name.tar.gz",                       # no timestamp
    "j/2024-13-01/name_20240501T020304Z.tar",         # month 13
    "j/2024-05-01/sub/name_20240501T020304Z.tar",     # nested
    "../2024-05-01/name_20240501T020304Z.tar",
    "j/2024-05-01/name_20240501T020304Z",             # no extension
    "j/2024-05-01/name_20240501T256304Z.tar",         # hour 25
])
def test_keys_outside_the_layout_do_not_parse(key):
    with pytest.raises(LayoutError):
        ArtifactKey.parse(key)


def test_explicit_set_date_files_an_artifact_into_another_set():
    key = ArtifactKey.build("j", "n", "tar", when=WHEN, set_date=datetime.date(2020, 1, 2), shared=False)
    assert key.key == "j/2020-01-02/n_20240501T020304Z.tar"
    assert ArtifactKey.parse(key.key).date == datetime.date(2020, 1, 2)
