"""A tiny app whose coverage the fixture service's tests measure."""

import os


def dsn() -> str:
    return (f"host={os.environ['POSTGRES_HOST']} port={os.environ['POSTGRES_PORT']} "
            f"user={os.environ['POSTGRES_USER']} password={os.environ['POSTGRES_PASSWORD']} "
            f"dbname={os.environ['POSTGRES_DB']}")
