"""One ECG file in the formats hospitals and researchers export, read as its owners define it.

Each ``read_*`` function takes a path and returns an ``ecgfm.readers.RawRecord`` (signal
[samples, leads] with lead names, rate and unit) or raises ``RecordError`` with the reason; the
standardization (``ecgfm.standardize``) then finds the leads by name. Facts, and where they come from:

* **Arrays with a sidecar** (``.npy`` or ``.csv``, ours): a JSON file beside the array, with the
  array's name and ``.json`` (``ecg.npy`` + ``ecg.json``), or one ``ecgfm.json`` for a whole
  folder, gives ``fs`` (Hz), ``unit`` (``mV``, ``uV``, ``V``) and ``leads`` (names in the
  array's order). A ``.npy`` array is [samples, leads] or [leads, samples] (the axis as long as
  ``leads``; ``layout: samples_leads`` or ``leads_samples`` settles a square array). A ``.csv``
  has one column per lead, one row per sample, and a header row of lead names (``leads`` in
  the sidecar overrides it).
* **DICOM waveforms** (12-lead ECG Waveform Storage, 1.2.840.10008.5.1.4.1.1.9.1.1, and General
  ECG Waveform Storage, ...9.1.2; DICOM PS3.3 A.34 and the Waveform module, C.10.9): the
  multiplex group labelled ``RHYTHM`` (else the longest group with the most channels); each
  channel's lead from its Channel Source Sequence (003A,0208) code, CID 3001 "ECG Leads": SCP-ECG
  codes ``5.6.3-9-N`` or their MDC equivalents ``2:N`` (N = 1 I, 2 II, 61 III, 62 aVR, 63 aVL,
  64 aVF, 3-8 V1-V6), else its code meaning or Channel Label; samples to physical values as
  C.10.9.1.4.2 defines them: value x Channel Sensitivity x Channel Sensitivity Correction Factor +
  Channel Baseline, in the Channel Sensitivity Units (UCUM ``uV``, ``mV``). Read with pydicom
  (``pip install -e '.[formats]'``).
* **GE MUSE XML** (``RestingECG`` exports): GE publishes no specification of it; the facts come
  from public readers of real exports: BRAVEHEART's ``load_musexml.m`` (github BIVectors/BRAVEHEART)
  and the IntroECG tutorial's sample export (github perottelab/IntroECG). The ``Waveform`` whose
  ``WaveformType`` is ``Rhythm`` (the other is the ``Median`` beat); its rate is ``SampleBase`` x
  10^``SampleExponent``; each ``LeadData`` has ``LeadID``, ``WaveFormData`` (base64 of
  little-endian 16-bit signed integers; ``LeadSampleSize`` 2), ``LeadAmplitudeUnitsPerBit`` in
  ``LeadAmplitudeUnits`` (``MICROVOLTS``) and ``FirstSampleBaseline`` (added to every sample
  before scaling); a non-zero ``LeadOffsetFirstSample`` (bytes of invalid data) is refused. MUSE
  stores I, II and V1-V6: III, aVR, aVL and aVF are derived by the standardization. Parsed with
  defusedxml (no entity expansion).
* **HL7 aECG** (``AnnotatedECG``): see ``read_aecg``. **Philips PageWriter / TC XML**
  (``restingecgdata``, XLI compression): see ``read_philips_xml`` and ``xli_decode_chunk``.
* XML files are told apart by their root element (``xml_kind``), in UTF-8 or UTF-16; DICOM files
  also by their ``DICM`` preamble (``is_dicom_file``), for PACS exports without a suffix.

Every reader gives its channels in mV, each converted by its own unit (``voltage_record``); a
channel without a voltage scale is left out and listed, with its unit, in ``meta["channels"]``.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np

from .leads import normalize_lead_name
from .readers import RawRecord, RecordError, parse_xml, read_cardiosoft_xml, voltage_record
from .wfdb import unit_to_mv

SIDECAR = "ecgfm.json"            # one sidecar for every array of a folder


# --- arrays with a JSON sidecar ------------------------------------------------------------------
def sidecar_of(path: Path) -> dict:
    """The sidecar of an array file: ``<name>.json`` beside it, else the folder's ``ecgfm.json``."""
    for candidate in (path.with_suffix(".json"), path.parent / SIDECAR):
        if candidate.exists():
            try:
                meta = json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise RecordError(f"sidecar {candidate.name} is not JSON: {exc}") from None
            missing = [k for k in ("fs", "unit") if k not in meta]
            if missing:
                raise RecordError(f"sidecar {candidate.name} lacks {', '.join(missing)} (fs in Hz, unit mV/uV/V)")
            return meta
    raise RecordError(f"no sidecar: {path.with_suffix('.json').name} or {SIDECAR} (fs, unit, leads)")


