"""I/O and helpers that both programs need: the hub and the laptop (``client/``) may import
this package and ``hub.protocol``, nothing else of ``hub``.

It may import ``hub.protocol`` but nothing else of ``hub``; ``hub.protocol`` never imports it.
"""
