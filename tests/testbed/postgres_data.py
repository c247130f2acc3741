# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A PostgreSQL sample database, and what a restore must give back of a database.

``fill_sample`` puts into a database what a real one holds and a dump must carry: two schemas, tables with
identity and serial keys, text (with quotes, tabs, newlines, backslashes and non-ASCII characters), numeric,
timestamptz, jsonb and bytea columns with NULLs among them, indexes, a foreign key, a view that calls a
function, a materialized view, an advanced sequence, comments, grants to a role ``reader`` and an owner.
Deterministic: the same rows every time.

``snapshot`` reads a database into a dict that equals another's exactly when a faithful restore made one
from the other: the data of every table and materialized view (rows and an md5 over them in key order), the
columns, constraints, indexes, views, sequences (value and is_called), functions, comments, owners and the
privileges granted to others. Both take a :class:`~.services.PostgresServer` and run as its superuser.
"""

from __future__ import annotations

import json
import typing as t

from ansible_collections.corebackup.backup.tests.testbed.services import PostgresServer, quote_ident, quote_literal

# Rows of each table at scale 1.
CUSTOMERS = 300
ORDERS = 500

SAMPLE_SQL = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') THEN
    CREATE ROLE reader NOLOGIN;
  END IF;
END $$;

CREATE SCHEMA sales AUTHORIZATION {owner};

CREATE FUNCTION sales.with_tax(amount numeric, rate numeric DEFAULT 0.19) RETURNS numeric
  LANGUAGE sql IMMUTABLE STRICT
  AS $fn$ SELECT round(amount * (1 + rate), 2) $fn$;
COMMENT ON FUNCTION sales.with_tax(numeric, numeric) IS 'An amount with its sales tax, rounded to cents.';

CREATE TABLE public.customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  credit_limit numeric(12, 2),
  created_at timestamptz NOT NULL,
  profile jsonb NOT NULL DEFAULT '{{}}',
  avatar bytea
);
INSERT INTO public.customers (name, credit_limit, created_at, profile, avatar)
SELECT 'Customer ' || i || CASE WHEN i % 7 = 0 THEN ' Zoë Ångström' WHEN i % 11 = 0 THEN ' 東京' ELSE '' END,
       CASE WHEN i % 10 = 0 THEN NULL ELSE round((i * 37.13)::numeric % 10000, 2) END,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '97 minutes 13.25 seconds',
       jsonb_build_object('tier', (ARRAY['gold', 'silver', 'bronze'])[1 + i % 3], 'score', i % 97,
                          'tags', jsonb_build_array('t' || i % 5, 't' || i % 4), 'vip', i % 13 = 0),
       CASE WHEN i % 9 = 0 THEN NULL ELSE decode(repeat(md5('avatar' || i), 1 + i % 4), 'hex') END
FROM generate_series(1, {customers}) AS i;
CREATE INDEX customers_profile_idx ON public.customers USING gin (profile);
COMMENT ON COLUMN public.customers.profile IS 'Free-form attributes from the CRM.';

CREATE TABLE sales.orders (
  id serial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES public.customers (id) ON DELETE RESTRICT,
  note text,
  total numeric(12, 2) NOT NULL CHECK (total >= 0),
  ordered_at timestamptz NOT NULL DEFAULT now(),
  items jsonb,
  receipt bytea
);
INSERT INTO sales.orders (customer_id, note, total, ordered_at, items, receipt)
SELECT 1 + (i * 7) % {customers},
       CASE WHEN i % 13 = 0 THEN E'line one\\nline "two"\\tand a \\\\ backslash, it''s here'
            WHEN i % 5 = 0 THEN NULL ELSE 'order ' || md5(i::text) END,
       round((i * 19.91)::numeric % 9000, 2),
       timestamptz '2026-02-01 08:00:00+00' + i * interval '41 minutes',
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 40), 'qty', 1 + i % 6, 'price', (i % 300) / 4.0)),
       decode(md5('receipt' || i) || md5('more' || i), 'hex')
FROM generate_series(1, {orders}) AS i;
CREATE INDEX orders_customer_ordered_idx ON sales.orders (customer_id, ordered_at DESC);
COMMENT ON TABLE sales.orders IS 'Orders, one row each; totals before tax.';

CREATE VIEW sales.big_orders AS
  SELECT id, customer_id, total, sales.with_tax(total) AS total_with_tax FROM sales.orders WHERE total > 5000;

CREATE MATERIALIZED VIEW public.customer_totals AS
  SELECT c.id AS customer_id, c.name, count(o.id) AS orders, coalesce(sum(o.total), 0) AS total
  FROM public.customers AS c LEFT JOIN sales.orders AS o ON o.customer_id = c.id
  GROUP BY c.id, c.name;
CREATE UNIQUE INDEX customer_totals_customer_idx ON public.customer_totals (customer_id);

CREATE SEQUENCE sales.invoice_number START 1000;
SELECT setval('sales.invoice_number', 1234, true);

ALTER TABLE public.customers OWNER TO {owner};
ALTER TABLE sales.orders OWNER TO {owner};
ALTER VIEW sales.big_orders OWNER TO {owner};
ALTER MATERIALIZED VIEW public.customer_totals OWNER TO {owner};
ALTER SEQUENCE sales.invoice_number OWNER TO {owner};
ALTER FUNCTION sales.with_tax(numeric, numeric) OWNER TO {owner};

GRANT USAGE ON SCHEMA sales TO reader;
GRANT SELECT ON sales.orders TO reader;
"""


