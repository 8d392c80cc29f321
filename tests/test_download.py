"""The real downloader against a real HTTP server on 127.0.0.1 serving fixture files."""
import hashlib
import io
import json
import zipfile

import pytest

from ecgfm.download import (ChecksumError, UnsafeArchiveError, download_source, extract_zip,
                            fetch_file)

OPTIONS = {"retries": 2, "backoff_s": 0.01, "timeout_s": 10, "parallel": 2}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_fetch_verifies_and_renames(http_server, tmp_path):
    data = bytes(range(256)) * 4096
    http_server.files["/a.bin"] = data
    out = fetch_file(f"{http_server.url}/a.bin", tmp_path / "a.bin", ("sha256", sha256(data)), **{
        "retries": 1, "backoff_s": 0.01})
    assert out.read_bytes() == data
    assert not (tmp_path / "a.bin.part").exists()


def test_corrupted_file_raises_and_leaves_nothing_complete(http_server, tmp_path):
    data = b"ECG" * 100000
    http_server.files["/bad.bin"] = data
    http_server.corrupt.add("/bad.bin")
    with pytest.raises(ChecksumError, match="does not match"):
        fetch_file(f"{http_server.url}/bad.bin", tmp_path / "bad.bin", ("sha256", sha256(data)),
                   retries=1, backoff_s=0.01)
    assert not (tmp_path / "bad.bin").exists()
    assert not (tmp_path / "bad.bin.part").exists()


def test_cut_transfer_is_resumed_with_range(http_server, tmp_path):
    data = bytes(range(251)) * 20000          # ~5 MB, several chunks
    http_server.files["/big.bin"] = data
    http_server.cut_once.add("/big.bin")
    out = fetch_file(f"{http_server.url}/big.bin", tmp_path / "big.bin", ("sha256", sha256(data)),
                     retries=3, backoff_s=0.01)
    assert out.read_bytes() == data
    ranges = [r for p, r in http_server.requests if p == "/big.bin"]
    assert ranges[0] is None
    assert ranges[1] == f"bytes={len(data) // 2}-"    # resumed where the cut left off


def test_partial_file_from_an_earlier_run_is_resumed(http_server, tmp_path):
    data = b"0123456789" * 1000
    http_server.files["/p.bin"] = data
    (tmp_path / "p.bin.part").write_bytes(data[:4000])
    fetch_file(f"{http_server.url}/p.bin", tmp_path / "p.bin", ("sha256", sha256(data)), retries=1)
    assert (tmp_path / "p.bin").read_bytes() == data
    assert http_server.requests == [("/p.bin", "bytes=4000-")]


def test_existing_verified_file_is_not_fetched_again(http_server, tmp_path):
    data = b"x" * 10
    (tmp_path / "done.bin").write_bytes(data)
    fetch_file(f"{http_server.url}/done.bin", tmp_path / "done.bin", ("sha256", sha256(data)))
    assert http_server.requests == []


def test_physionet_project_with_sha256sums(http_server, tmp_path):
    files = {"ptbxl_database.csv": b"ecg_id\n1\n", "records100/00000/00001_lr.hea": b"hea",
             "records100/00000/00001_lr.dat": b"\x00\x01" * 1000}
    for name, body in files.items():
        http_server.files[f"/ptb-xl/1.0.3/{name}"] = body
    http_server.files["/ptb-xl/1.0.3/SHA256SUMS.txt"] = "".join(
        f"{sha256(body)} {name}\n" for name, body in files.items()).encode()
    got = download_source({"kind": "physionet", "project": "ptb-xl", "version": "1.0.3",
                           "include": ["*.csv", "records100/*"]}, tmp_path,
                          {**OPTIONS, "physionet_url": http_server.url})
    assert sorted(got) == sorted(files)
    for name, body in files.items():
        assert (tmp_path / name).read_bytes() == body


def test_zenodo_record_md5_and_zip_extraction(http_server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("exams_part0.hdf5", b"HDF5-bytes")
    part = buf.getvalue()
    csv = b"exam_id\n1\n"
    listing = {"files": [
        {"key": "exams.csv", "size": len(csv), "checksum": "md5:" + hashlib.md5(csv).hexdigest(),
         "links": {"self": f"{http_server.url}/files/exams.csv"}},
        {"key": "exams_part0.zip", "size": len(part), "checksum": "md5:" + hashlib.md5(part).hexdigest(),
         "links": {"self": f"{http_server.url}/files/exams_part0.zip"}}]}
    http_server.files["/api/records/4916206"] = json.dumps(listing).encode()
    http_server.files["/files/exams.csv"] = csv
    http_server.files["/files/exams_part0.zip"] = part
    download_source({"kind": "zenodo", "record": 4916206, "extract": True}, tmp_path,
                    {**OPTIONS, "zenodo_url": http_server.url})
    assert (tmp_path / "exams.csv").read_bytes() == csv
    assert (tmp_path / "exams_part0.hdf5").read_bytes() == b"HDF5-bytes"


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.txt", "a/../../escape.txt"])
def test_unsafe_archive_members_are_refused(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr(name, b"pwned")
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="refusing"):
        extract_zip(archive, out)
    assert not (tmp_path / "escape.txt").exists()
    assert not out.exists() or not any(out.iterdir())   # checked before anything is written