def read_array(path) -> RawRecord:
    """A ``.npy`` or ``.csv`` ECG with its sidecar (see the module's description)."""
    path = Path(path)
    meta = sidecar_of(path)
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise RecordError(f"unreadable .npy: {exc}") from None
        names = meta.get("leads")
        if not names:
            raise RecordError("a .npy array needs `leads` in its sidecar")
        if x.ndim != 2:
            raise RecordError(f".npy array of shape {x.shape}: expected [samples, leads] or [leads, samples]")
        layout = meta.get("layout") or ("samples_leads" if x.shape[1] == len(names) != x.shape[0]
                                        else "leads_samples" if x.shape[0] == len(names) != x.shape[1] else None)
        if layout is None:
            raise RecordError(f".npy array of shape {x.shape} with {len(names)} leads: set `layout` "
                              f"(samples_leads or leads_samples) in the sidecar")
        signal = x if layout == "samples_leads" else x.T
    elif path.suffix.lower() == ".csv":
        import pandas as pd
        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError) as exc:
            raise RecordError(f"unreadable .csv: {exc}") from None
        names = meta.get("leads") or list(frame.columns)
        signal = frame.to_numpy()
    else:
        raise RecordError(f"{path.suffix} is not an array format (.npy, .csv)")
    signal = np.asarray(signal, dtype=np.float32)
    if signal.shape[1] != len(names):
        raise RecordError(f"{signal.shape[1]} columns but {len(names)} lead names")
    return RawRecord(signal, float(meta["fs"]), [str(n) for n in names], str(meta["unit"]),
                     {"orig_unit": str(meta["unit"]), "stored_leads": len(names)})