def fill_sample(server: PostgresServer, dbname: str, owner: str, scale: int = 1) -> None:
    """Fill ``dbname`` (created, without these objects) with the sample, its objects owned by ``owner``
    (an existing role); ``scale`` multiplies the rows (300 customers and 500 orders at 1). One transaction."""
    server.sql("BEGIN;\n" + SAMPLE_SQL.format(owner=quote_ident(owner), customers=CUSTOMERS * scale,
                                              orders=ORDERS * scale) + "\nCOMMIT;\n", dbname=dbname)


# Schemas that hold no user object.
USER_SCHEMAS = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
                "AND n.nspname NOT LIKE 'pg\\_temp\\_%'")

# Text output that does not depend on the session: UTC, ISO dates, exact floats, hex bytea.
SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1; SET bytea_output = 'hex';\n"

CATALOG_SQL = """
SELECT json_build_object(
  'schemas', (SELECT coalesce(json_object_agg(n.nspname, pg_get_userbyid(n.nspowner) ORDER BY n.nspname), '{{}}')
              FROM pg_namespace AS n WHERE {user_schemas}),
  'relations', (SELECT coalesce(json_object_agg(n.nspname || '.' || c.relname, json_build_object(
                  'kind', c.relkind, 'owner', pg_get_userbyid(c.relowner), 'populated', c.relispopulated,
                  'columns', (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
                                                               a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
                                                               a.attidentity, a.attgenerated) ORDER BY a.attnum)
                              FROM pg_attribute AS a LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
                ORDER BY n.nspname, c.relname), '{{}}')
                FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                WHERE {user_schemas} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')),
  'constraints', (SELECT coalesce(json_object_agg(n.nspname || '.' || c.relname || '.' || k.conname,
                                                  pg_get_constraintdef(k.oid) ORDER BY n.nspname, c.relname, k.conname), '{{}}')
                  FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
                  JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE {user_schemas}),
  'indexes', (SELECT coalesce(json_object_agg(n.schemaname || '.' || n.indexname, n.indexdef
                                              ORDER BY n.schemaname, n.indexname), '{{}}')
              FROM pg_indexes AS n WHERE n.schemaname NOT IN ('pg_catalog', 'information_schema')
              AND n.schemaname NOT LIKE 'pg\\_toast%'),
  'views', (SELECT coalesce(json_object_agg(n.nspname || '.' || c.relname, pg_get_viewdef(c.oid)
                                            ORDER BY n.nspname, c.relname), '{{}}')
            FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
            WHERE {user_schemas} AND c.relkind IN ('v', 'm')),
  'functions', (SELECT coalesce(json_object_agg(n.nspname || '.' || p.proname || '(' ||
                                                pg_get_function_identity_arguments(p.oid) || ')',
                                                json_build_object('owner', pg_get_userbyid(p.proowner),
                                                                  'definition', pg_get_functiondef(p.oid))
                                                ORDER BY n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                                '{{}}')
                FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
                WHERE {user_schemas} AND p.prokind IN ('f', 'p')
                AND NOT EXISTS (SELECT FROM pg_depend AS e WHERE e.classid = 'pg_proc'::regclass
                                AND e.objid = p.oid AND e.deptype = 'e')),
  'comments', (SELECT coalesce(json_object_agg(o.name, o.description ORDER BY o.name), '{{}}') FROM (
                 SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid) AS name, d.description
                 FROM pg_description AS d
                 LEFT JOIN pg_class AS c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
                 LEFT JOIN pg_proc AS p ON d.classoid = 'pg_proc'::regclass AND p.oid = d.objoid
                 LEFT JOIN pg_constraint AS k ON d.classoid = 'pg_constraint'::regclass AND k.oid = d.objoid
                 LEFT JOIN pg_namespace AS s ON d.classoid = 'pg_namespace'::regclass AND s.oid = d.objoid
                 JOIN pg_namespace AS n
                   ON n.oid = coalesce(c.relnamespace, p.pronamespace, k.connamespace, s.oid)
                 WHERE {user_schemas}) AS o),
  'grants', (SELECT coalesce(json_agg(g.line ORDER BY g.line), '[]') FROM (
               SELECT concat_ws(' ', a.privilege_type, 'ON', o.kind, o.name, 'TO',
                                coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'),
                                'BY', pg_get_userbyid(a.grantor),
                                CASE WHEN a.is_grantable THEN 'WITH GRANT OPTION' END) AS line
               FROM (SELECT 'schema' AS kind, quote_ident(n.nspname) AS name, n.nspowner AS owner,
                            coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl
                     FROM pg_namespace AS n WHERE {user_schemas}
                     UNION ALL
                     SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END,
                            quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relowner,
                            coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
                     FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                     WHERE {user_schemas} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                     UNION ALL
                     SELECT 'function', quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '('
                                        || pg_get_function_identity_arguments(p.oid) || ')', p.proowner,
                            coalesce(p.proacl, acldefault('f', p.proowner))
                     FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
                     WHERE {user_schemas} AND p.prokind IN ('f', 'p')) AS o,
                    aclexplode(o.acl) AS a
               WHERE a.grantee <> o.owner) AS g)
);
""".format(user_schemas=USER_SCHEMAS)

