"""Framework-free rules: manifest schema, semver precedence, the 70/30 split in cents, zip inspection
and what a reviewer is shown of a package."""

from __future__ import annotations

import base64
import io
import os
import struct
import zipfile

import pytest

from apps.marketplace.manifest import ManifestErrors, manifest_parse
from apps.marketplace.package_inspection import (
    MAX_COMPRESSION_RATIO,
    RATIO_GRACE_BYTES,
    READ_CHUNK,
    inspect_package,
    package_listing,
    package_text,
)
from apps.marketplace.revenue import reversal_delta, split
from apps.marketplace.semver import SemVer, is_semver

from .conftest import make_zip, make_zip_bomb, manifest

MAX_PRICE = 50_000
UNPACKED_MAX = 200 * 1024 * 1024  # ten times the default package cap


def _errors(**overrides) -> dict[str, list[str]]:
    with pytest.raises(ManifestErrors) as caught:
        manifest_parse(manifest(**overrides), max_price_cents=MAX_PRICE)
    return caught.value.fields


def test_a_valid_manifest_parses_with_its_fields():
    parsed = manifest_parse(manifest(price_cents=499, main="dist/index.js"), max_price_cents=MAX_PRICE)

    assert parsed.id == "time-tracker"
    assert parsed.as_json()["permissions"] == ["tasks:read", "projects:read"]
    assert parsed.as_json()["main"] == "dist/index.js"  # extra keys are kept


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": "Time Tracker!"}, "manifest.id"),
        ({"id": "developer"}, "manifest.id"),
        ({"name": ""}, "manifest.name"),
        ({"description": "lorem ipsum " * 200}, "manifest.description"),
        ({"version": "1.0"}, "manifest.version"),
        ({"version": "01.0.0"}, "manifest.version"),
        ({"author": ""}, "manifest.author"),
        ({"permissions": ["tasks:read", "filesystem:root"]}, "manifest.permissions.1"),
        ({"permissions": ["tasks:read", "tasks:read"]}, "manifest.permissions"),
        ({"category": "games"}, "manifest.category"),
        ({"price_cents": 10}, "manifest.price_cents"),
        ({"price_cents": MAX_PRICE + 1}, "manifest.price_cents"),
        ({"price_cents": -1}, "manifest.price_cents"),
        ({"price_cents": "499"}, "manifest.price_cents"),
    ],
)
def test_each_manifest_rule_names_its_field(overrides, field):
    assert field in _errors(**overrides)


@pytest.mark.parametrize(
    "payload",
    [
        "data:image/png;base64,iVBORw0KGgo=",
        base64.b64encode(bytes(range(256)) * 2).decode(),
        "line\x00with a NUL byte",
    ],
)
def test_binary_blobs_anywhere_in_the_manifest_are_refused(payload):
    fields = _errors(icon=payload)

    assert "manifest" in fields
    assert "icon" in fields["manifest"][0]


def test_a_huge_string_in_an_extra_key_is_refused():
    assert "manifest" in _errors(homepage="https://example.com/" + "a b " * 1000)


def test_semver_parses_strictly_and_orders_by_precedence():
    assert is_semver("1.2.3-beta.1+build.5")
    assert not is_semver("v1.2.3")
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-rc.1", "1.0.0", "1.10.0"]
    assert sorted((SemVer(v) for v in reversed(ordered)), key=lambda v: v) == [SemVer(v) for v in ordered]


@pytest.mark.parametrize(
    ("gross", "fee", "developer"),
    [(1000, 300, 700), (999, 300, 699), (50, 15, 35), (55, 17, 38), (1, 0, 1), (5, 2, 3), (0, 0, 0)],
)
def test_the_fee_is_thirty_percent_rounded_half_up_and_the_developer_gets_the_rest(gross, fee, developer):
    assert split(gross) == (gross, fee, developer)


def test_partial_reversals_add_up_to_exactly_the_original_split():
    # given: a 999-cent sale refunded in three parts
    steps = [(0, 333), (333, 666), (666, 999)]

    # when
    deltas = [reversal_delta(gross_cents=999, reversed_before_cents=a, reversed_now_cents=b) for a, b in steps]

    # then
    assert sum(d.fee_cents for d in deltas) == split(999).fee_cents
    assert sum(d.developer_cents for d in deltas) == split(999).developer_cents


def test_a_clean_package_has_no_findings():
    report = inspect_package(
        io.BytesIO(make_zip({"index.js": b"x", "assets/icon.png": b"\x89PNG...."})), max_unpacked_bytes=UNPACKED_MAX
    )

    assert report.is_zip
    assert not (report.executables)
    assert not (report.symlinks)
    assert not (report.escaping_paths)
    assert report.member_count == 2


def test_dangerous_package_contents_are_each_found():
    package = make_zip(
        {
            "index.js": b"x",
            "bin/helper.exe": b"MZ\x90\x00",
            "native/addon.node": b"\x7fELF....",
            "lib/libx.dylib": b"\xcf\xfa\xed\xfe",
            "scripts/run.sh": b"#!/bin/sh\n",
            "hidden.txt": b"\x7fELF disguised",
            "../../etc/cron.d/evil": b"* * * * * root sh",
            "vendor/more.zip": make_zip(),
        },
        symlinks={"link": "/etc/passwd"},
    )

    report = inspect_package(io.BytesIO(package), max_unpacked_bytes=UNPACKED_MAX)

    assert set(report.executables) == {
        "bin/helper.exe",
        "native/addon.node",
        "lib/libx.dylib",
        "scripts/run.sh",
        "hidden.txt",
    }
    assert report.symlinks == ["link"]
    assert report.escaping_paths == ["../../etc/cron.d/evil"]
    assert report.nested_archives == ["vendor/more.zip"]


