"""The management commands: ``python -m framework <group> <command>``."""