# The data relations, each with the columns of its primary key (none: every column, in order).
DATA_RELATIONS_SQL = """
SELECT json_build_object('schema', n.nspname, 'name', c.relname, 'kind', c.relkind,
  'key', coalesce((SELECT json_agg(a.attname ORDER BY k.ord)
                   FROM pg_index AS i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary),
                  (SELECT json_agg(a.attname ORDER BY a.attnum) FROM pg_attribute AS a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)))
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE {user_schemas} AND c.relkind IN ('r', 'p', 'm', 'S') AND NOT c.relispartition AND c.relispopulated
ORDER BY n.nspname, c.relname;
""".format(user_schemas=USER_SCHEMAS)


def _data_query(relation: dict[str, t.Any]) -> str:
    name = quote_ident(relation["schema"]) + "." + quote_ident(relation["name"])
    if relation["kind"] == "S":
        return ("SELECT json_build_object('last_value', s.last_value::text, 'is_called', s.is_called, 'definition', "
                "(SELECT concat_ws(' ', format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax, "
                "q.seqcache, q.seqcycle) FROM pg_sequence AS q WHERE q.seqrelid = %s::regclass)) FROM %s AS s;"
                % (quote_literal(name), name))
    # A partitioned table's rows are its partitions' rows: read through the parent, partitions left out above.
    # Each row hashed on its own, then the hashes in key order: 33 bytes a row in memory, whatever the row's size.
    order = ", ".join("_row_.%s" % quote_ident(column) for column in relation["key"])
    return ("SELECT json_build_object('rows', count(*), 'md5', md5(coalesce(string_agg(md5(ROW(_row_.*)::text), '' "
            "ORDER BY %s), ''))) FROM %s AS _row_;" % (order, name))


def snapshot(server: PostgresServer, dbname: str) -> dict[str, t.Any]:
    """What a faithful restore of ``dbname`` into another database gives back the same, as a dict of plain values
    (sorted, deterministic): compare two with ``==``. Keys: schemas (their owners), relations (kind, owner,
    populated, columns with type, NOT NULL, default, identity), constraints, indexes, views (definitions,
    materialized ones too), functions, comments, grants (to roles other than the owner; an unset ACL counts as
    its default), data (every table and populated materialized view: rows and an md5 over them in primary-key
    order, or in column order without a key) and sequences (last_value, is_called, type and parameters). Reads
    the data one table at a time, not in one snapshot: compare a database nobody writes to."""
    state = json.loads(server.sql(SESSION + CATALOG_SQL, dbname=dbname))
    relations = [json.loads(line) for line in server.sql(DATA_RELATIONS_SQL, dbname=dbname).splitlines()]
    values = server.sql(SESSION + "\n".join(_data_query(relation) for relation in relations),
                        dbname=dbname).splitlines() if relations else []
    state["data"], state["sequences"] = {}, {}
    for relation, value in zip(relations, values):
        which = "sequences" if relation["kind"] == "S" else "data"
        state[which]["%s.%s" % (relation["schema"], relation["name"])] = json.loads(value)
    return state
