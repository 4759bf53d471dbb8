"""Write a VBA project (vbaProject.bin) from module source text, to the MS-OVBA and MS-CFB
specifications: a source-only project whose _VBA_PROJECT version is 0xFFFF, so Excel compiles
the modules when it opens the workbook (as xlwings' own standalone template ships).

Pure Python and deterministic: the same modules give the same bytes, so a built template can
be compared with a fresh build.
"""
from __future__ import annotations

import struct
import uuid

from .vba_modules import CLASS, DOCUMENT, Module

CODEPAGE = 1252
ENCODING = "cp1252"
PROJECT_NAME = "VBAProject"

# ---------------------------------------------------------------------------------------------
# MS-OVBA 2.4.1: compression
# ---------------------------------------------------------------------------------------------
CHUNK = 4096


def _copy_token_layout(position: int) -> tuple[int, int]:
    """(offset bits' shift, maximum length) of a CopyToken at `position` within a chunk (2.4.1.3.19.1)."""
    bit_count = max((position - 1).bit_length(), 4)
    length_mask = 0xFFFF >> bit_count
    return 16 - bit_count, length_mask + 3


def _compress_chunk(chunk: bytes) -> bytes:
    out = bytearray()
    heads: dict[bytes, list[int]] = {}
    pos = 0
    while pos < len(chunk):
        flag_at = len(out)
        out.append(0)
        flags = 0
        for bit in range(8):
            if pos >= len(chunk):
                break
            shift, max_length = _copy_token_layout(pos)
            max_offset = 1 << (16 - shift)
            best_length, best_offset = 0, 0
            key = chunk[pos:pos + 3]
            if len(key) == 3:
                limit = min(max_length, len(chunk) - pos)
                for start in reversed(heads.get(key, ())[-64:]):
                    offset = pos - start
                    if offset > max_offset:
                        break
                    length = 0
                    while length < limit and chunk[start + length] == chunk[pos + length]:
                        length += 1
                    if length > best_length:
                        best_length, best_offset = length, offset
                        if length == limit:
                            break
            step = best_length if best_length >= 3 else 1
            for p in range(pos, pos + step):
                heads.setdefault(chunk[p:p + 3], []).append(p)
            if best_length >= 3:
                out += struct.pack("<H", ((best_offset - 1) << shift) | (best_length - 3))
                flags |= 1 << bit
            else:
                out.append(chunk[pos])
            pos += step
        out[flag_at] = flags
    return bytes(out)


