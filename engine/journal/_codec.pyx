# cython: language_level=3, embedsignature=True
"""The journal's byte-level hot loops: CRC32C, record encoding, verification and decoding.

Owns nothing but bytes: it never opens a file and never decides what a bad record means
(engine/journal/reader.py does). Layouts are in docs/JOURNAL.md and engine/journal/format.py.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

import numpy as np

from engine.schema import COMMAND_DTYPE

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static uint32_t crc32c_table[8][256];
    static int crc32c_hw = 0;

    static void crc32c_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
            crc32c_table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
            for (int t = 1; t < 8; t++)
                crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8)
                                     ^ crc32c_table[0][crc32c_table[t - 1][i] & 0xFF];
    #if defined(__x86_64__) && defined(__GNUC__)
        __builtin_cpu_init();
        crc32c_hw = __builtin_cpu_supports("sse4.2");
    #endif
    }

    /* slicing-by-8 on the raw (not inverted) register */
    static uint32_t crc32c_sw(uint32_t c, const uint8_t *p, size_t n) {
        while (n && ((uintptr_t)p & 7)) { c = crc32c_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8); n--; }
        while (n >= 8) {
            uint64_t w; memcpy(&w, p, 8); w ^= c;
            c = crc32c_table[7][w & 0xFF] ^ crc32c_table[6][(w >> 8) & 0xFF]
              ^ crc32c_table[5][(w >> 16) & 0xFF] ^ crc32c_table[4][(w >> 24) & 0xFF]
              ^ crc32c_table[3][(w >> 32) & 0xFF] ^ crc32c_table[2][(w >> 40) & 0xFF]
              ^ crc32c_table[1][(w >> 48) & 0xFF] ^ crc32c_table[0][w >> 56];
            p += 8; n -= 8;
        }
        while (n--) c = crc32c_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        return c;
    }

    #if defined(__x86_64__) && defined(__GNUC__)
    __attribute__((target("sse4.2")))
    static uint32_t crc32c_hw_update(uint32_t c, const uint8_t *p, size_t n) {
        uint64_t c64 = c;
        while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c64 = __builtin_ia32_crc32di(c64, w); p += 8; n -= 8; }
        c = (uint32_t)c64;
        while (n--) c = __builtin_ia32_crc32qi(c, *p++);
        return c;
    }
    #else
    static uint32_t crc32c_hw_update(uint32_t c, const uint8_t *p, size_t n) { return crc32c_sw(c, p, n); }
    #endif

    static inline uint32_t crc32c_update(uint32_t c, const uint8_t *p, size_t n) {
        return crc32c_hw ? crc32c_hw_update(c, p, n) : crc32c_sw(c, p, n);
    }
    """
    void crc32c_init() noexcept nogil
    uint32_t crc32c_update(uint32_t c, const uint8_t* p, size_t n) noexcept nogil
    uint32_t crc32c_sw(uint32_t c, const uint8_t* p, size_t n) noexcept nogil
    int crc32c_hw

crc32c_init()

# Keep in step with engine/journal/format.py (tests hold them together).
cdef enum:
    RECORD_SIZE = 64
    PAYLOAD_OFFSET = 8
    PAYLOAD_SIZE = 56
    REC_COMMAND = 1

# scan() outcomes
cdef enum:
    S_OK = 0            # every whole record up to the end verified
    S_SHORT = 1         # fewer than RECORD_SIZE bytes left at the end
    S_BAD_LENGTH = 2
    S_BAD_TYPE = 3
    S_BAD_CRC = 4
    S_BAD_SEQ = 5

OK, SHORT, BAD_LENGTH, BAD_TYPE, BAD_CRC, BAD_SEQ = (
    S_OK, S_SHORT, S_BAD_LENGTH, S_BAD_TYPE, S_BAD_CRC, S_BAD_SEQ)


cdef inline uint32_t record_crc(const uint8_t* rec) noexcept nogil:
    # CRC32C over the record with its own crc field (bytes 4..7) left out
    cdef uint32_t c = crc32c_update(0xFFFFFFFFu, rec, 4)
    c = crc32c_update(c, rec + PAYLOAD_OFFSET, PAYLOAD_SIZE)
    return c ^ 0xFFFFFFFFu


cdef inline uint16_t rd16(const uint8_t* p) noexcept nogil:
    return <uint16_t>p[0] | (<uint16_t>p[1] << 8)


cdef inline uint32_t rd32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)      # little-endian host (checked at import in format.py)
    return v


cdef inline int64_t rd64(const uint8_t* p) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p, 8)
    return v


def crc32c(data, uint32_t crc=0):
    """CRC32C (Castagnoli) of a bytes-like object; pass a previous result to continue it.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef uint32_t c = crc ^ 0xFFFFFFFFu
    if view.shape[0]:
        with nogil:
            c = crc32c_update(c, &view[0], view.shape[0])
    return c ^ 0xFFFFFFFFu


def _crc32c_software(data):
    """The table-driven path, whatever the CPU offers (tests compare it with the fast one)."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef uint32_t c = 0xFFFFFFFFu
    if view.shape[0]:
        c = crc32c_sw(c, &view[0], view.shape[0])
    return c ^ 0xFFFFFFFFu


