"""safe_extract refuses members that would escape the target; damaged archives are DataErrors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from miaudit.data.archive import list_members, read_members, safe_extract
from miaudit.errors import DataError


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def test_safe_extract_extracts_normal_members(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.gz", [("d/a.txt", b"A"), ("d/sub/b.txt", b"BB")])
    out = tmp_path / "out"
    files = safe_extract(archive, out)
    assert sorted(p.relative_to(out.resolve()).as_posix() for p in files) == ["d/a.txt", "d/sub/b.txt"]
    assert (out / "d/sub/b.txt").read_bytes() == b"BB"


def test_safe_extract_refuses_parent_traversal(tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", [("fine.txt", b"ok"), ("../evil", b"owned")])
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"member '\.\./evil' would be written outside"):
        safe_extract(archive, out)
    assert not (tmp_path / "evil").exists()
    assert not (out / "fine.txt").exists()  # checked before anything is written


def test_safe_extract_refuses_absolute_path_and_outward_links(tmp_path):
    target = tmp_path / "abs_evil"
    archive = make_tar(tmp_path / "abs.tar.gz", [(str(target), b"x")])
    with pytest.raises(DataError, match="outside"):
        safe_extract(archive, tmp_path / "out1")
    assert not target.exists()

    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../etc/passwd"
    archive = make_tar(tmp_path / "link.tar.gz", [link])
    with pytest.raises(DataError, match="points outside"):
        safe_extract(archive, tmp_path / "out2")
    assert not (tmp_path / "out2" / "link").exists()


def test_safe_extract_accepts_an_open_tarfile(tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", [("../evil", b"owned")])
    with tarfile.open(archive) as tar, pytest.raises(DataError, match="outside"):
        safe_extract(tar, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_read_members_in_memory_and_truncation(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", [("./dir/x.bin", b"x" * 5000), ("dir/y.bin", b"y")])
    assert read_members(archive, ["dir/x.bin", "dir/nope"]) == {"dir/x.bin": b"x" * 5000}
    assert list_members(archive) == ["dir/x.bin", "dir/y.bin"]
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"a.tar.gz is truncated or corrupt .*download it again"):
        read_members(archive, ["dir/x.bin"])
    archive.write_bytes(b"not an archive at all")
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_members(archive, ["dir/x.bin"])
