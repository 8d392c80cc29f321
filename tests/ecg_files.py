"""ECG files in formats hospitals export, written by the tests from arrays in mV, following each
format's definition as ``ecgfm.formats`` cites it (the DICOM standard's Waveform module and 12-lead
ECG IOD; MUSE XML as public readers of real exports read it)."""
import base64
from pathlib import Path

import numpy as np

SCPECG_LEAD = {"I": 1, "II": 2, "III": 61, "aVR": 62, "aVL": 63, "aVF": 64,
               "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8}


def write_dicom_ecg(path, ecg_mv: np.ndarray, fs: float, leads, sensitivity_uv: float = 2.5,
                    baseline_uv: float = 0.0, correction: float = 1.0, mdc_codes=()) -> Path:
    """A 12-lead ECG Waveform Storage object: one RHYTHM multiplex group, 16-bit signed samples
    interleaved channel by channel, each channel's lead coded in SCP-ECG (or MDC for the leads in
    ``mdc_codes``), sensitivity in microvolts (UCUM)."""
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
        ch.ChannelSensitivity = f"{sensitivity_uv:g}"
        ch.ChannelSensitivityUnitsSequence = Sequence([unit])
        ch.ChannelSensitivityCorrectionFactor = f"{correction:g}"
        ch.ChannelBaseline = f"{baseline_uv:g}"
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
