"""pgver: a kiln `init` example. Reports psycopg2 and the libpq it loads (no database)."""

__version__ = "0.1.0"
