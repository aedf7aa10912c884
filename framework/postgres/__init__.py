"""Shared PostgreSQL pieces: URLs, the connection pool, DDL and error translation.

Only the PostgreSQL backends import this package, so ``import framework`` never
imports psycopg.
"""
