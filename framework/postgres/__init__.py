"""Shared PostgreSQL pieces: URLs, the connection pool, prepared statements, error
translation, NOTIFY, and the runner of every subsystem's migrations.

Only the PostgreSQL backends import this package, so ``import framework`` never
imports psycopg.
"""
