"""Contract suites for every port, and helpers for testing applications built on us."""
