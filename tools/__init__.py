"""Training, export and maintenance tools for ugcodec (not part of the installed package).

Run them from the repository root as modules, e.g. ``python -m tools.train --help``;
their extra dependencies are the ``train`` extra (``pip install -e ".[train]"``).
The library modules: :mod:`tools.training` (the two training stages), :mod:`tools.losses`,
:mod:`tools.teachers` (frozen image encoders), :mod:`tools.widening`,
:mod:`tools.context_model` (the float channel context), :mod:`tools.export` (weights
files) and :mod:`tools.fuzzing` (mutations of .ugc files).
"""