# --- DICOM waveforms -------------------------------------------------------------------------------
_ECG_LEAD_CODES = {1: "I", 2: "II", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
                   3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6"}
_UNITS = {"uv": "uV", "mv": "mV", "v": "V"}


def dicom_lead_name(channel) -> str | None:
    """The standard lead of a DICOM channel definition item, or None."""
    source = channel.ChannelSourceSequence[0] if "ChannelSourceSequence" in channel else None
    if source is not None:
        m = re.fullmatch(r"(?:5\.6\.3-9-|2:)(\d+)", str(source.get("CodeValue", "")))
        if m and int(m.group(1)) in _ECG_LEAD_CODES:
            return _ECG_LEAD_CODES[int(m.group(1))]
    for text in (source.get("CodeMeaning") if source is not None else None, channel.get("ChannelLabel")):
        if text:
            name = re.sub(r"^lead\s+", "", re.sub(r"\s*\(.*\)\s*$", "", str(text)), flags=re.IGNORECASE)
            try:
                return normalize_lead_name(name)
            except ValueError:
                continue
    return None


def _dicom_number(item, keyword: str):
    """A numeric attribute of a DICOM item as float, None when absent or empty; ``RecordError``
    when it is not a number."""
    value = item.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RecordError(f"DICOM {keyword} {value!r} is not a number") from None


def dicom_channel_unit(channel) -> tuple[str | None, str]:
    """The voltage unit of a channel (``uV``, ``mV``, ``V``) as physical values are to be read, and
    what to call it in the record's channel list; the unit is None when its samples have no defined
    voltage scale: no Channel Sensitivity (PS3.3 C.10.9.1.4.2: present only where the samples
    represent defined, not arbitrary, units), no Channel Sensitivity Units Sequence item, or a unit
    that is not a voltage (then the note is its code)."""
    if _dicom_number(channel, "ChannelSensitivity") is None:
        return None, "no ChannelSensitivity: arbitrary units"
    units = channel.get("ChannelSensitivityUnitsSequence") or []
    if len(units) == 0:
        return None, "no ChannelSensitivityUnitsSequence"
    unit = _UNITS.get(str(units[0].get("CodeValue", "")).strip().lower())
    return unit, unit or str(units[0].get("CodeValue", "no unit code"))


def read_dicom(path) -> RawRecord:
    """A DICOM ECG waveform object (see the module's description). Each channel is scaled by its
    own Channel Sensitivity, Correction Factor (1 where absent) and Baseline (0 where absent) and
    converted to mV from its own unit; a channel without a defined voltage scale is left out and
    named, with the reason, in ``meta["channels"]``."""
    try:
        import pydicom
        from pydicom.waveforms import multiplex_array
    except ImportError:
        raise RecordError("reading DICOM needs pydicom: pip install -e '.[formats]'") from None
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:                      # pydicom raises several kinds on a bad file
        raise RecordError(f"unreadable DICOM: {type(exc).__name__}: {exc}") from None
    groups = list(ds.get("WaveformSequence", None) or [])
    if not groups:
        raise RecordError("no Waveform Sequence (5400,0100): not a DICOM waveform object")

    def size(k):
        g = groups[k]
        return int(g.get("NumberOfWaveformChannels") or 0), int(g.get("NumberOfWaveformSamples") or 0)
    labelled = [k for k, g in enumerate(groups) if str(g.get("MultiplexGroupLabel", "")).upper() == "RHYTHM"]
    index = labelled[0] if labelled else max(range(len(groups)), key=size)
    group = groups[index]
    fs = _dicom_number(group, "SamplingFrequency")
    if fs is None or fs <= 0:
        raise RecordError(f"multiplex group {index} has no Sampling Frequency (003A,001A): its rate is unknown")
    channels = list(group.get("ChannelDefinitionSequence", None) or [])
    if not channels:
        raise RecordError(f"multiplex group {index} has no Channel Definition Sequence (003A,0200): "
                          f"its channels are unknown")
    n_channels = size(index)[0]
    if len(channels) != n_channels:
        raise RecordError(f"multiplex group {index}: {len(channels)} channel definitions for "
                          f"{n_channels} channels (Number of Waveform Channels)")
    try:
        raw = multiplex_array(ds, index, as_raw=True)
    except (AttributeError, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"unreadable waveform data: {exc}") from None
    columns, names, units, found = [], [], [], []
    for k, ch in enumerate(channels):
        name = dicom_lead_name(ch) or str(ch.get("ChannelLabel") or f"channel {k + 1}")
        unit, note = dicom_channel_unit(ch)
        found.append(f"{name} ({note})")
        if unit is None:
            continue
        sensitivity = _dicom_number(ch, "ChannelSensitivity")
        correction = _dicom_number(ch, "ChannelSensitivityCorrectionFactor")
        baseline = _dicom_number(ch, "ChannelBaseline")
        value = raw[:, k].astype(np.float64) * sensitivity * (1.0 if correction is None else correction)
        columns.append(value + (0.0 if baseline is None else baseline))
        names.append(name)
        units.append(unit)
    signal = np.column_stack(columns).astype(np.float32) if columns else np.empty((raw.shape[0], 0), np.float32)
    record = voltage_record(signal, fs, names, units,
                            {"orig_unit": "DICOM channel sensitivity", "stored_leads": len(channels),
                             "multiplex_group": str(group.get("MultiplexGroupLabel", index))})
    record.meta["channels"] = ", ".join(found)
    return record


# --- GE MUSE XML -----------------------------------------------------------------------------------
_MUSE_UNITS = {"MICROVOLTS": "uV", "MILLIVOLTS": "mV"}


def _text(element, name: str) -> str:
    found = element.find(name)
    if found is None or found.text is None:
        raise RecordError(f"MUSE XML: no {name}")
    return found.text.strip()


def read_muse_xml(path) -> RawRecord:
    """A GE MUSE ``RestingECG`` XML export (see the module's description)."""
    root = parse_xml(path)
    if root.tag != "RestingECG":
        raise RecordError(f"XML root <{root.tag}>: not a MUSE RestingECG export")
    rhythm = [w for w in root.iter("Waveform") if (w.findtext("WaveformType") or "").strip() == "Rhythm"]
    if not rhythm:
        raise RecordError("MUSE XML: no Waveform of WaveformType Rhythm")
    wave = rhythm[0]
    try:
        fs = float(_text(wave, "SampleBase")) * 10 ** float(wave.findtext("SampleExponent") or 0)
    except ValueError:
        raise RecordError("MUSE XML: SampleBase or SampleExponent is not a number") from None
    names, columns, units = [], [], set()
    for lead in wave.iter("LeadData"):
        if int(lead.findtext("LeadOffsetFirstSample") or 0) != 0:
            raise RecordError(f"MUSE XML: lead {lead.findtext('LeadID')} starts with invalid bytes "
                              f"(LeadOffsetFirstSample {lead.findtext('LeadOffsetFirstSample')})")
        if int(lead.findtext("LeadSampleSize") or 2) != 2:
            raise RecordError(f"MUSE XML: LeadSampleSize {lead.findtext('LeadSampleSize')}, expected 2 bytes")
        unit = _MUSE_UNITS.get(_text(lead, "LeadAmplitudeUnits").upper())
        if unit is None:
            raise RecordError(f"MUSE XML: LeadAmplitudeUnits {_text(lead, 'LeadAmplitudeUnits')!r}")
        units.add(unit)
        try:
            raw = base64.b64decode(_text(lead, "WaveFormData"), validate=False)
        except ValueError as exc:
            raise RecordError(f"MUSE XML: WaveFormData is not base64 ({exc})") from None
        samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float32)
        per_bit = float(_text(lead, "LeadAmplitudeUnitsPerBit"))
        baseline = float(lead.findtext("FirstSampleBaseline") or 0)
        names.append(_text(lead, "LeadID"))
        columns.append((samples + baseline) * per_bit)
    if not columns:
        raise RecordError("MUSE XML: no LeadData in the rhythm waveform")
    if len(units) != 1:
        raise RecordError(f"MUSE XML: leads in several units {sorted(units)}")
    n = min(len(c) for c in columns)
    return RawRecord(np.column_stack([c[:n] for c in columns]), fs, names, units.pop(),
                     {"orig_unit": "MUSE LeadAmplitudeUnitsPerBit", "stored_leads": len(names)})


