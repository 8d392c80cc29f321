"""A small, fast reader and writer for WFDB records (header + signal file).

Why not ``wfdb.rdsamp``: standardizing a million records is dominated by per-record overhead,
and the records we meet (PTB-XL, MIMIC-IV-ECG, CinC-2021 ``.mat``) use a handful of storage
formats that numpy reads in one call. This module parses the header text itself, reads the
signal file with ``np.fromfile`` and returns physical units. The test suite checks it against
``wfdb.rdsamp`` on real records.

Supported formats: 16, 61, 24, 32, 80, 160, 212 with one sample per frame, any byte offset
(``16+24`` is how a CinC ``.mat`` file skips its 24-byte MATLAB header).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class WfdbError(ValueError):
    """A header or signal file that cannot be read as it claims to be."""


# format -> (numpy dtype, bytes per sample, value that marks an invalid sample, offset to subtract)
_FORMATS = {
    "16": ("<i2", 2, -32768, 0),
    "61": (">i2", 2, -32768, 0),
    "24": (None, 3, -(2**23), 0),
    "32": ("<i4", 4, -(2**31), 0),
    "80": ("u1", 1, -128, 128),
    "160": ("<u2", 2, -32768, 32768),
    "212": (None, 1.5, -2048, 0),
}

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}


def unit_to_mv(unit: str) -> float:
    """Factor that converts a value in ``unit`` to millivolts."""
    try:
        return _UNIT_TO_MV[unit.strip().lower()]
    except KeyError:
        raise WfdbError(f"unknown voltage unit {unit!r}") from None


@dataclass
class SignalSpec:
    file_name: str
    fmt: str
    byte_offset: int
    gain: float
    baseline: int
    units: str
    name: str


@dataclass
class Header:
    record_name: str
    n_signals: int
    fs: float
    n_samples: int | None
    signals: list[SignalSpec]
    comments: list[str] = field(default_factory=list)

    def comment_fields(self) -> dict[str, str]:
        """``# Key: value`` comment lines (CinC-style ``Age``, ``Sex``, ``Dx``) as a dict."""
        out = {}
        for line in self.comments:
            if ":" in line:
                key, value = line.split(":", 1)
                out[key.strip()] = value.strip()
        return out


_FMT_RE = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN_RE = re.compile(r"^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:/(\S+))?$")


def parse_header(text: str, where: str = "header") -> Header:
    """Parse the text of a single-segment WFDB ``.hea`` file."""
    lines = [ln.strip() for ln in text.splitlines()]
    comments = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    if not body:
        raise WfdbError(f"{where}: empty header")
    first = body[0].split()
    try:
        if "/" in first[0]:
            raise WfdbError(f"{where}: multi-segment records are not supported")
        n_signals = int(first[1])
        fs = float(first[2].split("/")[0]) if len(first) > 2 else 250.0
        n_samples = int(first[3]) if len(first) > 3 else None
    except (IndexError, ValueError) as exc:
        raise WfdbError(f"{where}: unreadable record line {body[0]!r}") from exc
    if len(body) - 1 < n_signals:
        raise WfdbError(f"{where}: {n_signals} signals declared but {len(body) - 1} signal lines")
    signals = []
    for line in body[1 : 1 + n_signals]:
        parts = line.split()
        try:
            m = _FMT_RE.match(parts[1])
            if not m:
                raise WfdbError(f"{where}: unreadable format field {parts[1]!r}")
            fmt, spf, _skew, offset = m.groups()
            if fmt not in _FORMATS:
                raise WfdbError(f"{where}: WFDB format {fmt} is not supported")
            if spf not in (None, "1"):
                raise WfdbError(f"{where}: {spf} samples per frame is not supported")
            gain, baseline, units = 200.0, None, "mV"
            if len(parts) > 2:
                g = _GAIN_RE.match(parts[2])
                if not g:
                    raise WfdbError(f"{where}: unreadable gain field {parts[2]!r}")
                gain = float(g.group(1)) or 200.0
                baseline = int(g.group(2)) if g.group(2) is not None else None
                units = g.group(3) or "mV"
            adc_zero = int(parts[4]) if len(parts) > 4 else 0
            name = " ".join(parts[8:]) if len(parts) > 8 else f"sig{len(signals)}"
        except (IndexError, ValueError) as exc:
            raise WfdbError(f"{where}: unreadable signal line {line!r}") from exc
        signals.append(SignalSpec(parts[0], fmt, int(offset or 0), gain,
                                  adc_zero if baseline is None else baseline, units, name))
    return Header(first[0], n_signals, fs, n_samples, signals, comments)


def read_header(path: str | Path) -> Header:
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise WfdbError(f"cannot read header {path}: {exc.strerror}") from exc
    return parse_header(text, where=str(path))


