"""The zip container of a workbook package, read and written member by member with each
member's compressed bytes kept, so that a rewrite copies the parts it does not change as they
are stored (no inflating and deflating 150 KB to change five sheets).

Python's `zipfile` reads the central directory (an independent, well-tested parser, used
again to read back what we wrote) but cannot copy a member's compressed bytes into another
archive, and no maintained library does that small job without pulling in much more (a
libarchive binding, a streaming-zip writer that recompresses). Writing the container
ourselves is short: a local header and the stored bytes per member, then the central
directory and its end record (PKWARE APPNOTE 4.3), without data descriptors or ZIP64, which
a workbook far below 4 GB and 65,535 parts never needs.

Every member read is inflated with its declared size as the limit and its CRC-32 checked, so a
damaged or lying archive is refused rather than read as garbage or expanded without bound.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

from udfs.errors import FileError

_LOCAL = struct.Struct("<4s5H3L2H")        # local file header, 30 bytes
_CENTRAL = struct.Struct("<4s6H3L5H2L")    # central directory header, 46 bytes
_END = struct.Struct("<4s4H2LH")           # end of central directory record, 22 bytes
_LOCAL_MAGIC, _CENTRAL_MAGIC, _END_MAGIC = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_UTF8_NAME = 0x800                         # general purpose bit 11: the name is UTF-8
_DATA_DESCRIPTOR = 0x8                     # bit 3: sizes after the data (never written here)
_VERSION = 20                              # deflate: what every Office reader expects
DEFLATE_LEVEL = 6                          # zlib's default, what zipfile and Excel use


class ZipError(FileError):
    """The archive or one of its members cannot be read; the message is one phrase (the reader
    turns it into a WorkbookError naming the file)."""


@dataclass(frozen=True)
class Stored:
    """One member as the archive stores it: its directory entry and its compressed bytes."""
    info: zipfile.ZipInfo
    raw: bytes

    @property
    def name(self) -> str:
        return self.info.filename


def read_archive(data: bytes) -> list[Stored]:
    """The members of the zip archive `data`, in archive order, each with its stored bytes.
    zipfile.BadZipFile when there is no archive; ZipError when an entry is damaged."""
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    out = []
    for info in infos:
        at = info.header_offset
        if at < 0 or at + _LOCAL.size > len(data):
            raise ZipError(f"part {info.filename} lies outside the archive")
        magic, *_, name_length, extra_length = _LOCAL.unpack_from(data, at)
        if magic != _LOCAL_MAGIC:
            raise ZipError(f"part {info.filename} has no local header")
        start = at + _LOCAL.size + name_length + extra_length
        end = start + info.compress_size
        if end > len(data):
            raise ZipError(f"part {info.filename} is cut short")
        out.append(Stored(info, data[start:end]))
    return out


def inflate(member: Stored) -> bytes:
    """A member's content, checked against its declared size and CRC-32."""
    info = member.info
    if info.compress_type == zipfile.ZIP_STORED:
        content = member.raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            content = inflater.decompress(member.raw, info.file_size + 1)
        except zlib.error as exc:
            raise ZipError(f"part {info.filename} does not inflate ({exc})") from None
        if not inflater.eof and len(content) <= info.file_size:
            raise ZipError(f"part {info.filename} is cut short")
    else:
        raise ZipError(f"part {info.filename} uses compression method {info.compress_type}")
    if len(content) != info.file_size:
        raise ZipError(f"part {info.filename} holds {len(content):,} bytes, its entry says {info.file_size:,}")
    if zlib.crc32(content) != info.CRC:
        raise ZipError(f"part {info.filename} fails its CRC check")
    return content


def pack(name: str, content: bytes, like: zipfile.ZipInfo | None = None) -> Stored:
    """A new member holding `content`, compressed as `like` was (deflated when it was, and for a
    new part), with `like`'s date and attributes."""
    info = zipfile.ZipInfo(name, date_time=like.date_time if like else (1980, 1, 1, 0, 0, 0))
    if like is not None:
        info.external_attr, info.create_system = like.external_attr, like.create_system
    else:
        info.external_attr = 0o644 << 16
    info.compress_type = like.compress_type if like is not None else zipfile.ZIP_DEFLATED
    if info.compress_type == zipfile.ZIP_STORED:
        raw = content
    else:
        info.compress_type = zipfile.ZIP_DEFLATED
        compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        raw = compressor.compress(content) + compressor.flush()
    info.CRC, info.file_size, info.compress_size = zlib.crc32(content), len(content), len(raw)
    return Stored(info, raw)


def _dos_time(date_time: tuple) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    return (hour << 11) | (minute << 5) | (second // 2), (max(year, 1980) - 1980) << 9 | (month << 5) | day


def _encoded_name(name: str) -> tuple[bytes, int]:
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), _UTF8_NAME


def write_archive(out, members: list[Stored]) -> None:
    """Write `members` (their stored bytes as they are) as a zip archive to the binary file `out`."""
    directory = []
    offset = 0
    for member in members:
        info = member.info
        name, name_flag = _encoded_name(info.filename)
        flags = (info.flag_bits & ~(_DATA_DESCRIPTOR | _UTF8_NAME)) | name_flag
        time, date = _dos_time(info.date_time)
        if offset > 0xFFFFFFFF or len(member.raw) > 0xFFFFFFFF or info.file_size > 0xFFFFFFFF:
            raise ZipError("the package is beyond what a zip without ZIP64 holds")
        header = _LOCAL.pack(_LOCAL_MAGIC, _VERSION, flags, info.compress_type, time, date, info.CRC,
                             len(member.raw), info.file_size, len(name), 0)
        out.write(header)
        out.write(name)
        out.write(member.raw)
        directory.append(_CENTRAL.pack(_CENTRAL_MAGIC, (info.create_system << 8) | _VERSION, _VERSION, flags, info.compress_type,
                                       time, date, info.CRC, len(member.raw), info.file_size, len(name), 0, 0, 0,
                                       info.internal_attr, info.external_attr, offset) + name)
        offset += len(header) + len(name) + len(member.raw)
    central = b"".join(directory)
    out.write(central)
    out.write(_END.pack(_END_MAGIC, 0, 0, len(directory), len(directory), len(central), offset, 0))
