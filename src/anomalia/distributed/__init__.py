"""Scoring whole archives on a Ray cluster (``anomalia batch``): a front end over the inspect use cases.

``sources`` (which files), ``scorer`` (the use case, called once per batch of files, no Ray),
``results`` (parts written as they come, resume, the final file) and ``job`` (the only module
that imports Ray). Installed with the ``ray`` extra: ``pip install 'anomalia[ray]'``.
"""
