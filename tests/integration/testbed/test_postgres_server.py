# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The tests' PostgreSQL server (a cluster of the session's own) and the sample and snapshot helpers the
postgres_dump tests and the benchmark build on."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from ansible_collections.corebackup.backup.tests.testbed.postgres_data import CUSTOMERS, ORDERS, fill_sample, snapshot
from ansible_collections.corebackup.backup.tests.testbed.services import PostgresError


def unique(prefix: str) -> str:
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def major(version: str) -> int:
    return int(re.search(r"(\d+)(?:\.\d+)+", version).group(1))


def test_the_server_is_postgresql_15_on_loopback_with_scram_passwords_and_clients_as_new(postgres_server):
    version, address, listen, encryption = postgres_server.sql(
        "SHOW server_version; SELECT inet_server_addr(); SHOW listen_addresses; SHOW password_encryption;").splitlines()
    assert major(version) == 15 and version.startswith("15.")
    assert address == listen == "127.0.0.1"
    assert postgres_server.port == int(postgres_server.sql("SHOW port"))
    assert encryption == "scram-sha-256"
    assert postgres_server.uri == "postgresql://postgres:%s@127.0.0.1:%d/postgres" % (
        postgres_server.password, postgres_server.port)
    assert postgres_server.password not in repr(postgres_server)
    # A wrong password is refused, and the error says so without showing the one that was given.
    with pytest.raises(PostgresError, match='password authentication failed for user "postgres"') as refused:
        postgres_server.sql("SELECT 1", user="postgres", password="not-the-password")
    assert "not-the-password" not in str(refused.value)
    # The clients a backup runs are at least the server's major version.
    for tool in ("pg_dump", "pg_dumpall", "pg_restore", "psql"):
        out = subprocess.run([os.path.join(postgres_server.bin_dir, tool), "--version"], capture_output=True, text=True,
                             check=True).stdout
        assert tool in out and major(out) >= major(version), out


def test_a_role_of_its_own_logs_in_and_works_in_the_database_it_owns_but_no_further(postgres_server):
    role, password, database = unique("app"), "pa'ss " + uuid.uuid4().hex, unique("appdb")
    postgres_server.create_role(role, password, "LOGIN")
    postgres_server.create_database(database, owner=role)
    try:
        as_role = {"dbname": database, "user": role, "password": password}
        assert postgres_server.sql(
            "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'kept'), (2, 'too');"
            "SELECT current_user, count(*) FROM notes;", **as_role) == "%s|2" % role
        with pytest.raises(PostgresError, match="permission denied to create role") as denied:
            postgres_server.sql("CREATE ROLE intruder", **as_role)
        assert password not in str(denied.value)
        with pytest.raises(PostgresError, match="password authentication failed"):
            postgres_server.sql("SELECT 1", user=role, password=password + "x")
    finally:
        postgres_server.drop_database(database)
    assert postgres_server.sql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % database) == "0"


def test_the_sample_and_its_snapshot_tell_a_faithful_copy_from_a_changed_one(postgres_server, tmp_path):
    owner, source, copy, restored = unique("owner"), unique("sample"), unique("copy"), unique("restored")
    postgres_server.create_role(owner, None, "NOLOGIN")
    postgres_server.create_database(source, owner=owner)
    try:
        fill_sample(postgres_server, source, owner)
        before = snapshot(postgres_server, source)
        assert snapshot(postgres_server, source) == before
        # It holds what the sample made, as a restore test reads it.
        assert before["data"]["public.customers"]["rows"] == CUSTOMERS
        assert before["data"]["sales.orders"]["rows"] == ORDERS
        assert before["data"]["public.customer_totals"]["rows"] == CUSTOMERS  # the materialized view's rows
        assert before["sequences"]["sales.invoice_number"]["last_value"] == "1234"
        assert before["sequences"]["sales.invoice_number"]["is_called"] is True
        assert before["sequences"]["sales.orders_id_seq"]["last_value"] == str(ORDERS)
        assert before["schemas"]["sales"] == owner
        assert sorted(before["relations"]) == ["public.customer_totals", "public.customers", "public.customers_id_seq",
                                               "sales.big_orders", "sales.invoice_number", "sales.orders",
                                               "sales.orders_id_seq"]
        assert {relation["owner"] for relation in before["relations"].values()} == {owner}
        assert before["relations"]["sales.big_orders"]["kind"] == "v"
        assert "sales.with_tax(orders.total) AS total_with_tax" in before["views"]["sales.big_orders"]
        assert "public.customers_profile_idx" in before["indexes"]
        assert "CREATE INDEX orders_customer_ordered_idx ON sales.orders USING btree (customer_id, ordered_at DESC)" == \
            before["indexes"]["sales.orders_customer_ordered_idx"]
        assert before["constraints"]["sales.orders.orders_customer_id_fkey"] == \
            "FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE RESTRICT"
        assert "SELECT ON table sales.orders TO reader BY %s" % owner in before["grants"]
        assert "USAGE ON schema sales TO reader BY %s" % owner in before["grants"]
        assert before["comments"]["table sales.orders"].startswith("Orders, one row each")
        assert before["functions"]["sales.with_tax(amount numeric, rate numeric)"]["owner"] == owner
        # A copy made by the server itself is the same; one changed row, grant or sequence is not.
        postgres_server.create_database(copy, template=source)
        assert snapshot(postgres_server, copy) == before
        postgres_server.sql("UPDATE public.customers SET name = name || '.' WHERE id = 42;", dbname=copy)
        changed = snapshot(postgres_server, copy)
        assert changed["data"]["public.customers"] != before["data"]["public.customers"]
        assert {key: value for key, value in changed.items() if key != "data"} == \
            {key: value for key, value in before.items() if key != "data"}
        assert {key: value for key, value in changed["data"].items() if key != "public.customers"} == \
            {key: value for key, value in before["data"].items() if key != "public.customers"}
        postgres_server.sql("REVOKE SELECT ON sales.orders FROM reader; SELECT nextval('sales.invoice_number');",
                            dbname=copy)
        again = snapshot(postgres_server, copy)
        assert again["grants"] != before["grants"] and again["sequences"] != before["sequences"]
        # pg_dump's custom format restored by pg_restore into an empty database: the same.
        dump = tmp_path / "sample.dump"
        client = postgres_server.client_env(postgres_server.password)
        connection = ["-h", postgres_server.host, "-p", str(postgres_server.port), "-U", postgres_server.superuser]
        subprocess.run([os.path.join(postgres_server.bin_dir, "pg_dump"), "-Fc", "-f", str(dump), *connection, source],
                       env=client, check=True, capture_output=True, timeout=120)
        postgres_server.sql("CREATE DATABASE %s OWNER %s TEMPLATE template0;" % (restored, owner))
        subprocess.run([os.path.join(postgres_server.bin_dir, "pg_restore"), "--exit-on-error", "-d", restored,
                        *connection, str(dump)], env=client, check=True, capture_output=True, timeout=120)
        assert snapshot(postgres_server, restored) == before
    finally:
        for database in (source, copy, restored):
            postgres_server.drop_database(database)
        postgres_server.sql("DROP ROLE %s;" % owner)
