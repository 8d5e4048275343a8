"""Downloads from a local HTTP server (resume, checksums, extraction) and the Speech Commands reader."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from kws.common.progress import Progress
from kws.data import speech_commands
from kws.data.audio import write_wav
from kws.data.download import DownloadError, download, extract_tar
from kws.data.speech_commands import Archive, fetch, index, which_set


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files`; honours `Range` unless `server.ignore_range`; can cut the next response short."""

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        byte_range = self.headers.get("Range")
        if byte_range and not server.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", byte_range).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            # Promise the whole body, send part of it and hang up, as a dropped connection does.
            self.wfile.write(body[: server.cut_after])
            server.cut_after = None
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch):
    monkeypatch.setattr("kws.data.download._RETRY_DELAY_SECONDS", 0.0)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.cut_after, httpd.ignore_range = {}, [], None, False
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-3000, 3000, 4000).astype(np.int16)


def _make_training_layout(root: Path) -> None:
    """A tiny data set in the layout of the training archives, with the official split lists."""
    for number, (word, speaker, take) in enumerate([
        ("yes", "aaaa1111", 0), ("yes", "aaaa1111", 1), ("yes", "bbbb2222", 0),
        ("no", "aaaa1111", 0), ("no", "cccc3333", 0), ("no", "dddd4444", 0),
    ]):  # fmt: skip
        (root / word).mkdir(parents=True, exist_ok=True)
        write_wav(root / word / f"{speaker}_nohash_{take}.wav", _noise(number), 16000)
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "white_noise.wav", _noise(7), 16000)
    (root / "_background_noise_" / "README.md").write_text("not audio\n")
    (root / "validation_list.txt").write_text("no/cccc3333_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/bbbb2222_nohash_0.wav\nno/dddd4444_nohash_0.wav\n")
    (root / "LICENSE").write_text("CC BY 4.0\n")


def _make_archive(tmp_path: Path) -> bytes:
    source = tmp_path / "source"
    _make_training_layout(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname="./" + path.relative_to(source).as_posix(), recursive=False)
    return buffer.getvalue()


