"""How S3 keys become names (peer-tests.md's lookup and readdir checks)."""
import errno
import os

import pytest


def test_dir_and_dir_dash_one(mount):
    m = mount()
    names = os.listdir(m.dir)
    assert "dir" in names and "dir-1" in names
    assert os.path.isdir(m.path("dir")) and os.path.isdir(m.path("dir-1"))
    assert sorted(os.listdir(m.path("dir"))) == ["a.txt", "sub"]
    assert os.listdir(m.path("dir-1")) == ["b.txt"]


def test_directory_shadows_file(mount):
    m = mount()
    assert os.path.isdir(m.path("blue"))
    assert os.listdir(m.path("blue")) == ["image.jpg"]
    assert os.path.getsize(m.path("blue", "image.jpg")) == 4096


def test_directory_shadows_file_without_a_listing(mount):
    m = mount()
    # No readdir first: lookup itself must prefer the directory.
    assert os.path.isdir(m.path("blue"))


def test_keys_ending_in_slash_are_directories(mount):
    m = mount()
    assert os.path.isdir(m.path("empty")) and os.listdir(m.path("empty")) == []
    assert os.listdir(m.path("marker")) == ["inside.txt"]


def test_special_characters_and_unicode(testbed, mount):
    m = mount()
    assert sorted(os.listdir(m.path("odd"))) == ["a b+c&d=é.txt", "spaces in name.txt"]
    assert sorted(os.listdir(m.path("unicode"))) == ["こんにちは.txt", "🐈.txt"]
    objs = testbed.objects()
    for key in ("odd/a b+c&d=é.txt", "unicode/🐈.txt", "unicode/こんにちは.txt"):
        with open(m.path(*key.split("/")), "rb") as f:
            assert len(f.read()) == objs[key]["size"]


def test_invalid_names_are_hidden_not_errors(mount):
    m = mount()
    m.expect_log(r"hiding s3 key")
    assert os.listdir(m.path("hidden")) == ["ok.txt"]
    with pytest.raises(OSError) as ei:
        os.stat(m.path("hidden", "x" * 252 + ".txt"))
    assert ei.value.errno == errno.ENAMETOOLONG


def test_lookup_without_listing(testbed, mount):
    m = mount()
    # Deep path first, before any readdir: every level is looked up by name.
    assert os.path.getsize(m.path("dir", "sub", "deep.txt")) == \
        testbed.objects()["dir/sub/deep.txt"]["size"]


def test_readdir_offsets_are_stable(mount):
    m = mount("demo-bucket", "--list-page-size", "4")
    first = sorted(os.listdir(m.path("many")))
    second = sorted(os.listdir(m.path("many")))
    assert first == second and len(first) == 25
    # A small getdents buffer forces many readdir calls with offsets.
    fd = os.open(m.path("many"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = []
        with os.scandir(fd) as it:
            for e in it:
                names.append(e.name)
                assert e.is_file()
        assert sorted(names) == first
    finally:
        os.close(fd)
