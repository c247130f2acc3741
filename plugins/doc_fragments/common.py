# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The options every backup module shares: the job and where its artifacts are stored.
    # Keep in step with plugins/module_utils/_common.py (a unit test compares the two).
    DOCUMENTATION = r"""
options:
  job:
    description:
      - Name of the backup job. Artifacts are stored under C(<prefix>/<job>/<YYYY-MM-DD>/).
      - 1 to 100 letters, digits, V(-) or V(_), starting with a letter or digit.
      - Each module has its own default.
    type: str
  storage:
    description:
      - Where artifacts are stored. Pass the same dictionary to every module, or set it once for
        all of them with C(module_defaults) and the group C(group/corebackup.backup.backup).
    type: dict
    required: true
    suboptions:
      type:
        description:
          - The storage backend.
        type: str
        required: true
        choices: [filesystem, s3]
      path:
        description:
          - Root directory of the O(storage.type=filesystem) backend.
          - Modules that write artifacts create it if it is missing, but only below an existing parent
            directory; modules that only read (verification, queries, retention) refuse a missing path.
          - Files are written under a temporary name, synced, then renamed into place.
        type: path
      carry:
        description:
          - Artifacts are stored once under C(<job>/objects/) and referenced by every set that holds them, on
            every backend; nothing is carried by copying. This option only says how an artifact of an older
            release, stored in its set's folder, is moved into C(<job>/objects/) the first time a newer set holds
            it - V(link) a hard link (a copy where the filesystem has none), V(copy) a copy.
        type: str
        choices: [link, copy]
        default: link
      directory_mode:
        description:
          - Octal mode of directories the filesystem backend creates, for example V('0750').
        type: raw
        default: '0700'
      file_mode:
        description:
          - Octal mode of the files the filesystem backend writes, for example V('0640').
        type: raw
        default: '0600'
      bucket:
        description:
          - Bucket of the O(storage.type=s3) backend.
        type: str
      prefix:
        description:
          - Key prefix inside O(storage.bucket) under which the job folders live.
        type: str
        default: ''
      region:
        description:
          - AWS region of the bucket.
          - If not set, the E(AWS_REGION) or E(AWS_DEFAULT_REGION) environment variable is used,
            then the profile's region.
        type: str
      endpoint_url:
        description:
          - URL of an S3-compatible service (MinIO, Ceph RGW, ...) instead of AWS.
          - If not set, the E(AWS_ENDPOINT_URL_S3) or E(AWS_ENDPOINT_URL) environment variable is used.
          - With an endpoint URL, path-style addressing is used.
        type: str
      access_key:
        description:
          - AWS access key ID.
          - If not set, the E(AWS_ACCESS_KEY_ID) or E(AWS_ACCESS_KEY) environment variable is used,
            then the profile or instance credentials.
        type: str
      secret_key:
        description:
          - AWS secret access key.
          - If not set, the E(AWS_SECRET_ACCESS_KEY) or E(AWS_SECRET_KEY) environment variable is used,
            then the profile or instance credentials.
        type: str
      session_token:
        description:
          - AWS session token for temporary credentials.
          - If not set, the E(AWS_SESSION_TOKEN) environment variable is used.
        type: str
      profile:
        description:
          - Named profile from the AWS shared credentials and config files.
          - If not set, the E(AWS_PROFILE) environment variable is used.
          - Mutually exclusive with O(storage.access_key).
        type: str
      validate_certs:
        description:
          - Verify the TLS certificate of the S3 endpoint.
        type: bool
        default: true
      upload_concurrency:
        description:
          - S3 only. Parts of a multipart upload sent at once, per artifact; memory grows with it (each part
            in flight holds up to 16 MiB). The run's budget of a service module may lower it (see its
            C(compression_threads) option).
        type: int
        default: 4
      storage_class:
        description:
          - S3 storage class of new objects.
        type: str
        choices: [STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, DEEP_ARCHIVE, GLACIER_IR]
      sse:
        description:
          - Server-side encryption of new objects.
        type: str
        choices: [AES256, 'aws:kms']
      sse_kms_key_id:
        description:
          - KMS key ID or ARN when O(storage.sse=aws:kms). Without it the bucket's default KMS key is used.
        type: str
      metadata:
        description:
          - Object metadata added to every object written (S3 only).
        type: dict
      object_lock:
        description:
          - S3 only. Every object a run writes (artifacts, records, views, lease records) is written with S3 Object
            Lock in O(storage.object_lock.mode) until O(storage.object_lock.days) after the real time it is written;
            an object a multipart upload completed is locked again explicitly, and every write is checked to be
            locked as asked.
          - The bucket must have Object Lock enabled, and so versioning; a bucket without either is refused, naming
            what is missing, before anything is written.
          - With it, deletions (retention, clean-ups) delete every version of a key, never one that is still locked;
            such a key is reported in C(locked) with its C(locked_until), and a later run deletes it.
          - The threat it answers, and what it does not yet cover, are in C(docs/operations.md).
        type: dict
        suboptions:
          mode:
            description:
              - V(COMPLIANCE) - nobody, the bucket's owner included, can shorten the lock or delete a locked version.
              - V(GOVERNANCE) - only a credential with C(s3:BypassGovernanceRetention) can; the collection never
                asks to.
            type: str
            choices: [GOVERNANCE, COMPLIANCE]
            required: true
          days:
            description:
              - How long each object stays locked from its writing, in days. Set it to the daily horizon of the
                job's retention (its O(corebackup.backup.backup_retention#module:keep_daily) or
                O(corebackup.backup.backup_retention#module:keep_days)); a set cannot be deleted before then.
            type: int
            required: true
  retries:
    description:
      - Retries of transient errors (throttling, time-outs, 5xx answers) with jittered exponential backoff.
    type: dict
    suboptions:
      attempts:
        description:
          - How many times an operation is tried in all, the first try included.
        type: int
        default: 5
      delay:
        description:
          - Seconds before the first retry; each later retry waits twice as long, up to O(retries.max_delay).
        type: float
        default: 1.0
      max_delay:
        description:
          - Longest wait between two tries, in seconds.
        type: float
        default: 60.0
requirements:
  - boto3 (for O(storage.type=s3))
"""

    # How service modules pack their artifacts (compression and encryption).
    PACKING = r"""
options:
  compression:
    description:
      - Compression of artifacts. V(zstd) needs the C(zstandard) Python library on the backup host
        and compresses with all cores.
    type: str
    choices: [gzip, zstd, none]
    default: gzip
  compression_level:
    description:
      - Compression level, 0 to 9 for V(gzip) and 1 to 22 for V(zstd).
      - V(zstd) keeps a window of at most 4 MiB and bounded match tables at every level, so that its memory
        stays bounded (levels above 9 compress a little less than the C(zstd) command would).
    type: int
    default: 6
  compression_threads:
    description:
      - Threads that compress one artifact; by default every core the module may run on. V(gzip) is
        written as C(pigz) writes it (independent blocks in one standard gzip stream, the same bytes
        whatever the number of threads); V(zstd) uses zstd's own workers.
      - One budget covers the whole run, whatever the options say - the compression threads of the items
        that run at once stay within twice the cores (at least one thread per item), and S3 upload buffers
        (O(parallel) times O(storage.upload_concurrency) parts of up to 16 MiB) within 256 MiB; the result's
        RV(totals) says what was used (C(budget)).
      - The items that run at once are O(parallel), or fewer when fewer are selected or left - a run of one
        item compresses on every core whatever O(parallel) says. When the last items finish, the threads
        they free go to the items still running - at the next block for V(gzip), at the next item for
        V(zstd) (zstd's workers are fixed when an artifact starts). C(budget.compression_threads) is the
        share of each item when the run starts, C(budget.compression_threads_max) the most one item got (0
        when nothing was compressed).
      - Reading an artifact back (verification, restore) decompresses on one core.
    type: int
  encryption:
    description:
      - Encrypt artifacts to public keys with L(age,https://age-encryption.org), so that the backup
        host cannot read what it wrote. Needs the C(age) command on the backup host.
      - Keep the private keys (identities) away from the backup host; they are needed only to restore.
    type: dict
    suboptions:
      type:
        description:
          - The encryption scheme.
        type: str
        choices: [age]
        default: age
      recipients:
        description:
          - Public keys (V(age1...), or V(ssh-ed25519 ...) / V(ssh-rsa ...) lines) that can decrypt the artifacts.
        type: list
        elements: str
        required: true
requirements:
  - zstandard (for O(compression=zstd))
  - age (the command, for O(encryption))
"""

    # What every service module decides the same way (the service runner in module_utils/_service.py).
    SERVICE = r"""
options:
  skip_existing:
    description:
      - Leave an item alone when today's backup set already holds an artifact of it, changed or not.
    type: bool
    default: false
  skip_unchanged:
    description:
      - Do not read an item again from its source when it has not changed since its newest recorded
        artifact (the module's notes say how it tells); that artifact is carried into today's backup
        set inside the storage (a hard link on a filesystem, a server-side copy on S3), so that every
        set holds every item.
      - An artifact is carried only if its sha256 was recorded once it was completely stored, and only
        if it was compressed and encrypted as today's would be; after a change of O(encryption)
        recipients every item is backed up from its source.
    type: bool
    default: true
  parallel:
    description:
      - How many items are processed at once.
    type: int
    default: 4
  fail_on_error:
    description:
      - Fail after all items were processed if any of them failed, naming each failure. Without it the
        module succeeds and its result has RV(status=partial).
      - A storage error that every item would meet (the store is read-only, full, or refuses the
        credentials) stops the run at once and fails it with that error, said once, whatever this option says.
    type: bool
    default: true
  allow_empty:
    description:
      - Succeed when the selection holds nothing to back up (filters that match nothing, an
        organization without repositories). Without it such a run fails, naming what was asked for.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for another run of the same job on the same store to finish. Only one run of a
        job writes at a time, under a lease made of records in C(<job>/leases/) that are only ever created (never
        overwritten or deleted), each with a time to live, renewed while the run lasts and taken over when its
        holder died. V(0) fails at once, naming the run that holds it.
    type: int
    default: 0
  record:
    description:
      - Record the run in the backup set it wrote, under the lease it holds - its run record, and the set's
        C(manifest.json) and C(SHA256SUMS) - and return it as RV(run), with RV(manifest_key). Not in check mode.
        A run that stored nothing and failed (refused for its options, its source or its packing, or every item
        failed) records nothing, so that it leaves every stored byte as it was; the role
        P(corebackup.backup.backup#role) records such a job as failed with M(corebackup.backup.backup_manifest).
        The record is written on every other run; C(changed) says whether artifacts were stored or carried, not
        that a record was written.
      - With V(false), record the registered result with M(corebackup.backup.backup_manifest) instead (a result
        that was recorded already is not recorded twice).
    type: bool
    default: true
"""
