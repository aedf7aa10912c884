"""Projection backends: read-model stores (``memory``, ``sqlite``, ``postgres``) on a
shared ``base``, and consumer groups (``file_group``, ``postgres``)."""
