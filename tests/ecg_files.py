"""ECG files in formats hospitals export, written by the tests from arrays in mV, following each
format's definition as ``ecgfm.formats`` and ``ecgfm.wfdb`` cite it (the DICOM standard's Waveform
module and 12-lead ECG IOD; MUSE XML as public readers of real exports read it; the WFDB header and
signal specifications; HL7 aECG; Philips Sierra XML with XLI as sierra-ecg-tools describes it).
The encoders here (WFDB 212 packing, LZW, XLI delta codes) are written from those definitions, not
from the readers, so that a reader and its writer do not share a mistake."""
import base64
from pathlib import Path

import numpy as np

SCPECG_LEAD = {"I": 1, "II": 2, "III": 61, "aVR": 62, "aVL": 63, "aVF": 64,
               "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8}


def write_dicom_ecg(path, ecg_mv: np.ndarray, fs: float, leads, sensitivity_uv: float = 2.5,
                    baseline_uv: float = 0.0, correction: float = 1.0, mdc_codes=(), millivolt_leads=(),
                    unscaled_leads=(), unitless_leads=(), drop=()) -> Path:
    """A 12-lead ECG Waveform Storage object: one RHYTHM multiplex group, 16-bit signed samples
    interleaved channel by channel, each channel's lead coded in SCP-ECG (or MDC for the leads in
    ``mdc_codes``), sensitivity in microvolts (UCUM), or in millivolts for ``millivolt_leads``
    (the same counts, the sensitivity a thousandth). ``unscaled_leads`` lack Channel Sensitivity
    (and its units, correction and baseline), as a file with arbitrary units does; ``unitless_leads``
    have an empty Channel Sensitivity Units Sequence; ``drop`` names
    attributes left out of the multiplex group (``SamplingFrequency``, ``ChannelDefinitionSequence``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "ECG", "anon"
    # physical = raw x sensitivity x correction + baseline  (PS3.3 C.10.9.1.4.2)
    raw = np.round((np.asarray(ecg_mv) * 1000.0 - baseline_uv) / (sensitivity_uv * correction))
    raw = np.clip(raw, -32768, 32767).astype("<i2")
    channels = []
    for lead in leads:
        source = Dataset()
        if lead in mdc_codes:
            source.CodeValue, source.CodingSchemeDesignator = f"2:{SCPECG_LEAD[lead]}", "MDC"
        else:
            source.CodeValue, source.CodingSchemeDesignator = f"5.6.3-9-{SCPECG_LEAD[lead]}", "SCPECG"
        source.CodeMeaning = f"Lead {lead}"
        unit = Dataset()
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "uV", "UCUM", "microvolt"
        ch = Dataset()
        ch.ChannelSourceSequence = Sequence([source])
        scale = 1e-3 if lead in millivolt_leads else 1.0
        if lead in millivolt_leads:
            unit.CodeValue, unit.CodeMeaning = "mV", "millivolt"
        if lead not in unscaled_leads:
            ch.ChannelSensitivity = f"{sensitivity_uv * scale:g}"
            ch.ChannelSensitivityUnitsSequence = Sequence([] if lead in unitless_leads else [unit])
            ch.ChannelSensitivityCorrectionFactor = f"{correction:g}"
            ch.ChannelBaseline = f"{baseline_uv * scale:g}"
        ch.ChannelSampleSkew = "0"
        ch.WaveformBitsStored = 16
        channels.append(ch)
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(leads)
    group.NumberOfWaveformSamples = raw.shape[0]
    group.SamplingFrequency = f"{fs:g}"
    group.ChannelDefinitionSequence = Sequence(channels)
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformData = raw.tobytes()                   # [samples, channels] row-major = interleaved
    for keyword in drop:
        delattr(group, keyword)
    ds.WaveformSequence = Sequence([group])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_muse_xml(path, ecg_mv: np.ndarray, fs: int, leads, uv_per_bit: float = 4.88, baseline: int = 0,
                   median=True) -> Path:
    """A MUSE RestingECG export: a Median waveform (when ``median``) before the Rhythm one, each
    lead base64 of little-endian int16 counts of ``uv_per_bit`` microvolts, less ``baseline``."""
    counts = np.clip(np.round(np.asarray(ecg_mv) * 1000.0 / uv_per_bit) - baseline, -32768, 32767).astype("<i2")

    def waveform(kind, data):
        leads_xml = "".join(
            f"<LeadData><LeadByteCountTotal>{data.shape[0] * 2}</LeadByteCountTotal><LeadTimeOffset>0</LeadTimeOffset>"
            f"<LeadSampleCountTotal>{data.shape[0]}</LeadSampleCountTotal>"
            f"<LeadAmplitudeUnitsPerBit>{uv_per_bit:g}</LeadAmplitudeUnitsPerBit>"
            f"<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadHighLimit>32767</LeadHighLimit>"
            f"<LeadLowLimit>-32768</LeadLowLimit><LeadID>{lead}</LeadID><LeadOffsetFirstSample>0</LeadOffsetFirstSample>"
            f"<FirstSampleBaseline>{baseline}</FirstSampleBaseline><LeadSampleSize>2</LeadSampleSize>"
            f"<LeadOff>FALSE</LeadOff><BaselineSway>FALSE</BaselineSway>"
            f"<WaveFormData>{base64.b64encode(data[:, k].tobytes()).decode()}</WaveFormData></LeadData>"
            for k, lead in enumerate(leads))
        return (f"<Waveform><WaveformType>{kind}</WaveformType><WaveformStartTime>0</WaveformStartTime>"
                f"<NumberofLeads>{len(leads)}</NumberofLeads><SampleType>CONTINUOUS_SAMPLES</SampleType>"
                f"<SampleBase>{fs}</SampleBase><SampleExponent>0</SampleExponent>{leads_xml}</Waveform>")
    body = (waveform("Median", counts[: fs // 2] * 0) if median else "") + waveform("Rhythm", counts)
    xml = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n'
           f"<RestingECG><MuseInfo><MuseVersion>8.0.2.10132</MuseVersion></MuseInfo>{body}</RestingECG>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml, encoding="latin-1")
    return path


# --- WFDB ----------------------------------------------------------------------------------------
def pack_212(digital: np.ndarray) -> bytes:
    """Format 212 (signal(5)): samples in frame order, two 12-bit two's-complement samples in 3
    bytes: byte 0 = low 8 bits of the first, byte 1 = its high 4 bits (low nibble) and the second's
    high 4 bits (high nibble), byte 2 = low 8 bits of the second. An odd count ends with 2 bytes."""
    flat = np.asarray(digital, dtype=np.int64).reshape(-1) & 0xFFF
    out = bytearray()
    for k in range(0, flat.size, 2):
        a = int(flat[k])
        b = int(flat[k + 1]) if k + 1 < flat.size else 0
        out += bytes([a & 0xFF, (a >> 8) | ((b >> 8) << 4)])
        if k + 1 < flat.size:
            out.append(b & 0xFF)
    return bytes(out)


def write_wfdb_212(directory, name, digital: np.ndarray, fs: float, sig_names, gain=200.0, units="mV",
                   skews=None, lines_only=False) -> Path:
    """A format-212 WFDB record ``name`` (``.hea`` + ``.dat``) of ``digital`` [samples, signals];
    ``skews`` (one per signal) write each signal ``skew`` frames late, as the header then declares;
    the file holds the header's number of frames, so a skewed signal's last samples are not in it
    (as in wfdb-python's ``100skew``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digital = np.asarray(digital, dtype=np.int64)
    n, nsig = digital.shape
    skews = list(skews or [0] * nsig)
    stored = np.zeros((n + max(skews), nsig), dtype=np.int64)
    for k, skew in enumerate(skews):
        stored[skew : skew + n, k] = digital[:, k]
    stored = stored[:n]
    (directory / f"{name}.dat").write_bytes(pack_212(stored))
    fmt = [f"212:{s}" if s else "212" for s in skews]
    lines = [f"{name} {nsig} {fs:g} {n}"] + [
        f"{name}.dat {fmt[k]} {gain:g}/{units} 12 0 {int(digital[0, k])} 0 0 {sig}" for k, sig in enumerate(sig_names)]
    (directory / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return directory / f"{name}.hea"


def write_multisegment(directory, name, segments, fs: float, sig_names, gain=1000.0, units="mV",
                       layout=True) -> Path:
    """A multi-segment WFDB record (header(5)): ``segments`` is a list of arrays [samples, signals]
    (format-16 segments ``<name>_<k>``) or integers (a null segment ``~`` of that many samples).
    With ``layout`` the first segment is a layout header (length 0) naming the signals."""
    from ecgfm.wfdb import write_record
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    if layout:
        (directory / f"{name}_layout.hea").write_text(
            f"{name}_layout {len(sig_names)} {fs:g} 0\n"
            + "".join(f"~ 0 {gain:g}/{units} 16 0 0 0 0 {sig}\n" for sig in sig_names))
        lines.append(f"{name}_layout 0")
    total = 0
    for k, segment in enumerate(segments):
        if isinstance(segment, int):
            lines.append(f"~ {segment}")
            total += segment
            continue
        seg_name = f"{name}_{k:04d}"
        write_record(directory, seg_name, segment, fs, list(sig_names), gain=gain, units=units)
        lines.append(f"{seg_name} {len(segment)}")
        total += len(segment)
    nseg = len(lines)
    (directory / f"{name}.hea").write_text(f"{name}/{nseg} {len(sig_names)} {fs:g} {total}\n" + "\n".join(lines) + "\n")
    return directory / f"{name}.hea"


# --- HL7 aECG ------------------------------------------------------------------------------------
MDC_LEAD = {lead: f"MDC_ECG_LEAD_{lead.upper() if lead.startswith('a') else lead}" for lead in SCPECG_LEAD}


def write_aecg(path, ecg_mv: np.ndarray, fs: float, leads, scale_uv: float = 2.5, origin_uv: float = 0.0,
               with_time=True, median=True) -> Path:
    """An HL7 v3 AnnotatedECG: a RHYTHM series whose sequenceSet has a TIME_ABSOLUTE GLIST_TS
    (increment in s) and one SLIST_PQ per lead (value = origin + scale x digit, in uV), and, when
    ``median``, a derived MEDIAN series of zeros first in the file's order of elements."""
    digits = np.round((np.asarray(ecg_mv) * 1000.0 - origin_uv) / scale_uv).astype(np.int64)

    def sequence_set(data):
        time = (f'<component><sequence><code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>'
                f'<value xsi:type="GLIST_TS"><head value="20240101120000.000"/>'
                f'<increment value="{1.0 / fs:g}" unit="s"/></value></sequence></component>') if with_time else ""
        return "<sequenceSet>" + time + "".join(
            f'<component><sequence><code code="{MDC_LEAD[lead]}" codeSystem="2.16.840.1.113883.6.24"/>'
            f'<value xsi:type="SLIST_PQ"><origin value="{origin_uv:g}" unit="uV"/><scale value="{scale_uv:g}" unit="uV"/>'
            f'<digits>{" ".join(map(str, data[:, k]))}</digits></value></sequence></component>'
            for k, lead in enumerate(leads)) + "</sequenceSet>"
    derived = (f'<derivation><derivedSeries><code code="REPRESENTATIVE_BEAT" codeSystem="2.16.840.1.113883.5.4"/>'
               f'<component>{sequence_set(digits[: int(fs)] * 0)}</component></derivedSeries></derivation>') if median else ""
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
           '<id root="1.2.3"/><code code="93000" codeSystem="2.16.840.1.113883.6.12"/>'
           '<component><series><code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>'
           f'{derived}<component>{sequence_set(digits)}</component></series></component></AnnotatedECG>\n')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml, encoding="utf-8")
    return path


# --- Philips Sierra XML with XLI -------------------------------------------------------------------
def lzw_encode(data: bytes, bits: int = 10) -> bytes:
    """LZW as XLI uses it: codes of ``bits`` bits written most significant bit first, the 256
    single bytes as the first codes, new codes up to 2**bits - 2, then 2**bits - 1 as the end
    code and the bits flushed to whole bytes (Mark Nelson's LZW, as sierra-ecg-tools describes)."""
    end, max_code = (1 << bits) - 1, (1 << bits) - 2
    table = {bytes([k]): k for k in range(256)}
    codes, current, next_code = [], b"", 256
    for byte in data:
        candidate = current + bytes([byte])
        if candidate in table:
            current = candidate
            continue
        codes.append(table[current])
        if next_code <= max_code:
            table[candidate] = next_code
            next_code += 1
        current = bytes([byte])
    if current:
        codes.append(table[current])
    codes += [end, 0]
    out, value, have = bytearray(), 0, 0
    for code in codes:
        value, have = (value << bits) | code, have + bits
        while have >= 8:
            have -= 8
            out.append((value >> have) & 0xFF)
            value &= (1 << have) - 1
    if have:
        out.append((value << (8 - have)) & 0xFF)
    return bytes(out)


def xli_encode_lead(samples: np.ndarray) -> bytes:
    """One XLI chunk of a lead: its delta codes (the inverse of the decoding rule: sample k =
    2 x sample[k-1] - sample[k-2] - d[k-1]; the first two values are samples, d[1] goes to the
    header, d[j] + 64 is value j for j >= 2 and the last value is 64), 16-bit values split into
    all high bytes then all low bytes, LZW-coded, behind the 8-byte chunk header."""
    x = np.asarray(samples, dtype=np.int64)
    n = x.size
    d = np.zeros(n, dtype=np.int64)
    d[1 : n - 1] = 2 * x[1 : n - 1] - x[: n - 2] - x[2:]          # d[k-1] for sample k
    values = np.empty(n, dtype=np.int64)
    values[:2] = x[:2]
    values[2:] = d[2:] + 64
    u = (values & 0xFFFF).astype(np.uint16)
    raw = (u >> 8).astype(np.uint8).tobytes() + (u & 0xFF).astype(np.uint8).tobytes()
    packed = lzw_encode(raw)
    return (np.array([len(packed)], "<i4").tobytes() + np.array([1, d[1]], "<i2").tobytes() + packed)


def write_philips_xml(path, ecg_mv: np.ndarray, fs: int, resolution_uv: float = 5.0, version="1.04",
                      encoding="utf-16", calibration=True) -> Path:
    """A Philips PageWriter/TC ``restingecgdata`` export of 12 leads (I ... V6): XLI-compressed,
    III/aVR/aVL/aVF stored as residuals from I and II (rebuilt as ``ecgfm.formats`` documents),
    written in UTF-16 as the devices do; ``calibration`` appends the device's calibration mark
    (0.1 s of zeros then 0.2 s of 1 mV in every lead, then zeros to 1 s)."""
    counts = np.round(np.asarray(ecg_mv) * 1000.0 / resolution_uv).astype(np.int64).T      # [12, n]
    if calibration:
        mark = np.zeros((12, fs), dtype=np.int64)
        mark[:, fs // 10 : fs // 10 + fs // 5] = int(round(1000 / resolution_uv))
        counts = np.concatenate([counts, mark], axis=1)
    i, ii, iii = counts[0], counts[1], counts[2]

    def half(v):
        return np.trunc(v / 2).astype(np.int64)
    stored = counts.copy()
    stored[2] = ii - i - iii                                  # residuals of the derived limb leads
    stored[3] = -counts[3] - half(i + ii)
    stored[4] = half(i - iii) - counts[4]
    stored[5] = half(ii + iii) - counts[5]
    payload = b"".join(xli_encode_lead(lead) for lead in stored)
    duration_ms = counts.shape[1] * 1000 // fs
    labels = "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6"
    if version == "1.03":
        attrs = f'compressflag="True" compressmethod="XLI" dataencoding="Base64" durationperchannel="{duration_ms}"'
        chars = f"<samplingrate>{fs}</samplingrate><signalresolution>{resolution_uv:g}</signalresolution>"
    else:
        attrs = (f'dataencoding="Base64" compression="XLI" numberofleads="12" leadlabels="{labels}" '
                 f'durationperchannel="{duration_ms}" samplespersecond="{fs}" resolution="{resolution_uv:g}"')
        chars = f"<samplingrate>{fs}</samplingrate><resolution>{resolution_uv:g}</resolution>"
    xml = (f'<?xml version="1.0" encoding="{encoding}"?>\n<restingecgdata xmlns="http://www3.medical.philips.com">'
           f"<documentinfo><documenttype>PhilipsECG</documenttype><documentversion>{version}</documentversion></documentinfo>"
           f"<dataacquisition><signalcharacteristics>{chars}<acquisitiontype>STD-12</acquisitiontype>"
           f"<numberchannelsallocated>12</numberchannelsallocated></signalcharacteristics></dataacquisition>"
           f"<waveforms><parsedwaveforms {attrs}>{base64.b64encode(payload).decode()}</parsedwaveforms></waveforms>"
           f"</restingecgdata>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml, encoding=encoding)
    return path


# --- a folder of ECG files as other people make them: good and broken ones of every format --------
LEADS12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def write_mixed_folder(root, ecg_mv: np.ndarray, fs: int = 500) -> dict:
    """Good and broken files of every format the embed/predict folder reader knows, each made
    from ``ecg_mv`` [n, 12] (10 s). Returns {record_id: (status, reason pattern)}, one per record."""
    import json
    import re

    from ecgfm.demo import ukb_xml
    from ecgfm.wfdb import write_record
    root = Path(root)
    counts = np.round(ecg_mv * 1000).astype("<i2")                 # 1 uV per count
    expected = {}
    write_record(root / "wfdb", "good", counts, fs, LEADS12, gain=1000.0)
    expected["wfdb/good"] = ("ok", "")
    write_record(root / "wfdb", "truncated", counts, fs, LEADS12, gain=1000.0)
    dat = root / "wfdb" / "truncated.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    expected["wfdb/truncated"] = ("rejected", "truncated signal file truncated.dat")
    write_record(root / "wfdb", "format8", counts, fs, LEADS12, gain=1000.0)
    hea = root / "wfdb" / "format8.hea"
    hea.write_text(hea.read_text().replace(" 16 1000", " 8 1000"))
    expected["wfdb/format8"] = ("rejected", "WFDB format 8 is not supported")
    write_multisegment(root / "wfdb", "monitor", [fs * 5, counts, counts], fs, LEADS12)
    expected["wfdb/monitor"] = ("ok", "")
    (root / "wfdb" / "cinc.mat").write_bytes(bytes(24) + counts.tobytes())    # CinC 2021: after a MATLAB header
    (root / "wfdb" / "cinc.hea").write_text(f"cinc 12 {fs} {len(counts)}\n" + "".join(
        f"cinc.mat 16+24 1000/mV 16 0 0 0 0 {lead}\n" for lead in LEADS12))
    expected["wfdb/cinc"] = ("ok", "")
    write_dicom_ecg(root / "dicom" / "good.dcm", ecg_mv, fs, LEADS12)
    expected["dicom/good"] = ("ok", "")
    write_dicom_ecg(root / "dicom" / "PACS0001", ecg_mv, fs, LEADS12, millivolt_leads=("V1",))
    expected["dicom/PACS0001"] = ("ok", "")
    write_dicom_ecg(root / "dicom" / "no_rate.dcm", ecg_mv, fs, LEADS12, drop=("SamplingFrequency",))
    expected["dicom/no_rate"] = ("rejected", "no Sampling Frequency")
    write_dicom_ecg(root / "dicom" / "no_channels.dcm", ecg_mv, fs, LEADS12, drop=("ChannelDefinitionSequence",))
    expected["dicom/no_channels"] = ("rejected", "no Channel Definition Sequence")
    write_dicom_ecg(root / "dicom" / "unscaled.dcm", ecg_mv, fs, LEADS12, unscaled_leads=("V3",))
    expected["dicom/unscaled"] = ("rejected", re.escape("missing lead(s): V3") + ".*V3 \\(no ChannelSensitivity")
    (root / "dicom" / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00" * 10)
    expected["dicom/broken"] = ("rejected", "unreadable")
    muse_leads = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]                 # what MUSE stores
    write_muse_xml(root / "muse" / "good.xml", ecg_mv[:, [LEADS12.index(n) for n in muse_leads]], fs, muse_leads)
    expected["muse/good"] = ("ok", "")
    text = (root / "muse" / "good.xml").read_text(encoding="latin-1").replace('encoding="ISO-8859-1"', 'encoding="UTF-16"')
    (root / "muse" / "utf16.xml").write_text(text, encoding="utf-16")
    expected["muse/utf16"] = ("ok", "")
    (root / "muse" / "no_rate.xml").write_text(text.replace("<SampleBase>500</SampleBase>", ""), encoding="utf-16")
    expected["muse/no_rate"] = ("rejected", "no SampleBase")
    (root / "ukb").mkdir(parents=True)
    (root / "ukb" / "good.xml").write_text(ukb_xml(1, ecg_mv, fs, 60, True), encoding="latin-1")
    expected["ukb/good"] = ("ok", "")
    empty = re.sub(r'(<WaveformData lead="V2">)[^<]*', r"\1", ukb_xml(2, ecg_mv, fs, 60, True))
    (root / "ukb" / "empty_lead.xml").write_text(empty, encoding="latin-1")
    expected["ukb/empty_lead"] = ("rejected", "lead 'V2' holds no samples")
    write_aecg(root / "aecg" / "good.xml", ecg_mv, fs, LEADS12)
    expected["aecg/good"] = ("ok", "")
    write_aecg(root / "aecg" / "no_time.xml", ecg_mv, fs, LEADS12, with_time=False)
    expected["aecg/no_time"] = ("rejected", "the rate is unknown")
    write_philips_xml(root / "philips" / "good.xml", ecg_mv, fs)
    expected["philips/good"] = ("ok", "")
    good = (root / "philips" / "good.xml").read_text(encoding="utf-16")
    start = good.index('resolution="5">') + len('resolution="5">')
    (root / "philips" / "cut.xml").write_text(good[: start + 4000] + good[good.index("</parsedwaveforms>"):],
                                              encoding="utf-16")
    expected["philips/cut"] = ("rejected", "XLI")
    (root / "other").mkdir()
    (root / "other" / "unknown.xml").write_text("<?xml version='1.0'?><Recipe/>")
    expected["other/unknown"] = ("rejected", "XML that is none of")
    (root / "other" / "not_xml.xml").write_text("this is not XML")
    expected["other/not_xml"] = ("rejected", "unreadable XML")
    (root / "other" / "holter.edf").write_bytes(b"0       " + b" " * 248)      # EDF's header starts so
    expected["other/holter.edf"] = ("rejected", "EDF, which ecgfm does not read")
    (root / "other" / "orphan.dat").write_bytes(counts.tobytes())
    expected["other/orphan.dat"] = ("rejected", "a WFDB signal file without a .hea header of its name")
    (root / "other" / "README.txt").write_text("notes on these exports: a part of the folder, not a record")
    (root / "arrays").mkdir()
    np.save(root / "arrays" / "good.npy", ecg_mv)
    (root / "arrays" / "good.json").write_text(json.dumps({"fs": fs, "unit": "mV", "leads": LEADS12}))
    np.save(root / "arrays" / "no_sidecar.npy", ecg_mv)
    expected["arrays/no_sidecar"] = ("rejected", "no sidecar")
    expected["arrays/good"] = ("ok", "")
    import pandas as pd
    pd.DataFrame(ecg_mv, columns=["DI", "DII", "DIII", "AVR", "AVL", "AVF", *LEADS12[6:]]).to_csv(
        root / "arrays" / "table.csv", index=False)                            # leads from the header
    (root / "arrays" / "table.json").write_text(json.dumps({"fs": fs, "unit": "mV"}))
    expected["arrays/table"] = ("ok", "")
    lines = (root / "arrays" / "table.csv").read_text().splitlines()
    lines[100] = ",".join(["---"] * 12)                                       # a lead-off mark as text
    (root / "arrays" / "lead_off.csv").write_text("\n".join(lines) + "\n")
    (root / "arrays" / "lead_off.json").write_text(json.dumps({"fs": fs, "unit": "mV"}))
    expected["arrays/lead_off"] = ("rejected", "could not convert string to float: '---'")
    return expected
