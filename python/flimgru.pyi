"""flimgru: fluorescence lifetimes per pixel with a GRU network.

The fixed-point engine computes exactly what the FPGA computes (bit for
bit with ``flimgru infer`` / ``flimgru map``); the float engine runs the
same weights in f32. ``read`` a recording, ``infer`` lifetimes,
``simulate`` test data, ``Model`` for model files.
"""

from os import PathLike
from typing import Any, Literal, Mapping, Optional, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

class Instrument(TypedDict):
    """The time axis and provenance of a recording, as ``read`` returns it."""

    bin_width_ns: Optional[float]
    """Width of one time bin (ns); None for .npy/.csv read without a bin
    width (their bins are taken to be the model's gates)."""
    period_ns: Optional[float]
    """Laser (sync) period (ns), None if the file does not record it."""
    channels: int
    """Time channels (bins) per pixel: ``counts.shape[2]``."""
    valid_bins: Tuple[int, int]
    """``(start, stop)``: the bins that hold photons in the whole image."""
    source: str
    """What the data came from, e.g. ``"PTU T3 image (...)"``."""
    notes: list[str]
    """What the reader did (frames summed, detector channels, rounding)."""

class Lifetimes(TypedDict):
    """``infer``'s result: arrays of the input's shape less the gate axis."""

    tau1: npt.NDArray[np.float64]
    """Short lifetime (ns); NaN where masked."""
    tau2: npt.NDArray[np.float64]
    """Long lifetime (ns); NaN where masked."""
    fraction: npt.NDArray[np.float64]
    """Amplitude fraction of tau1 (0..1); NaN where masked."""
    tau_mean: npt.NDArray[np.float64]
    """fraction * tau1 + (1 - fraction) * tau2 (ns); NaN where masked."""
    photons: npt.NDArray[np.float64]
    """Photons per pixel in the model's window (after grid matching)."""
    mask: npt.NDArray[np.bool_]
    """True where masked: fewer than ``min_photons`` photons, no lifetime."""
    out_of_range: npt.NDArray[np.bool_]
    """True where an unmasked pixel's decay is outside what the model was
    trained on: its lifetimes are not to be trusted (a UserWarning says
    how many)."""

class Model:
    """A flimgru model file: the network, the data it was trained on and,
    for a quantised student, the integer weights of the fixed-point engine."""

    @staticmethod
    def load(path: Union[str, PathLike[str], None] = None) -> "Model":
        """Load a model file (JSON); without a path, the shipped W8A12
        student (models/student-w8a12.json, built into the package).

        Raises OSError if the file cannot be read, ValueError if it is not
        a valid flimgru model."""
    def info(self) -> dict[str, Any]:
        """name, source (path or "shipped"), command, network, parameters,
        gates, gate_width_ns, quantized, bits and act_bits (weight and
        activation widths; None for a float model),
        default_engine ("fixed" or "float"), data (training data spec),
        data_seed, data_pixels, metrics (None if not evaluated)."""
    @property
    def name(self) -> str:
        """The model's name."""
    @property
    def gates(self) -> int:
        """Gates per pixel the model reads."""

def read(
    path: Union[str, PathLike[str]],
    *,
    bin_width: Optional[float] = None,
    dtime_binning: int = 1,
    channel: Optional[int] = None,
    block: Optional[int] = None,
) -> Tuple[npt.NDArray[np.uint32], Instrument]:
    """Read a FLIM recording: .ptu (T3 image) / .phu, .sdt, or .npy/.csv
    histograms; returns ``(counts [height, width, channels] uint32,
    instrument)``.

    ``bin_width``: bin width (ns) of .npy/.csv histograms whose bins are
    not the model's gates. ``dtime_binning``: PTU, micro-time channels
    summed per bin. ``channel``: PTU, only this detector channel.
    ``block``: SDT, the data block (0-based).

    Raises OSError if the file cannot be read, ValueError if its content or
    an option is invalid."""

def infer(
    counts: npt.NDArray[Any],
    model: Optional[Model] = None,
    engine: Optional[Literal["fixed", "float"]] = None,
    *,
    instrument: Optional[Mapping[str, Any]] = None,
    min_photons: float = 50.0,
) -> Lifetimes:
    """Per-pixel lifetimes of ``counts`` ``[height, width, gates]`` (or
    ``[pixels, gates]``; C-contiguous, native byte order, unsigned or
    signed integers, float32 or float64; finite, non-negative, whole
    numbers for the fixed engine) by the fixed-point engine or the float
    network: the computation of ``flimgru map``.

    ``model``: default the shipped W8A12 student. ``engine``: default
    fixed for a quantised model, float otherwise. ``instrument``: the dict
    ``read`` returns; with a ``bin_width_ns`` the bins are matched to the
    model's gate grid, without one they must be the model's gates.
    ``min_photons``: pixels with fewer photons are masked. Pixels outside
    the model's training range are flagged in ``out_of_range`` (the check
    is made on a model's first use, from 40,000 simulated training pixels,
    and kept).

    The GIL is released while the engine runs. Raises ValueError naming
    the problem for bad counts or options."""

def simulate(
    shape: Union[int, Tuple[int, int]],
    seed: int = 0,
    *,
    spec: Optional[Mapping[str, Any]] = None,
) -> Tuple[npt.NDArray[np.uint32], dict[str, npt.NDArray[Any]]]:
    """Simulated photon counts for testing (``flimgru simulate``'s
    simulator: same seed, same counts).

    ``shape``: ``n`` independent pixels (counts ``[n, gates]``) or
    ``(height, width)``, an image of cells (``flimgru simulate --image``;
    counts ``[height, width, gates]``). ``spec``: simulator fields to
    change, e.g. ``{"photons": [200, 2000]}``.

    Returns ``(counts, truth)``: truth holds per-pixel arrays tau1, tau2,
    fraction, mono, photons, expected_photons, background, irf_centre,
    irf_fwhm, irf_tail, and for an image region (0 background, 1
    cytoplasm, 2 nucleus)."""
