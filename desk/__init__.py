"""The `desk` command: the composition root above the services and the shared library (it may import both;
neither imports it)."""
