"""S3 specifics beyond the conformance suite: paged listings and objects changed by a plain
S3 client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import boto3
from conftest import S3_KEYS, make_bucket, s3_options

from nsd.ufs import open_ufs
from nsd.ufs.adapters.arrow import ArrowUfs


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=S3_KEYS["access_key"],
        aws_secret_access_key=S3_KEYS["secret_key"],
        region_name="us-east-1",
    )


async def test_listing_pages_through_a_large_prefix(moto_endpoint: str) -> None:
    bucket = make_bucket(moto_endpoint)
    s3 = client(moto_endpoint)
    for i in range(35):
        s3.put_object(Bucket=bucket, Key=f"d/f{i:03d}", Body=b"x" * i)
    s3.put_object(Bucket=bucket, Key="d/sub/g", Body=b"")
    s3.put_object(Bucket=bucket, Key="d/.nsd-tmp.0123.f000", Body=b"half")
    s3.put_object(Bucket=bucket, Key="dz", Body=b"")  # shares the prefix "d" but is not in d/
    ufs = open_ufs(f"s3://{bucket}", {**s3_options(moto_endpoint), "list_page": "10"})
    inner = ufs.inner  # type: ignore[attr-defined]
    assert isinstance(inner, ArrowUfs) and inner.lister is not None

    it = aiter(ufs.list("d"))
    first = await anext(it)
    assert inner.lister.pages_fetched == 1  # the first entry needs one page, not the whole prefix
    rest = [s async for s in it]
    assert inner.lister.pages_fetched == 4
    entries = {s.name: (s.is_dir, s.size) for s in [first, *rest]}
    assert len(rest) + 1 == len(entries) == 36
    assert entries == {"sub": (True, 0), **{f"f{i:03d}": (False, i) for i in range(35)}}
    stat = await ufs.stat("d/f007")
    listed = {s.name: s async for s in ufs.list("d")}["f007"]
    assert listed.fingerprint() == stat.fingerprint()  # a listing and a stat agree


async def test_out_of_band_changes_are_seen(moto_endpoint: str) -> None:
    bucket = make_bucket(moto_endpoint)
    s3 = client(moto_endpoint)
    ufs = open_ufs(f"s3://{bucket}/p", s3_options(moto_endpoint))
    s3.put_object(Bucket=bucket, Key="p/new", Body=b"from outside")
    assert await ufs.read("new", 0, 100) == b"from outside"
    s3.put_object(Bucket=bucket, Key="p/new", Body=b"overwritten, longer")
    assert (await ufs.stat("new")).size == len(b"overwritten, longer")
    s3.delete_object(Bucket=bucket, Key="p/new")
    assert [s.name async for s in ufs.list("")] == []


async def test_listing_is_in_name_order_even_where_key_order_differs(moto_endpoint: str) -> None:
    """Directory "a" has key "a/", which S3 sorts after "a-1"; pages still come in name order,
    each directory once, whatever the page boundaries."""
    bucket = make_bucket(moto_endpoint)
    s3 = client(moto_endpoint)
    names = ["a-1", "a-2", "a-3", "a.txt", "b", "b-c", "c-0"]
    for n in names:
        s3.put_object(Bucket=bucket, Key=f"d/{n}", Body=b"")
    for sub in ("a/x", "c/y", "b-c-d/z", "zz/w"):  # directories; S3 lists "a/" and "c/" late
        s3.put_object(Bucket=bucket, Key=f"d/{sub}", Body=b"")
    expected = sorted([*names, "a", "c", "b-c-d", "zz"])
    for page in ("1", "2", "3", "1000"):
        ufs = open_ufs(f"s3://{bucket}", {**s3_options(moto_endpoint), "list_page": page})
        listed = [(s.name, s.is_dir) async for s in ufs.list("d")]
        assert [n for n, _ in listed] == expected, page
        assert {n for n, is_dir in listed if is_dir} == {"a", "c", "b-c-d", "zz"}
    assert ufs.sorted_listing


async def test_sweep_deletes_old_temporary_objects_only(moto_endpoint: str) -> None:
    from datetime import UTC, datetime, timedelta

    from moto.s3.models import s3_backends

    bucket = make_bucket(moto_endpoint)
    s3 = client(moto_endpoint)
    for key in ("p/.nsd-tmp.0001.f", "p/sub/.nsd-tmp.0002.g", "p/.nsd-tmp.0003.fresh", "p/keep", "other/.nsd-tmp.9.x"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    backend = s3_backends["123456789012"]["global"]
    for key in ("p/.nsd-tmp.0001.f", "p/sub/.nsd-tmp.0002.g", "other/.nsd-tmp.9.x"):
        backend.get_object(bucket, key).last_modified = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    ufs = open_ufs(f"s3://{bucket}/p", s3_options(moto_endpoint))
    assert [s.name async for s in ufs.list("")] == ["keep", "sub"]  # never listed
    assert await ufs.sweep_tmp(3600) == 2
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert left == ["other/.nsd-tmp.9.x", "p/.nsd-tmp.0003.fresh", "p/keep"]  # outside the mount: untouched


async def test_fingerprint_carries_the_etag(moto_endpoint: str) -> None:
    """An overwrite of the same size within the same second changes only the ETag; the
    fingerprint must still change (cached blocks of the old bytes must not be served)."""
    bucket = make_bucket(moto_endpoint)
    s3 = client(moto_endpoint)
    ufs = open_ufs(f"s3://{bucket}/p", s3_options(moto_endpoint))
    s3.put_object(Bucket=bucket, Key="p/f", Body=b"aaaa")
    before = await ufs.stat("f")
    s3.put_object(Bucket=bucket, Key="p/f", Body=b"bbbb")
    after = await ufs.stat("f")
    assert before.etag and after.etag and before.fingerprint() != after.fingerprint()
    assert [s.fingerprint() async for s in ufs.list("")] == [after.fingerprint()]
    s3.put_object(Bucket=bucket, Key="p/d/", Body=b"")
    assert (await ufs.stat("d")).is_dir and (await ufs.stat("")).is_dir
    written = await ufs.write("w", body(b"through nsd"))
    assert written.fingerprint() == (await ufs.stat("w")).fingerprint()
