"""The ``knowbase`` command line: thin front ends over the Python API."""
