"""Pure domain rules of the desk: call rules, SME size class, funding maths, the pre-check of a
draft application and the receipt hash chain.

Nothing in this package performs I/O or imports a web framework, an ORM, an HTTP client or a
settings module (``tests/shared/domain/test_purity.py`` enforces it). Services load facts, call
these functions and store the results.
"""
