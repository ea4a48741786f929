"""The sandbox's stand-in for ``pg_restore``: the archives the sandbox's ``pg_dump`` writes, read back.

Owns: ``pg_restore --list ARCHIVE`` (a table of contents as the real one prints it: one ``TABLE`` and one
``TABLE DATA`` entry per table, and the extensions the database had, with their comments, which a restore script
filters out) and ``pg_restore --use-list=LIST --file=- ARCHIVE`` (the SQL that recreates the tables the list keeps,
``CREATE TABLE schema.name ();``, then the rows of those whose data it keeps, one ``INSERT INTO schema.name VALUES
(...);`` each, as ``pg_dump --inserts`` writes them; the sandbox's psql then runs it). An archive of a sandbox
older than rows holds none. An archive that does not start with the
custom format's magic is refused as the real one refuses it. ``pg_restore`` connects to no database here: it only
turns an archive into SQL, as the restore scripts use it.
Must not: import anything beyond the standard library (``sandbox_shim`` runs it as a sibling file).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

DUMP_MAGIC = b"PGDMP"
_TABLE_ENTRY = re.compile(r"^[0-9]+; 1259 [0-9]+ TABLE ([a-z_][a-z0-9_]*) ([a-z_][a-z0-9_]*) ")
_DATA_ENTRY = re.compile(r"^[0-9]+; 0 [0-9]+ TABLE DATA ([a-z_][a-z0-9_]*) ([a-z_][a-z0-9_]*) ")


def _value(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and index + 1 < len(args):
            return args[index + 1]
    return None


def _archive(args: list[str], stdin: Any) -> dict[str, Any] | None:
    words = [a for a in args if not a.startswith("-")]
    list_file = _value(args, "--use-list") or _value(args, "-L")
    paths = [w for w in words if w not in (list_file, _value(args, "--file") or _value(args, "-f"))]
    data = Path(paths[-1]).read_bytes() if paths else stdin.read()
    if not data.startswith(DUMP_MAGIC):
        print("pg_restore: error: input file does not appear to be a valid archive", file=sys.stderr)
        return None
    archive: dict[str, Any] = json.loads(data[len(DUMP_MAGIC):].decode())
    return archive


def pg_restore(args: list[str], stdin: Any, stdout: Any) -> int:
    archive = _archive(args, stdin)
    if archive is None:
        return 1
    if "--list" in args or "-l" in args:
        stdout.write(f";\n; Archive created by the sandbox's pg_dump\n;     dbname: {archive['database']}\n;\n")
        stdout.write('3; 3079 16385 EXTENSION - uuid-ossp\n4225; 0 0 COMMENT - EXTENSION "uuid-ossp"\n')
        for number, table in enumerate(archive["tables"], start=200):
            schema, name = table.split(".", 1)
            stdout.write(f"{number}; 1259 {16400 + number} TABLE {schema} {name} owner\n")
        for number, table in enumerate(archive["tables"], start=3000):
            schema, name = table.split(".", 1)
            stdout.write(f"{number}; 0 {16600 + number} TABLE DATA {schema} {name} owner\n")
        return 0
    list_file = _value(args, "--use-list") or _value(args, "-L")
    kept = archive["tables"]
    with_data = archive["tables"]
    if list_file is not None:
        lines = Path(list_file).read_text().splitlines()
        if any(" EXTENSION " in line for line in lines):
            print('pg_restore: error: could not execute query: ERROR:  must be owner of extension uuid-ossp',
                  file=sys.stderr)
            return 1
        kept = [f"{m.group(1)}.{m.group(2)}" for line in lines if (m := _TABLE_ENTRY.match(line))]
        with_data = [f"{m.group(1)}.{m.group(2)}" for line in lines if (m := _DATA_ENTRY.match(line))]
    if (_value(args, "--file") or _value(args, "-f")) != "-":
        print("pg_restore: error: the sandbox's pg_restore writes SQL to --file=- only", file=sys.stderr)
        return 1
    for table in kept:
        stdout.write(f"CREATE TABLE {table} ();\n")
    rows: dict[str, list[str]] = archive.get("rows", {})
    for table in with_data:
        for row in rows.get(table, []):
            stdout.write(f"INSERT INTO {table} VALUES ({row});\n")  # noqa: S608 - the archive's own rows, as SQL
    stdout.flush()
    return 0
