# Copyright (c) corebackup.backup contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write ``schemas/*.schema.json`` from ``plugins/module_utils/_schema.py`` (run from the collection's root, after
a change of a schema; ``tests/unit/plugins/module_utils/test_manifest.py`` checks the files equal the code):

    python tests/testbed/write_schemas.py

An older manifest version's file never changes: the script refuses to rewrite one that differs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    spec = importlib.util.spec_from_file_location("_schema", os.path.join(ROOT, "plugins", "module_utils", "_schema.py"))
    schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema)
    files = {"manifest-v%d" % version: document for version, document in schema.SCHEMAS.items()}
    files.update(schema.RECORD_SCHEMAS)
    for name, document in sorted(files.items()):
        path = os.path.join(ROOT, "schemas", name + ".schema.json")
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                if handle.read() == text:
                    continue
            if name.startswith("manifest-v") and int(name[len("manifest-v"):]) < schema.SCHEMA_VERSION:
                print("refusing to rewrite %s: an older version's schema never changes" % path, file=sys.stderr)
                return 1
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
