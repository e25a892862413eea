"""ISMRMRD raw data (https://ismrmrd.github.io): header and acquisitions read through the ``ismrmrd`` package
(:mod:`lpam.data.ismrmrd.header`, :mod:`lpam.data.ismrmrd.reader`)."""
from lpam.data.ismrmrd.reader import IsmrmrdScan, read_ismrmrd

__all__ = ["IsmrmrdScan", "read_ismrmrd"]
