"""The ``keel`` command line: a thin adapter over the REST API (see ``main.py``)."""