def compress(data: bytes) -> bytes:
    """A CompressedContainer (2.4.1.1.1) holding `data`."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), CHUNK):
        chunk = data[start:start + CHUNK]
        body = _compress_chunk(chunk)
        if len(body) > CHUNK and len(chunk) == CHUNK:
            out += struct.pack("<H", 0x3000 | (CHUNK - 1)) + chunk  # stored raw
        else:
            out += struct.pack("<H", 0xB000 | (len(body) + 2 - 3)) + body
    return bytes(out)


def decompress(container: bytes) -> bytes:
    """The inverse of `compress` (2.4.1.3.1), for tests and for reading projects back."""
    if not container or container[0] != 1:
        raise ValueError("not a compressed container: signature byte is not 0x01")
    out = bytearray()
    pos = 1
    while pos < len(container):
        header = struct.unpack_from("<H", container, pos)[0]
        size = (header & 0x0FFF) + 3
        if (header >> 12) & 0x7 != 0b011:
            raise ValueError("bad chunk signature")
        end = min(pos + size, len(container))
        pos += 2
        chunk_start = len(out)
        if not header & 0x8000:
            out += container[pos:pos + CHUNK]
            pos += CHUNK
            continue
        while pos < end:
            flags = container[pos]
            pos += 1
            for bit in range(8):
                if pos >= end:
                    break
                if flags & (1 << bit):
                    token = struct.unpack_from("<H", container, pos)[0]
                    pos += 2
                    shift, _ = _copy_token_layout(len(out) - chunk_start)
                    offset = (token >> shift) + 1
                    length = (token & (0xFFFF >> (16 - shift))) + 3
                    for _ in range(length):
                        out.append(out[-offset])
                else:
                    out.append(container[pos])
                    pos += 1
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# MS-OVBA 2.4.3: data encryption of the PROJECT stream's CMG, DPB and GC values
# ---------------------------------------------------------------------------------------------
def encrypt(project_id: str, data: bytes, seed: int = 0x5A) -> str:
    """Encrypted Data Structure (2.4.3.1) as the hex digits the PROJECT stream carries."""
    version = 2
    project_key = sum(project_id.encode(ENCODING)) & 0xFF
    out = bytearray([seed, seed ^ version, seed ^ project_key])
    unencrypted1, encrypted1, encrypted2 = project_key, out[2], out[1]

    def emit(byte: int):
        nonlocal unencrypted1, encrypted1, encrypted2
        enc = byte ^ ((encrypted2 + unencrypted1) & 0xFF)
        out.append(enc)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte

    for _ in range((seed & 6) // 2):
        emit(0)
    for byte in struct.pack("<I", len(data)) + data:
        emit(byte)
    return out.hex().upper()


def decrypt(hex_digits: str) -> bytes:
    raw = bytes.fromhex(hex_digits)
    seed, version_enc, key_enc = raw[0], raw[1], raw[2]
    project_key = seed ^ key_enc
    unencrypted1, encrypted1, encrypted2 = project_key, key_enc, version_enc
    plain = bytearray()
    for enc in raw[3:]:
        byte = enc ^ ((encrypted2 + unencrypted1) & 0xFF)
        plain.append(byte)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte
    ignored = (seed & 6) // 2
    length = struct.unpack_from("<I", plain, ignored)[0]
    return bytes(plain[ignored + 4:ignored + 4 + length])


# ---------------------------------------------------------------------------------------------
# MS-OVBA 2.3.4.2: the dir stream
# ---------------------------------------------------------------------------------------------
def _record(rid: int, body: bytes) -> bytes:
    return struct.pack("<HI", rid, len(body)) + body


def _text_pair(rid: int, unicode_rid: int, text: str) -> bytes:
    return _record(rid, text.encode(ENCODING)) + _record(unicode_rid, text.encode("utf-16-le"))


REFERENCES = (
    ("stdole", "*\\G{00020430-0000-0000-C000-000000000046}#2.0#0#C:\\Windows\\System32\\stdole2.tlb#OLE Automation"),
    ("Office", "*\\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0#C:\\Program Files\\Common Files\\Microsoft Shared"
               "\\OFFICE16\\MSO.DLL#Microsoft Office 16.0 Object Library"),
)


def dir_stream(modules: list[Module]) -> bytes:
    d = bytearray()
    d += _record(0x0001, struct.pack("<I", 1))            # PROJECTSYSKIND: 32-bit Windows
    d += _record(0x0002, struct.pack("<I", 0x0409))       # PROJECTLCID
    d += _record(0x0014, struct.pack("<I", 0x0409))       # PROJECTLCIDINVOKE
    d += _record(0x0003, struct.pack("<H", CODEPAGE))     # PROJECTCODEPAGE
    d += _record(0x0004, PROJECT_NAME.encode(ENCODING))   # PROJECTNAME
    d += _text_pair(0x0005, 0x0040, "")                   # PROJECTDOCSTRING
    d += _text_pair(0x0006, 0x003D, "")                   # PROJECTHELPFILEPATH
    d += _record(0x0007, struct.pack("<I", 0))            # PROJECTHELPCONTEXT
    d += _record(0x0008, struct.pack("<I", 0))            # PROJECTLIBFLAGS
    d += struct.pack("<HIIH", 0x0009, 4, 1, 0)            # PROJECTVERSION: Reserved=4, major, minor
    d += _text_pair(0x000C, 0x003C, "")                   # PROJECTCONSTANTS
    for name, libid in REFERENCES:                         # REFERENCENAME + REFERENCEREGISTERED
        d += _text_pair(0x0016, 0x003E, name)
        lib = libid.encode(ENCODING)
        body = struct.pack("<I", len(lib)) + lib + struct.pack("<IH", 0, 0)
        d += _record(0x000D, body)
    d += _record(0x000F, struct.pack("<H", len(modules)))  # PROJECTMODULES
    d += _record(0x0013, struct.pack("<H", 0xFFFF))        # PROJECTCOOKIE
    for module in modules:
        d += _record(0x0019, module.name.encode(ENCODING))            # MODULENAME
        d += _record(0x0047, module.name.encode("utf-16-le"))         # MODULENAMEUNICODE
        d += _text_pair(0x001A, 0x0032, module.name)                  # MODULESTREAMNAME
        d += _text_pair(0x001C, 0x0048, "")                           # MODULEDOCSTRING
        d += _record(0x0031, struct.pack("<I", 0))                    # MODULEOFFSET: source at 0
        d += _record(0x001E, struct.pack("<I", 0))                    # MODULEHELPCONTEXT
        d += _record(0x002C, struct.pack("<H", 0xFFFF))               # MODULECOOKIE
        d += _record(0x0022 if module.kind in (DOCUMENT, CLASS) else 0x0021, b"")  # MODULETYPE
        d += _record(0x002B, b"")                                     # module terminator
    d += _record(0x0010, b"")                                         # dir terminator
    return bytes(d)


def project_id(modules: list[Module]) -> str:
    """A stable project GUID: the same modules give the same file."""
    digest = uuid.uuid5(uuid.NAMESPACE_URL, "er-model:" + ",".join(m.name for m in modules))
    return "{" + str(digest).upper() + "}"


def project_stream(modules: list[Module]) -> bytes:
    pid = project_id(modules)
    lines = [f'ID="{pid}"']
    for module in modules:
        if module.kind == DOCUMENT:
            lines.append(f"Document={module.name}/&H00000000")
        elif module.kind == CLASS:
            lines.append(f"Class={module.name}")
        else:
            lines.append(f"Module={module.name}")
    lines += [f'Name="{PROJECT_NAME}"', 'HelpContextID="0"', 'VersionCompatible32="393222000"',
              f'CMG="{encrypt(pid, bytes(4))}"',          # protection state: none
              f'DPB="{encrypt(pid, bytes(1))}"',          # password: none
              f'GC="{encrypt(pid, bytes([0xFF]))}"',      # visible
              "", "[Host Extender Info]", "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
              "", "[Workspace]"]
    lines += [f"{m.name}=0, 0, 0, 0, C" for m in modules]
    return ("\r\n".join(lines) + "\r\n").encode(ENCODING)


def project_wm_stream(modules: list[Module]) -> bytes:
    out = bytearray()
    for module in modules:
        out += module.name.encode(ENCODING) + b"\x00" + module.name.encode("utf-16-le") + b"\x00\x00"
    return bytes(out + b"\x00\x00")


# ---------------------------------------------------------------------------------------------
# MS-CFB: the compound file (version 3, 512-byte sectors)
# ---------------------------------------------------------------------------------------------
SECTOR, MINI_SECTOR, MINI_CUTOFF = 512, 64, 4096
FREESECT, ENDOFCHAIN, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
STORAGE, STREAM, ROOT = 1, 2, 5
RED, BLACK = 0, 1


class _Entry:
    def __init__(self, name: str, kind: int, data: bytes = b"", children=None):
        self.name, self.kind, self.data = name, kind, data
        self.children = children or []
        self.left = self.right = self.child = NOSTREAM
        self.color = BLACK
        self.start, self.size = ENDOFCHAIN, 0
        self.index = -1


def _sort_key(entry: _Entry):
    """MS-CFB 2.6.4: shorter names first, then by upper-cased UTF-16 code units."""
    return len(entry.name), [ord(c) for c in entry.name.upper()]


def _link_tree(entries: list[_Entry]) -> int:
    """A red-black tree over siblings: balanced by midpoints, the deepest level red."""
    ordered = sorted(entries, key=_sort_key)
    depth_of = {}

    def build(lo: int, hi: int, depth: int) -> int:
        if lo > hi:
            return NOSTREAM
        mid = (lo + hi) // 2
        node = ordered[mid]
        depth_of[id(node)] = depth
        node.left = build(lo, mid - 1, depth + 1)
        node.right = build(mid + 1, hi, depth + 1)
        return node.index

    root = build(0, len(ordered) - 1, 0)
    deepest = max(depth_of.values(), default=0)
    perfect = len(ordered) == 2 ** (deepest + 1) - 1
    for node in ordered:
        node.color = RED if depth_of[id(node)] == deepest and deepest > 0 and not perfect else BLACK
    return root


def compound_file(tree: _Entry) -> bytes:
    entries: list[_Entry] = []

    def number(entry: _Entry):
        entry.index = len(entries)
        entries.append(entry)
        for child in entry.children:
            number(child)

    number(tree)
    for entry in entries:
        if entry.children:
            entry.child = _link_tree(entry.children)

    # Small streams go to the mini stream, large ones to regular sectors.
    mini = bytearray()
    mini_fat: list[int] = []
    large = []
    for entry in entries:
        if entry.kind != STREAM:
            continue
        entry.size = len(entry.data)
        if entry.size < MINI_CUTOFF:
            if entry.size == 0:
                entry.start = ENDOFCHAIN
                continue
            count = -(-entry.size // MINI_SECTOR)
            entry.start = len(mini_fat)
            mini_fat += [entry.start + i + 1 for i in range(count - 1)] + [ENDOFCHAIN]
            mini += entry.data + bytes(count * MINI_SECTOR - entry.size)
        else:
            large.append(entry)

    fat: list[int] = []
    body = bytearray()

    def allocate(data: bytes) -> int:
        if not data:
            return ENDOFCHAIN
        count = -(-len(data) // SECTOR)
        start = len(fat)
        fat.extend([start + i + 1 for i in range(count - 1)] + [ENDOFCHAIN])
        body.extend(data + bytes(count * SECTOR - len(data)))
        return start

    for entry in large:
        entry.start = allocate(entry.data)
    root = entries[0]
    root.start, root.size = allocate(bytes(mini)), len(mini)
    mini_fat_bytes = b"".join(struct.pack("<I", v) for v in mini_fat)
    mini_fat_bytes += struct.pack("<I", FREESECT) * ((-len(mini_fat)) % (SECTOR // 4))
    mini_fat_start = allocate(mini_fat_bytes) if mini_fat else ENDOFCHAIN

    directory = bytearray()
    for entry in entries:
        name = entry.name.encode("utf-16-le") + b"\x00\x00"
        directory += name.ljust(64, b"\x00") + struct.pack(
            "<HBBIII16sIQQIQ", len(name), entry.kind, entry.color, entry.left, entry.right, entry.child,
            bytes(16), 0, 0, 0, entry.start, entry.size if entry.kind != STORAGE else 0)
    while len(directory) % SECTOR:
        directory += bytes(64) + struct.pack("<HBBIII16sIQQIQ", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM,
                                             bytes(16), 0, 0, 0, 0, 0)
    directory_start = allocate(bytes(directory))

    # FAT sectors: enough to describe every sector, themselves included.
    fat_sectors = 1
    while (len(fat) + fat_sectors) > fat_sectors * (SECTOR // 4):
        fat_sectors += 1
    if fat_sectors > 109:
        raise ValueError("VBA project too large for a header-only DIFAT")
    first_fat = len(fat)
    fat.extend([FATSECT] * fat_sectors)
    fat.extend([FREESECT] * (fat_sectors * (SECTOR // 4) - len(fat)))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)

    difat = [first_fat + i for i in range(fat_sectors)] + [FREESECT] * (109 - fat_sectors)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII", bytes.fromhex("D0CF11E0A1B11AE1"), bytes(16), 0x003E, 0x0003, 0xFFFE, 9, 6,
        bytes(6), 0, fat_sectors, directory_start, 0, MINI_CUTOFF, mini_fat_start, -(-len(mini_fat) * 4 // SECTOR),
        ENDOFCHAIN, 0) + b"".join(struct.pack("<I", v) for v in difat)
    assert len(header) == SECTOR
    return bytes(header + body + fat_bytes)


def vba_project_bin(modules: list[Module]) -> bytes:
    """The vbaProject.bin holding `modules` as source-only code."""
    vba_children = [_Entry("_VBA_PROJECT", STREAM, bytes([0xCC, 0x61, 0xFF, 0xFF, 0x00, 0x00, 0x00])),
                    _Entry("dir", STREAM, compress(dir_stream(modules)))]
    vba_children += [_Entry(m.name, STREAM, compress(m.code_bytes)) for m in modules]
    tree = _Entry("Root Entry", ROOT, children=[
        _Entry("PROJECT", STREAM, project_stream(modules)),
        _Entry("PROJECTwm", STREAM, project_wm_stream(modules)),
        _Entry("VBA", STORAGE, children=vba_children),
    ])
    return compound_file(tree)
