"""`pgver`: prints psycopg2's version and the libpq it runs on; `--table` (with the
`prod` requirements's tabulate) as a table. Exit 0 when psycopg2 and libpq load."""
import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="pgver", description=__doc__)
    parser.add_argument("--table", action="store_true", help="print a table (needs tabulate)")
    args = parser.parse_args()
    import psycopg2
    import psycopg2.extensions

    rows = [
        ("python", sys.version.split()[0]),
        ("psycopg2", psycopg2.__version__.split()[0]),
        ("libpq", str(psycopg2.extensions.libpq_version())),
    ]
    if args.table:
        from tabulate import tabulate

        print(tabulate(rows, headers=["component", "version"]))
    else:
        print("pgver: " + ", ".join(f"{k} {v}" for k, v in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
