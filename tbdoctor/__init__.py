"""tbdoctor: finds and fixes broken deep-learning environments."""

__version__ = "0.1.0"
