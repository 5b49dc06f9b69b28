"""audiohost: a render host beside the DAW, on AudioLDM."""

__version__ = "0.2.0"
