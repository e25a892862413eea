"""LPAM: learned proximal alternating minimization and LPAM-net."""
__version__ = "0.1.0"
