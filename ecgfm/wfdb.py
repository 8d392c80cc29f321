"""A small, fast reader and writer for WFDB records (header + signal file).

Why not ``wfdb.rdsamp``: standardizing a million records is dominated by per-record overhead,
and the records we meet (PTB-XL, MIMIC-IV-ECG, CinC-2021 ``.mat``) use a handful of storage
formats that numpy reads in one call. This module parses the header text itself, reads the
signal file with ``np.fromfile`` and returns physical units. The test suite checks it against
``wfdb.rdsamp`` on real records.

Facts, from the WFDB header and signal file specifications (header(5), signal(5) of the WFDB
Software Package, physionet.org/physiotools/wag), checked against ``wfdb.rdsamp`` on wfdb-python's
sample records:

* formats 16, 61, 24, 32, 80, 160, 212, 310 and 311 with one sample per frame. 212 packs two
  12-bit samples in 3 bytes; an odd number of samples ends with 2 bytes holding the last one.
  310 packs three 10-bit samples in two little-endian 16-bit words (bits 1-10 of each word, the
  third sample's low 5 bits in bits 11-15 of the first word and its high 5 bits in bits 11-15 of
  the second); 311 packs them in one little-endian 32-bit word (bits 0-9, 10-19, 20-29);
* the byte offset (``16+24``: how a CinC ``.mat`` file skips its 24-byte MATLAB header) belongs to
  the signal file: all signals of one file share it (the first signal's is used) and one format;
* skew (``212:3``): the signal's sample t is stored in frame t + skew; samples a skew would take
  beyond the end of the file are invalid (NaN), as ``wfdb.rdsamp`` gives them;
* physical value = (digital - baseline) / gain, the subtraction in integers (formats 24 and 32
  hold values that float32 cannot represent exactly);
* multi-segment records (``name/n_segments`` on the record line): the segments are read in
  order and joined; ``~`` is a null segment (every sample invalid); a first segment of length 0
  is the layout header of a variable-layout record, whose signals are the record's (a segment
  without one of them gives NaN there). One record, one row.
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
    "310": (None, 4 / 3, -512, 0),
    "311": (None, 4 / 3, -512, 0),
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
    skew: int = 0


@dataclass
class Header:
    record_name: str
    n_signals: int
    fs: float
    n_samples: int | None
    signals: list[SignalSpec]
    comments: list[str] = field(default_factory=list)
    segments: list[tuple[str, int]] | None = None    # (segment record name or "~", samples) of a multi-segment record

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
    """Parse the text of a WFDB ``.hea`` file (single- or multi-segment)."""
    lines = [ln.strip() for ln in text.splitlines()]
    comments = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
    body = [ln.split("#", 1)[0].strip() for ln in lines if ln and not ln.startswith("#")]
    body = [ln for ln in body if ln]
    if not body:
        raise WfdbError(f"{where}: empty header")
    first = body[0].split()
    try:
        name, _, n_segments = first[0].partition("/")
        n_signals = int(first[1])
        fs = float(first[2].split("/")[0].split("(")[0]) if len(first) > 2 else 250.0
        n_samples = int(first[3]) if len(first) > 3 else None
        n_segments = int(n_segments) if n_segments else None
    except (IndexError, ValueError):
        raise WfdbError(f"{where}: unreadable record line {body[0]!r}") from None
    if n_samples == 0:
        n_samples = None                 # 0 or absent: the length is that of the signal file
    if n_segments is not None:
        return Header(name, n_signals, fs, n_samples, [], comments,
                      _segment_lines(body[1:], n_segments, where))
    if len(body) - 1 < n_signals:
        raise WfdbError(f"{where}: {n_signals} signals declared but {len(body) - 1} signal lines")
    signals = [_signal_line(line, where, k) for k, line in enumerate(body[1 : 1 + n_signals])]
    return Header(name, n_signals, fs, n_samples, signals, comments)


def _segment_lines(lines: list[str], n_segments: int, where: str) -> list[tuple[str, int]]:
    if len(lines) < n_segments:
        raise WfdbError(f"{where}: {n_segments} segments declared but {len(lines)} segment lines")
    segments = []
    for line in lines[:n_segments]:
        parts = line.split()
        try:
            segments.append((parts[0], int(parts[1])))
        except (IndexError, ValueError):
            raise WfdbError(f"{where}: unreadable segment line {line!r}") from None
    return segments


def _signal_line(line: str, where: str, k: int) -> SignalSpec:
    parts = line.split()
    if len(parts) < 2:
        raise WfdbError(f"{where}: unreadable signal line {line!r}")
    m = _FMT_RE.match(parts[1])
    if not m:
        raise WfdbError(f"{where}: unreadable format field {parts[1]!r}")
    fmt, spf, skew, offset = m.groups()
    if fmt not in _FORMATS and not (fmt == "0" and parts[0] == "~"):
        raise WfdbError(f"{where}: WFDB format {fmt} is not supported")
    if spf not in (None, "1"):
        raise WfdbError(f"{where}: {spf} samples per frame is not supported")
    gain, baseline, units = 200.0, None, "mV"
    try:
        if len(parts) > 2:
            g = _GAIN_RE.match(parts[2])
            if not g:
                raise WfdbError(f"{where}: unreadable gain field {parts[2]!r}")
            gain = float(g.group(1)) or 200.0
            baseline = int(g.group(2)) if g.group(2) is not None else None
            units = g.group(3) or "mV"
        adc_zero = int(parts[4]) if len(parts) > 4 else 0
    except ValueError:
        raise WfdbError(f"{where}: unreadable signal line {line!r}") from None
    name = " ".join(parts[8:]) if len(parts) > 8 else f"sig{k}"
    return SignalSpec(parts[0], fmt, int(offset or 0), gain, adc_zero if baseline is None else baseline,
                      units, name, int(skew or 0))


def read_header(path: str | Path) -> Header:
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise WfdbError(f"cannot read header {path.name}: {exc.strerror}") from None
    return parse_header(text, where=path.name)


def _sign_extend(vals: np.ndarray, bits: int) -> np.ndarray:
    vals[vals >= 2 ** (bits - 1)] -= 2**bits
    return vals


def _decode_packed(raw: bytes, fmt: str) -> np.ndarray:
    """Formats that pack several samples in a group of bytes (212, 24, 310, 311) -> int64 values,
    including the samples of a last, partial group (212 with an odd count: 2 bytes, 1 sample)."""
    group, per_group = {"212": (3, 2), "24": (3, 1), "310": (4, 3), "311": (4, 3)}[fmt]
    rest = len(raw) % group
    full = np.frombuffer(raw + bytes(group - rest if rest else 0), dtype=np.uint8)
    b = full.reshape(-1, group).astype(np.int64)
    if fmt == "24":
        return _sign_extend(b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16), 24)
    if fmt == "212":
        cols = [b[:, 0] | ((b[:, 1] & 0x0F) << 8), b[:, 2] | ((b[:, 1] & 0xF0) << 4)]
        bits, partial = 12, {0: 0, 2: 1}
    elif fmt == "310":
        w0, w1 = b[:, 0] | (b[:, 1] << 8), b[:, 2] | (b[:, 3] << 8)
        cols = [(w0 >> 1) & 0x3FF, (w1 >> 1) & 0x3FF, ((w0 >> 11) & 0x1F) | (((w1 >> 11) & 0x1F) << 5)]
        bits, partial = 10, {0: 0, 2: 1}
    else:                               # 311
        w = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
        cols = [w & 0x3FF, (w >> 10) & 0x3FF, (w >> 20) & 0x3FF]
        bits, partial = 10, {0: 0, 2: 1, 3: 2}
    vals = _sign_extend(np.stack(cols, axis=1).reshape(-1), bits)
    if rest:                            # the zero-padded last group holds this many real samples
        vals = vals[: vals.size - per_group + partial.get(rest, 0)]
    return vals


def _decode(raw: bytes, fmt: str, n_cols: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Bytes of one signal file -> (integer array [n_samples, n_cols], mask of invalid samples or None)."""
    dtype, _, invalid, offset = _FORMATS[fmt]
    if dtype is None:
        vals = _decode_packed(raw, fmt)
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
    by_file: dict[str, list[int]] = {}
    for idx, spec in enumerate(header.signals):
        by_file.setdefault(spec.file_name, []).append(idx)
    for file_name, cols in by_file.items():
        specs = [header.signals[c] for c in cols]
        fmt, offset = specs[0].fmt, specs[0].byte_offset
        if any(s.fmt != fmt for s in specs):
            raise WfdbError(f"{header.record_name}: signals of {file_name} in different formats "
                            f"({', '.join(sorted({s.fmt for s in specs}))}): one file has one format")
        path = directory / signal_file_name(file_name, header.record_name)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                raw = fh.read()
        except OSError as exc:
            raise WfdbError(f"cannot read signal file {path.name}: {exc.strerror}") from None
        digital, invalid = _decode(raw, fmt, len(cols))
        skews = [s.skew for s in specs]
        expected = n if n is not None else digital.shape[0] - max(skews)
        if digital.shape[0] < expected:
            need = int(np.ceil(expected * len(cols) * _FORMATS[fmt][1]))
            raise WfdbError(f"truncated signal file {path.name}: {len(raw)} bytes after the offset, "
                            f"{need} expected for {expected} samples x {len(cols)} signals")
        if out is None:
            out = np.empty((expected, header.n_signals), dtype=np.float32)
        elif out.shape[0] != expected:
            raise WfdbError(f"signal files of {header.record_name} disagree on the number of samples")
        for k, (c, spec) in enumerate(zip(cols, specs)):
            column = digital[spec.skew : spec.skew + expected, k].astype(np.int64)
            phys = np.full(expected, np.nan, dtype=np.float32)        # past the file: invalid
            phys[: column.size] = (column - spec.baseline) / np.float64(spec.gain)
            if invalid is not None:
                bad = invalid[spec.skew : spec.skew + expected, k]
                phys[: bad.size][bad] = np.nan
            out[:, c] = phys
    return out