@pytest.fixture
def archive(tmp_path):
    return _make_archive(tmp_path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_checksum_and_skips_when_present(server, archive, tmp_path):
    server.files["/data.tar.gz"] = archive
    dest = tmp_path / "out" / "data.tar.gz"
    assert download(server.url + "/data.tar.gz", dest, _sha256(archive), progress=False) == dest
    assert dest.read_bytes() == archive
    assert not dest.with_suffix(".gz.part").exists()
    download(server.url + "/data.tar.gz", dest, _sha256(archive), progress=False)
    download(server.url + "/data.tar.gz", dest, progress=False)
    assert len(server.requests) == 1  # both later calls found the file complete


def test_wrong_checksum_raises_and_removes_part_file(server, archive, tmp_path):
    server.files["/data.tar.gz"] = archive
    dest = tmp_path / "data.tar.gz"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as error:
        download(server.url + "/data.tar.gz", dest, wrong, progress=False)
    message = str(error.value)
    assert server.url + "/data.tar.gz" in message and wrong in message and _sha256(archive) in message
    assert not dest.exists() and not (tmp_path / "data.tar.gz.part").exists()


def test_existing_file_with_wrong_checksum_is_downloaded_again(server, archive, tmp_path):
    server.files["/data.tar.gz"] = archive
    dest = tmp_path / "data.tar.gz"
    dest.write_bytes(b"stale")
    download(server.url + "/data.tar.gz", dest, _sha256(archive), progress=False)
    assert dest.read_bytes() == archive


def test_interrupted_download_resumes_with_range(server, archive, tmp_path):
    server.files["/data.tar.gz"] = archive
    server.cut_after = 1000
    dest = tmp_path / "data.tar.gz"
    part = tmp_path / "data.tar.gz.part"
    with pytest.raises(DownloadError, match="1000"):
        download(server.url + "/data.tar.gz", dest, _sha256(archive), progress=False, attempts=1)
    assert part.read_bytes() == archive[:1000] and not dest.exists()
    download(server.url + "/data.tar.gz", dest, _sha256(archive), progress=False, attempts=1)
    assert dest.read_bytes() == archive and not part.exists()
    assert server.requests[-1] == ("/data.tar.gz", "bytes=1000-")


def test_dropped_connection_is_resumed_within_one_call(server, archive, tmp_path):
    server.files["/data.tar.gz"] = archive
    server.cut_after = 777
    dest = download(server.url + "/data.tar.gz", tmp_path / "data.tar.gz", _sha256(archive), progress=False)
    assert dest.read_bytes() == archive
    assert [byte_range for _, byte_range in server.requests] == [None, "bytes=777-"]


def test_server_ignoring_range_restarts_cleanly(server, archive, tmp_path):
    server.files["/data.tar.gz"] = archive
    server.ignore_range = True
    (tmp_path / "data.tar.gz.part").write_bytes(b"x" * 500)  # whatever is there must not end up in the file
    dest = download(server.url + "/data.tar.gz", tmp_path / "data.tar.gz", _sha256(archive), progress=False)
    assert dest.read_bytes() == archive
    assert server.requests == [("/data.tar.gz", "bytes=500-")]


def test_complete_part_file_is_accepted_on_416(server, archive, tmp_path):
    server.files["/data.tar.gz"] = archive
    (tmp_path / "data.tar.gz.part").write_bytes(archive)
    dest = download(server.url + "/data.tar.gz", tmp_path / "data.tar.gz", _sha256(archive), progress=False)
    assert dest.read_bytes() == archive
    assert server.requests == [("/data.tar.gz", f"bytes={len(archive)}-")]


def test_http_and_network_errors_name_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing\.tar\.gz: HTTP 404"):
        download(server.url + "/missing.tar.gz", tmp_path / "missing.tar.gz", progress=False)
    closed = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens on this port any more
    url = f"http://127.0.0.1:{port}/data.tar.gz"
    with pytest.raises(DownloadError, match="cannot connect") as error:
        download(url, tmp_path / "data.tar.gz", progress=False, attempts=2)
    assert url in str(error.value)


def test_extract_tar_and_index_training_layout(archive, tmp_path):
    path = tmp_path / "data.tar.gz"
    path.write_bytes(archive)
    root = extract_tar(path, tmp_path / "speech", progress=False)
    assert (root / "yes" / "aaaa1111_nohash_0.wav").is_file()
    assert not (tmp_path / "speech.extracting").exists()
    with pytest.raises(DownloadError, match="already exists"):
        extract_tar(path, root, progress=False)

    clips = index(root)
    assert [clip.path for clip in clips] == sorted(clip.path for clip in clips)
    summary = {
        (clip.path.parent.name, clip.path.name): (clip.word, clip.speaker, clip.split) for clip in clips
    }
    assert summary == {
        ("yes", "aaaa1111_nohash_0.wav"): ("yes", "aaaa1111", "train"),
        ("yes", "aaaa1111_nohash_1.wav"): ("yes", "aaaa1111", "train"),
        ("yes", "bbbb2222_nohash_0.wav"): ("yes", "bbbb2222", "test"),
        ("no", "aaaa1111_nohash_0.wav"): ("no", "aaaa1111", "train"),
        ("no", "cccc3333_nohash_0.wav"): ("no", "cccc3333", "validation"),
        ("no", "dddd4444_nohash_0.wav"): ("no", "dddd4444", "test"),
        ("_background_noise_", "white_noise.wav"): ("_background_noise_", "white_noise", "train"),
    }


def test_extract_tar_refuses_path_traversal(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        member = tarfile.TarInfo("../evil.txt")
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    path = tmp_path / "evil.tar.gz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="evil"):
        extract_tar(path, tmp_path / "out" / "dir", progress=False)
    assert not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "out" / "dir").exists() and not (tmp_path / "out" / "dir.extracting").exists()


def test_fetch_downloads_extracts_once(server, archive, tmp_path, monkeypatch):
    server.files["/sc.tar.gz"] = archive
    fake = Archive(server.url + "/sc.tar.gz", _sha256(archive), len(archive))
    monkeypatch.setitem(speech_commands.ARCHIVES, "speech_commands_v0.02", fake)
    root = fetch("v0.02", tmp_path, progress=False)
    assert root == tmp_path / "speech_commands_v0.02"
    assert len(index(root)) == 7
    assert not (tmp_path / "speech_commands_v0.02.tar.gz").exists()
    assert fetch("0.02", tmp_path, progress=False) == root
    assert len(server.requests) == 1
    with pytest.raises(ValueError, match="v0.03"):
        fetch("v0.03", tmp_path)


def test_archive_table_is_complete():
    for name, entry in speech_commands.ARCHIVES.items():
        assert entry.url == f"http://download.tensorflow.org/data/{name}.tar.gz"
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert set(speech_commands.ARCHIVES) == {
        speech_commands.archive_name(version, test_set)
        for version in ("v0.01", "v0.02")
        for test_set in (False, True)
    }


def _reference_split(speaker: str) -> str:
    """The rule of TensorFlow's input_data.which_set, written out independently, with 10 % / 10 %."""
    value = int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % (2**27) * (100.0 / (2**27 - 1))
    return "validation" if value < 10 else "test" if value < 20 else "train"


def test_which_set_is_the_official_speaker_hash():
    speakers = [f"{number:08x}" for number in range(0, 2**32, 2**32 // 300)]
    splits = {speaker: which_set(f"{speaker}_nohash_0.wav") for speaker in speakers}
    assert splits == {speaker: _reference_split(speaker) for speaker in speakers}
    assert set(splits.values()) == {"train", "validation", "test"}
    for speaker, split in list(splits.items())[:30]:
        # Only the speaker counts: the take number, the word folder and the directory do not.
        assert which_set(f"/data/yes/{speaker}_nohash_3.wav") == split
        assert which_set(f"other/{speaker}_nohash_12.wav") == split
    # These speakers are in the official v0.02 test set (speech_commands_test_set_v0.02).
    assert which_set("0cb74144_nohash_0.wav") == "test"
    assert which_set("fe1916ba_nohash_1.wav") == "test"
    assert which_set("0cb74144_nohash_0.wav", validation_percentage=0, testing_percentage=0) == "train"


def test_index_test_set_layout(tmp_path):
    for relative in ["yes/aaaa1111_nohash_0.wav", "_unknown_/bed_bbbb2222_nohash_1.wav",
                     "_unknown_/backward_aaaa1111_nohash_0.wav", "_silence_/17.wav", "_silence_/3.wav"]:  # fmt: skip
        (tmp_path / relative).parent.mkdir(exist_ok=True)
        write_wav(tmp_path / relative, _noise(1), 16000)
    clips = index(tmp_path)
    assert [clip.path.relative_to(tmp_path).as_posix() for clip in clips] == [
        "_silence_/17.wav", "_silence_/3.wav", "_unknown_/backward_aaaa1111_nohash_0.wav",
        "_unknown_/bed_bbbb2222_nohash_1.wav", "yes/aaaa1111_nohash_0.wav",
    ]  # fmt: skip
    assert [(clip.word, clip.speaker) for clip in clips] == [
        ("_silence_", "17"), ("_silence_", "3"), ("backward", "aaaa1111"), ("bed", "bbbb2222"), ("yes", "aaaa1111"),
    ]  # fmt: skip
    assert [clip.split for clip in clips] == [_reference_split(clip.speaker) for clip in clips]


def test_index_falls_back_to_hash_without_lists(tmp_path):
    _make_training_layout(tmp_path)
    (tmp_path / "validation_list.txt").unlink()
    (tmp_path / "testing_list.txt").unlink()
    for clip in index(tmp_path):
        expected = "train" if clip.word == "_background_noise_" else _reference_split(clip.speaker)
        assert clip.split == expected


def test_progress_prints_one_summary_line_off_a_terminal():
    stream = io.StringIO()
    with Progress(2_000_000, "downloading x", unit="B", stream=stream) as bar:
        bar.update(1_000_000)
        bar.update(1_000_000)
    assert stream.getvalue().startswith("downloading x: 2.0 MB/2.0 MB (100%), done in ")
    assert stream.getvalue().count("\n") == 1
    silent = io.StringIO()
    with Progress(None, "x", enabled=False, stream=silent) as bar:
        bar.update(5)
    assert silent.getvalue() == ""
