import hashlib

import pytest

from nsd.errors import Invalid, NameTooLong
from nsd.namespace.names import (
    FIRST_COOKIE,
    join_path,
    name_cookie,
    names_plainly_valid,
    split_path,
    utf8,
    validate_name,
    validate_names,
)


@pytest.mark.parametrize("name", ["a", "file.txt", ".hidden", "..x", "x..", "é" * 127, "a" * 255, "日本", " "])
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/", "a\0b", "\0"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(Invalid) as e:
        validate_name(name)
    assert not isinstance(e.value, NameTooLong)


@pytest.mark.parametrize("name", ["a" * 256, "é" * 128, "日" * 86])
def test_names_over_255_utf8_bytes_are_too_long(name: str) -> None:
    with pytest.raises(NameTooLong):
        validate_name(name)


NAMES = ["a", "file.txt", ".hidden", "..x", " ", "a" * 255, "é", "日本", "", ".", "..", "a/b", "/", "a\0b", "a" * 256]
NAMES += ["é" * 128, "x\udcff", b"abc", None, "\ud800"]  # type: ignore[list-item]


@pytest.mark.parametrize("bad", range(len(NAMES)))
def test_a_page_of_names_is_valid_as_each_of_its_names_is(bad: int) -> None:
    # The fast check of a listing page never passes a name validate_name refuses, and
    # validate_names raises what validate_name raises for the first bad name.
    names = ["part-00000.parquet", "b", *NAMES[bad : bad + 1], "c"]
    errors = []
    for name in names:
        try:
            validate_name(name)
        except Invalid as e:
            errors.append(e)
    if names_plainly_valid(names):
        assert not errors
    try:
        validate_names(names)
    except Invalid as e:
        assert errors and type(e) is type(errors[0]) and str(e) == str(errors[0])
    else:
        assert not errors
    assert names_plainly_valid([f"part-{i:05d}-c000.snappy.parquet" for i in range(1000)])
    assert not names_plainly_valid([])


def test_a_name_must_be_a_string() -> None:
    with pytest.raises(Invalid):
        validate_name(b"abc")  # type: ignore[arg-type]


def test_undecodable_bytes_count_as_one_byte_each() -> None:
    # NFS names arrive as bytes; a surrogateescape decode keeps invalid UTF-8 byte for byte.
    name = b"\xff".decode("utf-8", "surrogateescape") * 255
    validate_name(name)
    assert utf8(name) == b"\xff" * 255
    with pytest.raises(NameTooLong):
        validate_name(name + "x")


def test_lone_surrogates_that_are_no_byte_are_invalid() -> None:
    with pytest.raises(Invalid):
        validate_name("a\ud800" * 40)


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/", []),
        ("//", []),
        ("/a", ["a"]),
        ("/a/b/c", ["a", "b", "c"]),
        ("//a///b/", ["a", "b"]),
        ("/.x/..y", [".x", "..y"]),
    ],
)
def test_split_path(path: str, parts: list[str]) -> None:
    assert split_path(path) == parts


@pytest.mark.parametrize("path", ["", "a", "a/b", "/a/./b", "/a/../b", "/..", "/.", "/a/\0", "/a/b\0c"])
def test_split_path_refuses(path: str) -> None:
    with pytest.raises(Invalid) as e:
        split_path(path)
    assert not isinstance(e.value, NameTooLong)
    assert e.value.path == path


def test_split_path_limits() -> None:
    ok = "/" + "/".join(["a" * 255] * 16)  # 4096 bytes
    assert len(ok) == 4096
    assert len(split_path(ok)) == 16
    with pytest.raises(NameTooLong):
        split_path(ok + "b")
    with pytest.raises(NameTooLong):
        split_path("/" + "é" * 2048)  # 4097 bytes, 2049 characters
    with pytest.raises(NameTooLong):
        split_path("/a/" + "b" * 256 + "/c")


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (("/",), "/"),
        (("/", "a"), "/a"),
        (("/a", "b"), "/a/b"),
        (("/a/", "b", "c"), "/a/b/c"),
        (("/a",), "/a"),
    ],
)
def test_join_path(args: tuple[str, ...], path: str) -> None:
    assert join_path(*args) == path


def test_join_and_split_are_inverse() -> None:
    parts = ["x", "y y", "ü"]
    assert split_path(join_path("/", *parts)) == parts


def test_name_cookie_is_the_documented_hash() -> None:
    # Cookies are handed to NFS clients and must not change between releases.
    for name in ["a", "file.txt", "日本語"]:
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        assert name_cookie(name) == max(FIRST_COOKIE, int.from_bytes(digest, "big") >> 1)


def test_name_cookies_are_63_bit_and_never_reserved() -> None:
    cookies = {name_cookie(f"n{i}") for i in range(5000)}
    assert len(cookies) == 5000
    assert all(FIRST_COOKIE <= c < 1 << 63 for c in cookies)
