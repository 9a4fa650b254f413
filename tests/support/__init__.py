"""Helpers shared by the test suite: images, in-process service clients, a real server, the browser.

Importable as ``support`` everywhere (``pythonpath = ["tests"]`` in ``pyproject.toml``).
"""
