"""Read-model stores: ``sqlite`` (embedded), ``memory`` (tests), ``postgres``."""