def read_record(path_without_ext: str | Path) -> tuple[np.ndarray, Header]:
    """Read ``<path>.hea`` and its signal file(s): (signal [n, nsig] float32, header). A
    multi-segment record comes back joined, with the signals of its layout (or first) segment."""
    base = Path(path_without_ext)
    header = read_header(base.with_name(base.name + ".hea"))
    if header.segments is None:
        return read_signal(header, base.parent), header
    return _read_segments(header, base.parent)


def _read_segments(master: Header, directory: Path) -> tuple[np.ndarray, Header]:
    segments = list(master.segments)
    layout = None
    if segments and segments[0][1] == 0 and segments[0][0] != "~":      # variable layout
        layout = _segment_header(directory, segments.pop(0)[0], master)
    parts, signals = [], layout.signals if layout is not None else None
    for name, length in segments:
        if name == "~":
            parts.append((None, None, length))
            continue
        header = _segment_header(directory, name, master)
        if header.segments is not None:
            raise WfdbError(f"{master.record_name}: segment {name} is itself multi-segment")
        if header.n_samples is None:
            header.n_samples = length
        signal = read_signal(header, directory)
        if signal.shape[0] != length:
            raise WfdbError(f"{master.record_name}: segment {name} has {signal.shape[0]} samples, "
                            f"the master header says {length}")
        signals = signals if signals is not None else header.signals
        parts.append((signal, header, length))
    if signals is None:
        raise WfdbError(f"{master.record_name}: only null segments")
    names = [s.name for s in signals]
    out = np.full((sum(p[2] for p in parts), len(signals)), np.nan, dtype=np.float32)
    start = 0
    for signal, header, length in parts:
        if signal is not None:
            for k, spec in enumerate(header.signals):
                if spec.name not in names:
                    if layout is not None:
                        raise WfdbError(f"{master.record_name}: segment {header.record_name} has signal "
                                        f"{spec.name!r}, which the layout header does not list")
                    raise WfdbError(f"{master.record_name}: segment {header.record_name} has signals "
                                    f"{[s.name for s in header.signals]}, the first segment {names} "
                                    f"(a fixed-layout record has the same signals in every segment)")
                target = signals[names.index(spec.name)]
                factor = 1.0
                if spec.units != target.units:
                    try:
                        factor = unit_to_mv(spec.units) / unit_to_mv(target.units)
                    except WfdbError:
                        raise WfdbError(f"{master.record_name}: signal {spec.name} in {spec.units} in segment "
                                        f"{header.record_name}, {target.units} in the layout") from None
                out[start : start + length, names.index(spec.name)] = signal[:, k] * np.float32(factor)
        start += length
    header = Header(master.record_name, len(signals), master.fs, out.shape[0], list(signals), master.comments,
                    master.segments)
    return out, header


def _segment_header(directory: Path, name: str, master: Header) -> Header:
    file_name = signal_file_name(f"{name}.hea", master.record_name)
    try:
        return read_header(directory / file_name)
    except WfdbError as exc:
        raise WfdbError(f"{master.record_name}: segment {name}: {exc}") from None


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
