"""Generation engines behind one interface (see :mod:`core.engines.base`)."""
