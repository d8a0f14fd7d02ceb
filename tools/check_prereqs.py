"""Check what the add-on needs but does not install itself: Odoo 18 and PostgreSQL.

Exit 1 with a message naming what is missing; print what was found otherwise.
"""

import os
import sys


def fail(message):
    print(f"setup: {message}", file=sys.stderr)
    sys.exit(1)


def check_odoo():
    try:
        import odoo.release
    except ImportError as exc:
        fail(
            "Odoo 18 is not importable from this Python "
            f"({sys.executable}): {exc}.\n"
            "Install Odoo 18.0 first (source install: pip install -r requirements.txt, then "
            "pip install -e <odoo source>), or run `make setup PYTHON=/path/to/odoo/python`."
        )
    version = odoo.release.version_info
    if tuple(version[:2]) != (18, 0):
        fail(f"Odoo 18.0 is required; this Python has Odoo {odoo.release.version}.")
    print(f"setup: Odoo {odoo.release.version} found at {os.path.dirname(odoo.__file__)}")


def check_postgres():
    try:
        import psycopg2
    except ImportError:
        fail("psycopg2 is missing: Odoo's requirements are not installed.")
    params = {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER") or None,
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    try:
        conn = psycopg2.connect(**{k: v for k, v in params.items() if v})
    except psycopg2.OperationalError as exc:
        fail(
            f"PostgreSQL does not answer at {params['host']}:{params['port']}: "
            f"{str(exc).strip()}\nStart it (e.g. `pg_ctlcluster 15 main start`) or set "
            "PGHOST/PGPORT/PGUSER."
        )
    with conn, conn.cursor() as cr:
        cr.execute("SHOW server_version")
        print(f"setup: PostgreSQL {cr.fetchone()[0]} answers at {params['host']}:{params['port']}")
    conn.close()


if __name__ == "__main__":
    check_odoo()
    check_postgres()