def hardware_crc():
    """True when the CPU's CRC32C instruction is used."""
    return bool(crc32c_hw)


def encode(cnp.ndarray commands, out=None):
    """Encode an array of COMMAND_DTYPE into journal records (RECORD_SIZE bytes each).

    Returns a uint8 array of ``len(commands) * RECORD_SIZE`` bytes (``out`` if it is given
    and large enough, a slice of it). Runtime: O(n), about a CRC of 60 bytes per record.
    """
    cdef cnp.ndarray arr
    cdef Py_ssize_t i, n
    cdef const uint8_t* src
    cdef uint8_t* dst
    cdef uint8_t* rec
    cdef uint32_t crc
    if commands.dtype != COMMAND_DTYPE or commands.ndim != 1:
        raise TypeError("encode() takes a one-dimensional array of COMMAND_DTYPE")
    arr = np.ascontiguousarray(commands)
    n = arr.shape[0]
    if out is None or out.shape[0] < n * RECORD_SIZE:
        out = np.empty(n * RECORD_SIZE, dtype=np.uint8)
    else:
        out = out[:n * RECORD_SIZE]
    src = <const uint8_t*>cnp.PyArray_DATA(arr)
    dst = <uint8_t*>cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n):
            rec = dst + i * RECORD_SIZE
            rec[0] = RECORD_SIZE
            rec[1] = 0
            rec[2] = REC_COMMAND
            rec[3] = 0
            memcpy(rec + PAYLOAD_OFFSET, src + i * PAYLOAD_SIZE, PAYLOAD_SIZE)
            crc = record_crc(rec)
            memcpy(rec + 4, &crc, 4)
    return out


cdef inline int check_one(const uint8_t* rec, int64_t expect_seq) noexcept nogil:
    cdef uint32_t stored
    if rd16(rec) != RECORD_SIZE:
        return S_BAD_LENGTH
    if rd16(rec + 2) != REC_COMMAND:
        return S_BAD_TYPE
    stored = rd32(rec + 4)
    if stored != record_crc(rec):
        return S_BAD_CRC
    if expect_seq != 0 and rd64(rec + PAYLOAD_OFFSET) != expect_seq:
        return S_BAD_SEQ
    return S_OK


def scan(buf, Py_ssize_t offset, int64_t first_seq):
    """Verify records from ``offset`` on: length, type, CRC and gap-free sequence numbers.

    Returns ``(count, status)``: how many whole records verified before the first problem, and
    the problem (OK when the buffer ended exactly after a good record). Runtime: O(bytes).
    """
    cdef const uint8_t[::1] view = memoryview(buf).cast("B")
    cdef Py_ssize_t size = view.shape[0]
    cdef Py_ssize_t pos = offset, count = 0
    cdef const uint8_t* base
    cdef int status = S_OK
    if offset < 0 or offset > size:
        raise ValueError("offset outside the buffer")
    if size == 0:
        return 0, S_OK
    base = &view[0]
    with nogil:
        while pos + RECORD_SIZE <= size:
            status = check_one(base + pos, first_seq + count)
            if status != S_OK:
                break
            count += 1
            pos += RECORD_SIZE
        if status == S_OK and pos != size:
            status = S_SHORT
    return count, status


def valid_record_after(buf, Py_ssize_t offset):
    """The offset of the first whole record at or after ``offset`` (on the record grid) whose
    length, type and CRC are right, whatever its sequence number; -1 if there is none.

    A good record after a bad one means the journal is damaged in the middle, not torn at the end.
    """
    cdef const uint8_t[::1] view = memoryview(buf).cast("B")
    cdef Py_ssize_t size = view.shape[0]
    cdef Py_ssize_t pos = offset
    cdef Py_ssize_t found = -1
    if size == 0:
        return -1
    with nogil:
        while pos + RECORD_SIZE <= size:
            if check_one(&view[0] + pos, 0) == S_OK:
                found = pos
                break
            pos += RECORD_SIZE
    return found


def decode(buf, Py_ssize_t offset, Py_ssize_t count, out=None):
    """Copy the payloads of ``count`` records starting at byte ``offset`` into a COMMAND_DTYPE
    array (``out`` if given, which must hold ``count``). Does not verify: scan() first."""
    cdef const uint8_t[::1] view = memoryview(buf).cast("B")
    cdef Py_ssize_t i
    cdef const uint8_t* src
    cdef uint8_t* dst
    cdef cnp.ndarray res
    if count < 0 or offset < 0 or offset + count * RECORD_SIZE > view.shape[0]:
        raise ValueError("decode() range outside the buffer")
    if out is None:
        res = np.empty(count, dtype=COMMAND_DTYPE)
    else:
        res = out
        if res.dtype != COMMAND_DTYPE or res.ndim != 1 or res.shape[0] < count \
                or not res.flags["C_CONTIGUOUS"]:
            raise ValueError("out must be a contiguous COMMAND_DTYPE array of at least count")
        res = res[:count]
    if count == 0:
        return res
    src = &view[0] + offset
    dst = <uint8_t*>cnp.PyArray_DATA(res)
    with nogil:
        for i in range(count):
            memcpy(dst + i * PAYLOAD_SIZE, src + i * RECORD_SIZE + PAYLOAD_OFFSET, PAYLOAD_SIZE)
    return res