def _decode(raw: bytes, fmt: str, n_cols: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Bytes of one signal file -> (integer array [n_samples, n_cols], mask of invalid samples or None)."""
    dtype, _, invalid, offset = _FORMATS[fmt]
    if fmt == "212":
        b = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int64)
        first = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        second = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
        vals = np.empty(first.size * 2, dtype=np.int64)
        vals[0::2], vals[1::2] = first, second
        vals[vals >= 2048] -= 4096
    elif fmt == "24":
        b = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int64)
        vals = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        vals[vals >= 2**23] -= 2**24
    else:                              # 16, 61, 32 are a view of the bytes, no copy
        vals = np.frombuffer(raw, dtype=dtype, count=len(raw) // np.dtype(dtype).itemsize)
        if offset:                     # 80, 160 store offset-binary
            vals = vals.astype(np.int64) - offset
    n = vals.size // n_cols
    vals = vals[: n * n_cols].reshape(n, n_cols)
    bad = vals == invalid
    return vals, (bad if bad.any() else None)


def signal_file_name(file_name: str, record_name: str) -> str:
    """``file_name`` from a header, when it names a file beside the header; ``WfdbError`` when it
    is absolute or has a directory part (``../../etc/passwd``): a record's signal files live in
    its own folder, and a crafted header must not make us read anything else."""
    if (not file_name or file_name in (".", "..") or "/" in file_name or "\\" in file_name
            or "\x00" in file_name or re.match(r"^[A-Za-z]:", file_name)):
        raise WfdbError(f"{record_name}: signal file {file_name!r} named in the header is not a file "
                        f"beside the header (absolute, or in another folder): refused")
    return file_name


def read_signal(header: Header, directory: str | Path) -> np.ndarray:
    """Physical signal [n_samples, n_signals] (float32, in each signal's own unit; NaN = invalid)."""
    directory = Path(directory)
    n = header.n_samples
    out = None
    by_file: dict[tuple[str, str, int], list[int]] = {}
    for idx, spec in enumerate(header.signals):
        by_file.setdefault((spec.file_name, spec.fmt, spec.byte_offset), []).append(idx)
    for (file_name, fmt, offset), cols in by_file.items():
        path = directory / signal_file_name(file_name, header.record_name)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                raw = fh.read()
        except OSError as exc:
            raise WfdbError(f"cannot read signal file {path}: {exc.strerror}") from exc
        digital, invalid = _decode(raw, fmt, len(cols))
        expected = n if n is not None else digital.shape[0]
        if digital.shape[0] < expected:
            need = int(expected * len(cols) * _FORMATS[fmt][1])
            raise WfdbError(f"truncated signal file {path.name}: {len(raw)} bytes after the offset, "
                            f"{need} expected for {expected} samples x {len(cols)} signals")
        digital = digital[:expected]
        if out is None:
            out = np.empty((expected, header.n_signals), dtype=np.float32)
        elif out.shape[0] != expected:
            raise WfdbError(f"signal files of {header.record_name} disagree on the number of samples")
        baseline = np.array([header.signals[c].baseline for c in cols], dtype=np.float32)
        gain = np.array([header.signals[c].gain for c in cols], dtype=np.float32)
        phys = (digital.astype(np.float32) - baseline) / gain
        if invalid is not None:
            phys[invalid[:expected]] = np.nan
        out[:, cols] = phys
    return out


def read_record(path_without_ext: str | Path) -> tuple[np.ndarray, Header]:
    """Read ``<path>.hea`` and its signal file(s): (signal [n, nsig] float32, header)."""
    base = Path(path_without_ext)
    header = read_header(base.with_name(base.name + ".hea"))
    return read_signal(header, base.parent), header


def write_record(directory: str | Path, record_name: str, digital: np.ndarray, fs: float,
                 sig_names: list[str], gain: float = 1000.0, units: str = "mV",
                 comments: list[str] | None = None, mat: bool = False) -> Path:
    """Write a format-16 WFDB record: ``<name>.hea`` and ``<name>.dat`` (or a CinC-style ``.mat``).

    ``digital`` is [n_samples, n_signals] int16 ADC values (baseline 0). With ``mat=True`` the
    samples go to a MATLAB v4 file (24-byte header, variable ``val``) as PhysioNet's ``wfdb2mat``
    writes them, and the header points into it with a byte offset of 24.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digital = np.asarray(digital, dtype="<i2")
    n, nsig = digital.shape
    if mat:
        file_name, fmt = f"{record_name}.mat", "16x1+24"
        # MATLAB v4 header: type (0 = little-endian double... 30 = int16 LE), rows, cols, imag, namelen
        mat_header = np.array([30, nsig, n, 0, 4], dtype="<i4").tobytes() + b"val\x00"
        payload = mat_header + digital.tobytes()  # column-major [nsig, n] == row-major [n, nsig]
    else:
        file_name, fmt = f"{record_name}.dat", "16"
        payload = digital.tobytes()
    (directory / file_name).write_bytes(payload)
    fs_text = f"{fs:g}"
    lines = [f"{record_name} {nsig} {fs_text} {n}"]
    for j, name in enumerate(sig_names):
        col = digital[:, j].astype(np.int64)
        checksum = int(col.sum()) & 0xFFFF  # 16-bit, written unsigned as PTB-XL's headers are
        init = int(col[0]) if n else 0
        lines.append(f"{file_name} {fmt} {gain:g}(0)/{units} 16 0 {init} {checksum} 0 {name}")
    lines += [f"# {c}" for c in (comments or [])]
    hea = directory / f"{record_name}.hea"
    hea.write_text("\n".join(lines) + "\n")
    return hea