def test_a_zero_filled_member_is_a_zip_bomb_and_reading_stops_at_the_ratio():
    # given a 150 MiB zero-filled member packed into about 150 KB (about 1000:1), under the absolute limit
    package = make_zip_bomb()
    assert len(package) < 200 * 1024

    # when
    report = inspect_package(io.BytesIO(package), max_unpacked_bytes=UNPACKED_MAX)

    # then the member is named, and decompressing stopped once it passed the ratio (not at 150 MiB)
    assert report.compression_bombs == ["assets/zeros-0.dat"]
    assert report.uncompressed_bytes <= MAX_COMPRESSION_RATIO * len(package) + READ_CHUNK


def test_a_bomb_that_declares_a_huge_compressed_size_does_not_pass():
    # given a 50 MiB zero-filled member whose central directory claims 2 GiB of compressed data,
    # so that a ratio taken from the declared size looks harmless
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("assets/zeros.dat", bytes(50 * 1024 * 1024))
    package = bytearray(buffer.getvalue())
    entry = package.rindex(b"PK\x01\x02")
    package[entry + 20 : entry + 24] = struct.pack("<I", 0x7FFFFFFF)

    # when
    report = inspect_package(io.BytesIO(bytes(package)), max_unpacked_bytes=UNPACKED_MAX)

    # then it fails inspection: the lie makes the member unreadable, or the ratio taken against the
    # bytes really there names it
    assert report.error or report.compression_bombs == ["assets/zeros.dat"]
    assert report.uncompressed_bytes < 50 * 1024 * 1024


def test_many_small_members_that_together_unpack_past_the_ratio_are_a_bomb():
    # given members each under the grace size (a ratio says nothing per file) but a thousand to one together
    package = make_zip_bomb(members=8, member_bytes=RATIO_GRACE_BYTES // 2)

    report = inspect_package(io.BytesIO(package), max_unpacked_bytes=UNPACKED_MAX)

    assert report.compression_bombs == []
    assert report.total_ratio_exceeded


def test_reading_stops_at_the_absolute_unpacked_limit_whatever_sizes_the_zip_declares():
    # given a package that unpacks past the limit at a ratio nobody would call a bomb
    package = make_zip({f"data-{i}.txt": base64.b64encode(os.urandom(300_000)) for i in range(4)})

    report = inspect_package(io.BytesIO(package), max_unpacked_bytes=500_000)

    assert report.unpacked_limit_exceeded
    assert not report.compression_bombs
    assert not report.total_ratio_exceeded
    assert report.uncompressed_bytes <= 500_000 + READ_CHUNK


def test_a_package_of_ordinary_compressible_files_is_no_bomb():
    source = "".join(
        f"export const t{i} = track({{ task: {i * 7919 % 10007}, at: Date.now() }});\n" for i in range(60_000)
    )
    source = source.encode()  # ~3.5 MB of code that differs line to line
    package = make_zip({"index.js": source, "data.json": base64.b64encode(os.urandom(1_000_000))})

    report = inspect_package(io.BytesIO(package), max_unpacked_bytes=UNPACKED_MAX)

    assert not report.reading_stopped
    assert report.uncompressed_bytes == len(source) + len(base64.b64encode(bytes(1_000_000)))


def test_a_non_zip_package_is_reported_not_raised():
    report = inspect_package(io.BytesIO(b"not a zip at all"), max_unpacked_bytes=UNPACKED_MAX)

    assert not report.is_zip
    assert report.error


def test_a_package_lists_its_files_with_sizes_and_marks_which_read_as_text():
    package = make_zip(
        {"index.js": b"export default {}\n", "assets/icon.png": b"\x89PNG\x00\x01", "README.md": "caf\u00e9".encode()},
        symlinks={"link": "/etc/passwd"},
    )

    listing = package_listing(io.BytesIO(package))

    assert [(entry.path, entry.size, entry.is_text) for entry in listing] == [
        ("index.js", 18, True),
        ("assets/icon.png", 6, False),
        ("README.md", 5, True),
    ]
    assert package_listing(io.BytesIO(b"not a zip")) == []


def test_a_text_file_is_shown_cut_at_the_preview_size_and_binary_or_missing_files_not_at_all():
    package = io.BytesIO(
        make_zip({"long.txt": b"a" * 100, "native.bin": b"\x7fELF\x00\x00", "app.js": b"<script>alert(1)</script>"}),
    )

    cut = package_text(package, "long.txt", max_bytes=10)
    whole = package_text(package, "app.js")

    assert cut is not None
    assert (cut.text, cut.size, cut.truncated) == ("a" * 10, 100, True)
    assert whole is not None
    assert (whole.text, whole.truncated) == ("<script>alert(1)</script>", False)
    assert package_text(package, "native.bin") is None
    assert package_text(package, "missing.txt") is None
    assert package_text(io.BytesIO(make_zip(symlinks={"link": "/etc/passwd"})), "link") is None
