"""Log backends: ``memory`` (reference), ``segments`` (files) and ``postgres``."""
