"""The ISMRMRD XML header (``/dataset/xml``): what lpam needs of it, checked, with errors naming the file.

Read through the ``ismrmrd`` package's schema (``ismrmrd.xsd.CreateFromDocument``): the encoded and
reconstructed matrices (encodedSpace / reconSpace matrixSize), the centre of the
phase-encode lines (encodingLimits kspace_encoding_step_1), the trajectory and the receiver channels.
lpam reads one 2-D encoding per file, Cartesian or radial; 3-D encoding, spiral, EPI and other trajectories
are refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CARTESIAN = "cartesian"
RADIAL = "radial"
TRAJECTORIES = {"cartesian": CARTESIAN, "radial": RADIAL, "goldenangle": RADIAL}  # header value -> lpam's kind


@dataclass(frozen=True)
class Encoding:
    """One file's 2-D encoding: the encodedSpace and reconSpace matrices (x, y) in samples, the k-space centre
    line of kspace_encode_step_1, the trajectory kind (``cartesian`` / ``radial``) and the receiver channels
    of the header (None when absent)."""

    encoded_matrix: tuple[int, int]
    recon_matrix: tuple[int, int]
    step1_center: int
    trajectory: str
    coils: int | None

    @property
    def readout_size(self) -> int:
        """Samples kept along the readout (x): the reconSpace matrix x when the encodedSpace matrix x is larger
        (readout oversampling, removed), else the encodedSpace matrix x."""
        encoded, recon = self.encoded_matrix[0], self.recon_matrix[0]
        return recon if 0 < recon < encoded else encoded


def _parse(xml: bytes | str, path: Path):
    import ismrmrd

    try:
        return ismrmrd.xsd.CreateFromDocument(xml)
    except Exception as error:  # xsdata raises parser errors of several types
        raise ValueError(f"{path}: the ISMRMRD XML header cannot be parsed: {error}") from error


def _check_2d(encoding, path: Path) -> None:
    """3-D encoding (a matrix z > 1 or kspace_encode_step_2 used) is refused."""
    depth = encoding.encodedSpace.matrixSize.z
    step2 = encoding.encodingLimits.kspace_encoding_step_2
    if depth > 1 or (step2 is not None and step2.maximum > 0):
        raise ValueError(f"{path}: 3-D encoding (encodedSpace matrix z = {depth}, kspace_encode_step_2 up to "
                         f"{0 if step2 is None else step2.maximum}) is not supported; lpam reconstructs 2-D slices")


def parse_header(xml: bytes | str, path: Path) -> Encoding:
    """The :class:`Encoding` of an ISMRMRD XML header; a ValueError naming ``path`` for an unparsable header,
    several or no encodings, 3-D encoding, or a trajectory other than Cartesian and radial."""
    header = _parse(xml, path)
    if len(header.encoding) != 1:
        raise ValueError(f"{path}: the header has {len(header.encoding)} encoding spaces; lpam reads files "
                         "with exactly one")
    encoding = header.encoding[0]
    _check_2d(encoding, path)
    trajectory = encoding.trajectory.value
    if trajectory not in TRAJECTORIES:
        raise ValueError(f"{path}: the {trajectory} trajectory is not supported; lpam reads Cartesian and radial "
                         "2-D acquisitions")
    encoded, recon = encoding.encodedSpace, encoding.reconSpace
    if min(encoded.matrixSize.x, encoded.matrixSize.y) < 1:
        raise ValueError(f"{path}: the encodedSpace matrix {encoded.matrixSize.x} x {encoded.matrixSize.y} is empty")
    step1 = encoding.encodingLimits.kspace_encoding_step_1
    system = header.acquisitionSystemInformation
    return Encoding(
        encoded_matrix=(encoded.matrixSize.x, encoded.matrixSize.y),
        recon_matrix=(recon.matrixSize.x, recon.matrixSize.y),
        step1_center=step1.center if step1 is not None else encoded.matrixSize.y // 2,
        trajectory=TRAJECTORIES[trajectory],
        coils=None if system is None else system.receiverChannels,
    )
