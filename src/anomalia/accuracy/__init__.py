"""The accuracy suite: synthetic surfaces with known defects, and a runner that scores model options on them.

Build and score with ``python -m anomalia.accuracy`` (``make accuracy``); docs/ACCURACY.md says
what is in the suite and shows the latest figures. Not part of the service: nothing here is
imported by ``core``, ``service`` or ``store``.
"""
