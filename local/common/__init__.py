"""What every part of the local stack shares; it emulates nothing.

``console`` (stderr lines for people: stdout is the functions' alone), ``background`` (task
shutdown), ``http`` (the JSON error answer of every local-only route), ``lifeline`` (the
stack lives as long as whoever started it: make, uv or a launcher; its moto child with it).

Must not import: any other part of ``local/`` (it is the bottom of the local stack), nor
``client/``, ``components/`` or ``bench/``.
"""
