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
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np

from .leads import normalize_lead_name
from .readers import RawRecord, RecordError, parse_xml

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


def read_dicom(path) -> RawRecord:
    """A DICOM ECG waveform object (see the module's description)."""
    try:
        import pydicom
        from pydicom.waveforms import multiplex_array
    except ImportError:
        raise RecordError("reading DICOM needs pydicom: pip install -e '.[formats]'") from None
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:                      # pydicom raises several kinds on a bad file
        raise RecordError(f"unreadable DICOM: {type(exc).__name__}: {exc}") from None
    groups = list(ds.get("WaveformSequence", []))
    if not groups:
        raise RecordError("no Waveform Sequence (5400,0100): not a DICOM waveform object")
    labelled = [k for k, g in enumerate(groups) if str(g.get("MultiplexGroupLabel", "")).upper() == "RHYTHM"]
    index = labelled[0] if labelled else max(
        range(len(groups)), key=lambda k: (int(groups[k].NumberOfWaveformChannels), int(groups[k].NumberOfWaveformSamples)))
    group = groups[index]
    channels = list(group.ChannelDefinitionSequence)
    names = [dicom_lead_name(ch) for ch in channels]
    units = set()
    for ch in channels:
        if "ChannelSensitivityUnitsSequence" in ch:
            units.add(_UNITS.get(str(ch.ChannelSensitivityUnitsSequence[0].CodeValue).lower()))
        else:
            units.add(None)
    if None in units or len(units) != 1:
        raise RecordError(f"channel units {sorted(map(str, units))}: expected one of uV, mV, V for every channel")
    try:
        signal = multiplex_array(ds, index, as_raw=False)
    except (AttributeError, ValueError, KeyError) as exc:
        raise RecordError(f"unreadable waveform data: {exc}") from None
    keep = [k for k, n in enumerate(names) if n is not None]
    return RawRecord(np.asarray(signal[:, keep], dtype=np.float32), float(group.SamplingFrequency),
                     [names[k] for k in keep], units.pop(),
                     {"orig_unit": "DICOM channel sensitivity", "stored_leads": len(keep),
                      "multiplex_group": str(group.get("MultiplexGroupLabel", index))})


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


def xml_kind(path) -> str | None:
    """``muse`` or ``cardiosoft`` (UK Biobank's export), from the root element; None otherwise."""
    with open(path, "rb") as fh:
        head = fh.read(4096).decode("latin-1", errors="replace")
    if "<RestingECG" in head:
        return "muse"
    if "<CardiologyXML" in head:
        return "cardiosoft"
    return None