# --- XML: which kind, UTF-8 or UTF-16 --------------------------------------------------------------
def _xml_head(path, size: int = 4096) -> str:
    """The first characters of an XML file, decoded by its byte-order mark or, without one, by the
    pattern of its first bytes (XML 1.0 Appendix F: ``<\\0?\\0`` is UTF-16LE, ``\\0<\\0?`` UTF-16BE)."""
    with open(path, "rb") as fh:
        head = fh.read(size)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif head.startswith(b"<\x00"):
        encoding = "utf-16-le"
    elif head.startswith(b"\x00<"):
        encoding = "utf-16-be"
    else:
        encoding = "latin-1"
    return head.decode(encoding, errors="replace")


def xml_kind(path) -> str | None:
    """``muse``, ``cardiosoft`` (UK Biobank's export), ``aecg`` (HL7 annotated ECG) or ``philips``
    (PageWriter/TC ``restingecgdata``), from the root element; None otherwise."""
    head = _xml_head(path)
    for marker, kind in (("<RestingECG", "muse"), ("<CardiologyXML", "cardiosoft"),
                         ("<AnnotatedECG", "aecg"), ("<restingecgdata", "philips")):
        if marker in head:
            return kind
    return None


def is_dicom_file(path) -> bool:
    """Whether ``path`` starts with a DICOM file's 128-byte preamble and ``DICM`` (PS3.10 7.1), as
    PACS exports without a ``.dcm`` suffix do."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element, name: str) -> list:
    return [child for child in element if _local(child.tag) == name]


def _child(element, *path):
    for name in path:
        found = _children(element, name) if element is not None else []
        element = found[0] if found else None
    return element


# --- HL7 aECG --------------------------------------------------------------------------------------
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _pq(element, what: str) -> tuple[float, str]:
    """An HL7 physical quantity (``value`` and ``unit`` attributes)."""
    if element is None:
        raise RecordError(f"HL7 aECG: no {what}")
    try:
        return float(element.get("value")), (element.get("unit") or "").strip()
    except (TypeError, ValueError):
        raise RecordError(f"HL7 aECG: {what} value {element.get('value')!r} is not a number") from None


def read_aecg(path) -> RawRecord:
    """An HL7 v3 annotated ECG (FDA aECG, HL7 ``AnnotatedECG``; the HL7 Annotated ECG
    implementation guide and its example file): the rhythm ``series`` (code ``RHYTHM``, else the
    first), its own ``sequenceSet`` (not those of a ``derivation``, the median beats) with the
    most leads. The time sequence (``TIME_ABSOLUTE`` or ``TIME_RELATIVE``, a ``GLIST_TS`` or
    ``GLIST_PQ``) gives the rate as 1 / ``increment`` (s or ms); each lead sequence, coded
    ``MDC_ECG_LEAD_<name>``, is an ``SLIST_PQ``: value = ``origin`` + ``scale`` x digit, in the
    units of ``scale`` (``uV``, ``mV``), digits separated by white space."""
    root = parse_xml(path)
    if _local(root.tag) != "AnnotatedECG":
        raise RecordError(f"XML root <{_local(root.tag)}>: not an HL7 AnnotatedECG")
    series = [s for c in _children(root, "component") for s in _children(c, "series")]
    if not series:
        raise RecordError("HL7 aECG: no component/series")
    rhythm = [s for s in series if (_child(s, "code") is not None and _child(s, "code").get("code") == "RHYTHM")]
    chosen = (rhythm or series)[0]
    sets = [q for c in _children(chosen, "component") for q in _children(c, "sequenceSet")]
    if not sets:
        raise RecordError("HL7 aECG: the rhythm series has no sequenceSet")

    def sequences(sequence_set):
        return [q for c in _children(sequence_set, "component") for q in _children(c, "sequence")]

    def n_leads(sequence_set):
        return sum(1 for q in sequences(sequence_set)
                   if (_child(q, "code") is not None and (_child(q, "code").get("code") or "").startswith("MDC_ECG_LEAD_")))
    sequence_set = max(sets, key=n_leads)
    fs, names, units, columns = None, [], [], []
    for sequence in sequences(sequence_set):
        code = (_child(sequence, "code").get("code") if _child(sequence, "code") is not None else "") or ""
        value = _child(sequence, "value")
        if code.startswith("TIME_"):
            increment, unit = _pq(_child(value, "increment"), "time increment")
            if unit not in _SECONDS or increment <= 0:
                raise RecordError(f"HL7 aECG: time increment {increment:g} {unit!r} (expected s or ms)")
            fs = 1.0 / (increment * _SECONDS[unit])
            continue
        if not code.startswith("MDC_ECG_LEAD_"):
            continue
        kind = value.get(_XSI_TYPE) if value is not None else None
        if kind != "SLIST_PQ":
            raise RecordError(f"HL7 aECG: lead {code} is {kind!r}, not SLIST_PQ")
        origin, origin_unit = _pq(_child(value, "origin"), f"origin of {code}")
        scale, unit = _pq(_child(value, "scale"), f"scale of {code}")
        if origin and origin_unit != unit:
            try:
                origin *= unit_to_mv(origin_unit) / unit_to_mv(unit)
            except ValueError:
                raise RecordError(f"HL7 aECG: {code} origin in {origin_unit!r}, scale in {unit!r}") from None
        text = (_child(value, "digits").text if _child(value, "digits") is not None else "") or ""
        try:
            digits = np.array(text.split(), dtype=np.int64)
        except ValueError:
            raise RecordError(f"HL7 aECG: digits of {code} are not integers") from None
        if digits.size == 0:
            raise RecordError(f"HL7 aECG: lead {code} has no digits")
        names.append(code[len("MDC_ECG_LEAD_"):])
        units.append(unit)
        columns.append(origin + scale * digits.astype(np.float64))
    if fs is None:
        raise RecordError("HL7 aECG: no TIME_ABSOLUTE or TIME_RELATIVE sequence: the rate is unknown")
    if not columns:
        raise RecordError("HL7 aECG: no MDC_ECG_LEAD_ sequence in the rhythm sequenceSet")
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise RecordError(f"HL7 aECG: leads of different lengths {sorted(lengths)} in one sequenceSet")
    return voltage_record(np.column_stack(columns).astype(np.float32), fs, names, units,
                          {"orig_unit": "HL7 SLIST_PQ scale", "stored_leads": len(columns)})


# --- Philips PageWriter / TC XML (Sierra ECG) -------------------------------------------------------
XLI_CODE_BITS = 10              # LZW code words of 10 bits, most significant bit first
XLI_END_CODE = (1 << XLI_CODE_BITS) - 1     # 1023 ends a chunk; the dictionary holds codes up to 1022
XLI_DELTA_BIAS = 64
PHILIPS_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def lzw_decode(data: bytes, bits: int = XLI_CODE_BITS) -> bytes:
    """LZW with ``bits``-bit codes read most significant bit first, a dictionary of the 256
    single bytes that grows to code 2**bits - 2, and 2**bits - 1 as the end code (the variant XLI
    uses, after Mark Nelson's 1989 LZW)."""
    end, max_code = (1 << bits) - 1, (1 << bits) - 2
    table = {k: bytes([k]) for k in range(256)}
    out, previous, next_code = bytearray(), b"", 256
    value, have = 0, 0
    for byte in data:
        value, have = (value << 8) | byte, have + 8
        while have >= bits:
            have -= bits
            code = (value >> have) & end
            value &= (1 << have) - 1
            if code == end:
                return bytes(out)
            if code in table:
                entry = table[code]
            elif code == next_code and previous:
                entry = previous + previous[:1]
            else:
                raise RecordError(f"XLI: LZW code {code} before it is defined (corrupt chunk)")
            out += entry
            if previous and next_code <= max_code:
                table[next_code] = previous + entry[:1]
                next_code += 1
            previous = entry
    return bytes(out)


def xli_decode_chunk(data: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One lead of an XLI payload at ``offset`` -> (samples int64, offset of the next chunk).

    The facts, from the sierra-ecg-tools project's description of XLI (github
    sixlettervariables/sierra-ecg-tools, its wiki and ``XliDecompressor``): an 8-byte header
    (int32 LE size of the compressed bytes, int16 of unknown use, int16 LE first delta), then
    ``size`` bytes of LZW (``lzw_decode``). The decompressed bytes hold 16-bit values as all their
    high bytes, then all their low bytes. Those are delta codes: the first two values are samples,
    and sample k (k >= 2) = 2 x sample[k-1] - sample[k-2] - d[k-1], where d[1] is the header's
    delta and d[j] = value[j] - 64 for j >= 2."""
    if offset + 8 > len(data):
        raise RecordError("XLI: payload ends inside a chunk header")
    size = int(np.frombuffer(data, "<i4", 1, offset)[0])
    first_delta = int(np.frombuffer(data, "<i2", 1, offset + 6)[0])
    if size < 0 or offset + 8 + size > len(data):
        raise RecordError(f"XLI: chunk of {size} bytes at byte {offset} runs past the payload")
    raw = lzw_decode(data[offset + 8 : offset + 8 + size])
    half = (len(raw) + 1) // 2
    high = np.frombuffer(raw[:half], dtype=np.uint8).astype(np.int64)
    low = np.zeros(half, dtype=np.int64)
    low[: len(raw) - half] = np.frombuffer(raw[half:], dtype=np.uint8)
    values = ((high << 8) | low).astype(np.uint16).astype(np.int16).astype(np.int64)
    samples = values.copy()
    delta = first_delta
    for k in range(2, len(values)):          # each sample needs the one before: a plain loop
        samples[k] = 2 * samples[k - 1] - samples[k - 2] - delta
        delta = int(values[k]) - XLI_DELTA_BIAS
    return samples, offset + 8 + size


def philips_limb_leads(stored: np.ndarray) -> np.ndarray:
    """XLI stores III, aVR, aVL and aVF as residuals from their values computed from I and II
    (sierra-ecg-tools, ``DecodedLead.ReinterpretLeads``): III = II - I - r3; aVR = -r4 - (I + II)/2;
    aVL = (I - III)/2 - r5; aVF = (II + III)/2 - r6, halves in integers truncated toward zero, III
    the rebuilt lead. ``stored`` is [12, n] int64, leads in ``PHILIPS_LEADS`` order."""
    out = stored.copy()
    i, ii = out[0], out[1]

    def half(x):
        return np.trunc(x / 2).astype(np.int64)
    out[2] = ii - i - stored[2]
    out[3] = -stored[3] - half(i + ii)
    out[4] = half(i - out[2]) - stored[4]
    out[5] = half(ii + out[2]) - stored[5]
    return out


def read_philips_xml(path) -> RawRecord:
    """A Philips PageWriter / TC resting ECG XML (``restingecgdata``, Sierra ECG schema 1.03,
    1.04, 1.04.01; the schemas and example exports of github sixlettervariables/sierra-ecg-tools):
    ``waveforms/parsedwaveforms`` holds every lead for ``durationperchannel`` ms at
    ``samplespersecond`` (1.04; ``dataacquisition/signalcharacteristics/samplingrate`` in 1.03),
    ``resolution`` uV per count (``signalresolution`` in 1.03), leads ``leadlabels`` (1.04; the
    standard 12 in order otherwise). ``dataencoding`` Base64 (16-bit LE counts per lead, or XLI
    when ``compression="XLI"``, 1.03 ``compressmethod="XLI"`` with ``compressflag="True"``) or
    Plain (integers as text). XLI files of a 12-lead acquisition store III, aVR, aVL and aVF as
    residuals (``philips_limb_leads``); further chunks beyond the leads are not leads. The
    exports end with the device's calibration mark (every lead 0, then a 1 mV pulse, the same
    in all leads, which no ECG is): the samples after the last one where the leads differ are
    cut (``calibration_samples_cut``)."""
    root = parse_xml(path)
    if _local(root.tag) != "restingecgdata":
        raise RecordError(f"XML root <{_local(root.tag)}>: not a Philips restingecgdata export")
    waves = [e for e in root.iter() if _local(e.tag) == "parsedwaveforms"]
    if not waves:
        raise RecordError("Philips XML: no parsedwaveforms element")
    wave = waves[0]
    signal_chars = _child(root, "dataacquisition", "signalcharacteristics")

    def number(name, attribute=None, element=None):
        text = wave.get(attribute) if attribute else None
        if text is None and element:
            found = _child(signal_chars, element)
            text = found.text if found is not None else None
        try:
            return float(text)
        except (TypeError, ValueError):
            raise RecordError(f"Philips XML: no numeric {name}") from None
    fs = number("sampling rate", "samplespersecond", "samplingrate")
    resolution = wave.get("resolution")
    if resolution is None and signal_chars is not None:
        resolution = next((e.text for e in signal_chars if _local(e.tag) in ("resolution", "signalresolution")), None)
    try:
        uv = float(resolution)
    except (TypeError, ValueError):
        raise RecordError("Philips XML: no numeric resolution (uV per count)") from None
    duration_ms = number("durationperchannel", "durationperchannel")
    n = int(round(duration_ms * fs / 1000.0))
    labels = (wave.get("leadlabels") or " ".join(PHILIPS_LEADS)).split()
    encoding = wave.get("dataencoding", "")
    compressed = wave.get("compression") == "XLI" or (
        wave.get("compressmethod") == "XLI" and (wave.get("compressflag") or "").lower() == "true")
    if encoding == "Plain":
        values = np.array((wave.text or "").split(), dtype=np.int64)
    elif encoding == "Base64":
        try:
            payload = base64.b64decode("".join((wave.text or "").split()), validate=True)
        except ValueError as exc:
            raise RecordError(f"Philips XML: parsedwaveforms is not base64 ({exc})") from None
        if compressed:
            leads, offset = [], 0
            while len(leads) < len(labels) and offset < len(payload):
                samples, offset = xli_decode_chunk(payload, offset)
                leads.append(samples)
            if len(leads) < len(labels) or any(len(x) < n for x in leads):
                raise RecordError(f"Philips XML: XLI holds {len(leads)} leads of {min(map(len, leads), default=0)} "
                                  f"samples; {len(labels)} leads of {n} expected")
            stored = np.stack([x[:n] for x in leads])
            if tuple(labels[:6]) == PHILIPS_LEADS[:6]:
                stored = philips_limb_leads(stored)
            values = stored.reshape(-1)
        else:
            values = np.frombuffer(payload[: len(payload) // 2 * 2], dtype="<i2").astype(np.int64)
    elif compressed:
        raise RecordError(f"Philips XML: dataencoding {encoding!r} with XLI")
    else:
        raise RecordError(f"Philips XML: dataencoding {encoding!r} (expected Base64 or Plain)")
    if values.size < n * len(labels):
        raise RecordError(f"Philips XML: {values.size} samples, {len(labels)} leads of {n} expected "
                          f"({duration_ms:g} ms at {fs:g} Hz)")
    counts = values[: n * len(labels)].reshape(len(labels), n)
    differ = np.flatnonzero(np.any(counts != counts[:1], axis=0))
    end = int(differ[-1]) + 1 if differ.size else 0
    signal = counts[:, :end].T.astype(np.float32) * np.float32(uv)
    return voltage_record(signal, fs, labels, ["uV"] * len(labels),
                          {"orig_unit": f"{uv:g} uV/count", "stored_leads": len(labels),
                           "mv_per_unit": uv * 1e-3, "calibration_samples_cut": n - end})


XML_READERS = {"muse": read_muse_xml, "cardiosoft": read_cardiosoft_xml, "aecg": read_aecg,
               "philips": read_philips_xml}
