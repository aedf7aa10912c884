"""Native event stores: backends that implement ``EventStore`` themselves."""
