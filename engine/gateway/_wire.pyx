# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The gateway's inbound fast path: order frames straight from the socket's bytes into
COMMAND_DTYPE records, without a Python object per message.

Owns only the recognition of the common, canonical shapes of NewOrder, Cancel and Replace. It
must never accept a message the msgspec decoder (engine/gateway/protocol.py) would refuse, nor
read one differently: anything it is not certain of (another type, an unusual encoding, a
duplicate or unknown key, a value out of range, trailing bytes) is left to the slow path, which
decodes it with msgspec and answers exactly as the protocol says. tests/gateway/test_wire.py
holds the two paths to each other (and tests/gateway/test_routing_gateway.py for venues).

A NewOrder's ``venue``, ``strategy`` and ``post_venue`` are taken when the server's venue table
(engine/gateway/routing.py, ``VenueNames.wire_table``) names them: a venue's book (a NEW with
that venue) or SMART (a ROUTE, POST_REMAINDER for sweep_post, the post venue's id). An unknown
name, a routing field without SMART, or nil is the slow path's to refuse or read.
"""
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memset

# the COMMAND_DTYPE record, as the core declares it
from engine._core cimport Command as Record

# statuses of scan()
DONE = 0            # every whole frame was taken; what is left is an incomplete frame (or none)
SLOW = 1            # the frame at the returned position needs the slow path
TOO_LARGE = 2       # the frame at the returned position is longer than the limit
LIMIT = 3           # max_msgs frames were taken; the next one is for the slow path to refuse

cdef enum:
    K_TYPE = 1 << 0
    K_CL_ORD_ID = 1 << 1
    K_INSTRUMENT = 1 << 2
    K_SIDE = 1 << 3
    K_QTY = 1 << 4
    K_PRICE = 1 << 5
    K_ORD_TYPE = 1 << 6
    K_TIF = 1 << 7
    K_POST_ONLY = 1 << 8
    K_VENUE = 1 << 9
    K_STRATEGY = 1 << 10
    K_POST_VENUE = 1 << 11

    NEW_ALLOWED = K_TYPE | K_CL_ORD_ID | K_INSTRUMENT | K_SIDE | K_QTY | K_PRICE | K_ORD_TYPE \
        | K_TIF | K_POST_ONLY | K_VENUE | K_STRATEGY | K_POST_VENUE
    NEW_REQUIRED = K_TYPE | K_CL_ORD_ID | K_INSTRUMENT | K_SIDE | K_QTY
    CANCEL_FIELDS = K_TYPE | K_CL_ORD_ID
    REPLACE_FIELDS = K_TYPE | K_CL_ORD_ID | K_PRICE | K_QTY

    T_NEW = 1
    T_CANCEL = 2
    T_REPLACE = 3

    CMD_NEW = 1
    CMD_CANCEL = 2
    CMD_REPLACE = 3
    CMD_ROUTE = 11

    FLAG_POST_REMAINDER = 4

    RECORD_SIZE = 56

cdef int64_t U32_MAX = 0xFFFFFFFF

cdef struct Cursor:
    const uint8_t* p
    const uint8_t* end


cdef inline bint read_str(Cursor* c, const uint8_t** s, Py_ssize_t* n) noexcept nogil:
    """A fixstr or str8; anything else is not ours."""
    cdef uint8_t b
    if c.p >= c.end:
        return False
    b = c.p[0]
    if 0xa0 <= b <= 0xbf:
        n[0] = b & 0x1f
        c.p += 1
    elif b == 0xd9:
        if c.end - c.p < 2:
            return False
        n[0] = c.p[1]
        c.p += 2
    else:
        return False
    if c.end - c.p < n[0]:
        return False
    s[0] = c.p
    c.p += n[0]
    return True


cdef inline uint64_t be(const uint8_t* p, int n) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | p[i]
    return v


cdef inline bint read_int(Cursor* c, int64_t* out) noexcept nogil:
    """Any MessagePack integer that fits in int64 (as msgspec reads an int field)."""
    cdef uint8_t b
    cdef uint64_t u
    cdef int n
    if c.p >= c.end:
        return False
    b = c.p[0]
    if b <= 0x7f:
        out[0] = b
        c.p += 1
        return True
    if b >= 0xe0:
        out[0] = <int64_t>b - 256
        c.p += 1
        return True
    if 0xcc <= b <= 0xcf:                 # uint 8/16/32/64
        n = 1 << (b - 0xcc)
        if c.end - c.p < 1 + n:
            return False
        u = be(c.p + 1, n)
        if u >> 63:
            return False
        out[0] = <int64_t>u
        c.p += 1 + n
        return True
    if 0xd0 <= b <= 0xd3:                 # int 8/16/32/64
        n = 1 << (b - 0xd0)
        if c.end - c.p < 1 + n:
            return False
        u = be(c.p + 1, n)
        if n < 8 and (u >> (8 * n - 1)) & 1:
            u |= ~((<uint64_t>1 << (8 * n)) - 1)      # sign-extend
        out[0] = <int64_t>u
        c.p += 1 + n
        return True
    return False


cdef inline bint key_is(const uint8_t* s, Py_ssize_t n, const char* k, Py_ssize_t kn
                        ) noexcept nogil:
    return n == kn and memcmp(s, k, kn) == 0


cdef inline int venue_id(const uint8_t* tab, Py_ssize_t tn, const uint8_t* s, Py_ssize_t n
                         ) noexcept nogil:
    """The id of the venue named ``s`` in the table (per venue: u16 length, the name, u16 id,
    little-endian); -1 if it names none."""
    cdef Py_ssize_t i = 0, ln
    while i + 4 <= tn:
        ln = tab[i] | (<Py_ssize_t>tab[i + 1] << 8)
        if i + 4 + ln > tn:
            return -1
        if ln == n and memcmp(tab + i + 2, s, n) == 0:
            return tab[i + 2 + ln] | (<int>tab[i + 3 + ln] << 8)
        i += 4 + ln
    return -1


cdef int parse_order(const uint8_t* p, Py_ssize_t n, Record* r, const uint8_t* tab,
                     Py_ssize_t tn) noexcept nogil:
    """0 and ``r`` filled if the body is a canonical NewOrder/Cancel/Replace; -1 otherwise.
    ``tab``/``tn``: the venue table."""
    cdef Cursor c
    cdef uint8_t b
    cdef Py_ssize_t entries, i, kn, vn
    cdef const uint8_t* k
    cdef const uint8_t* v
    cdef uint32_t seen = 0, bit
    cdef int typ = 0
    cdef int64_t cl_ord_id = 0, instrument = 0, qty = 0, price = 0, x
    cdef uint8_t side = 0, ord_type = 1, tif = 1
    cdef uint16_t flags = 0
    cdef int venue = 0, post_venue = 0, strategy = 0
    cdef bint smart = False
    c.p = p
    c.end = p + n
    if n < 1:
        return -1
    b = p[0]
    if 0x80 <= b <= 0x8f:
        entries = b & 0x0f
        c.p += 1
    else:
        return -1
    for i in range(entries):
        if not read_str(&c, &k, &kn):
            return -1
        if key_is(k, kn, b"type", 4):
            bit = K_TYPE
            if not read_str(&c, &v, &vn):
                return -1
            if key_is(v, vn, b"NewOrder", 8):
                typ = T_NEW
            elif key_is(v, vn, b"Cancel", 6):
                typ = T_CANCEL
            elif key_is(v, vn, b"Replace", 7):
                typ = T_REPLACE
            else:
                return -1
        elif key_is(k, kn, b"cl_ord_id", 9):
            bit = K_CL_ORD_ID
            if not read_int(&c, &cl_ord_id) or cl_ord_id < 1 or cl_ord_id > U32_MAX:
                return -1
        elif key_is(k, kn, b"instrument", 10):
            bit = K_INSTRUMENT
            if not read_int(&c, &instrument) or instrument < 0 or instrument > U32_MAX:
                return -1
        elif key_is(k, kn, b"side", 4):
            bit = K_SIDE
            if not read_str(&c, &v, &vn):
                return -1
            if key_is(v, vn, b"buy", 3):
                side = 1
            elif key_is(v, vn, b"sell", 4):
                side = 2
            else:
                return -1
        elif key_is(k, kn, b"qty", 3):
            bit = K_QTY
            if not read_int(&c, &qty):
                return -1
        elif key_is(k, kn, b"price", 5):
            bit = K_PRICE
            if not read_int(&c, &price):
                return -1
        elif key_is(k, kn, b"ord_type", 8):
            bit = K_ORD_TYPE
            if not read_str(&c, &v, &vn):
                return -1
            if key_is(v, vn, b"limit", 5):
                ord_type = 1
            elif key_is(v, vn, b"market", 6):
                ord_type = 2
            else:
                return -1
        elif key_is(k, kn, b"tif", 3):
            bit = K_TIF
            if not read_str(&c, &v, &vn):
                return -1
            if key_is(v, vn, b"gtc", 3):
                tif = 1
            elif key_is(v, vn, b"ioc", 3):
                tif = 2
            elif key_is(v, vn, b"fok", 3):
                tif = 3
            else:
                return -1
        elif key_is(k, kn, b"post_only", 9):
            bit = K_POST_ONLY
            if c.p >= c.end or (c.p[0] != 0xc2 and c.p[0] != 0xc3):
                return -1
            flags = 1 if c.p[0] == 0xc3 else 0
            c.p += 1
        elif key_is(k, kn, b"venue", 5):
            bit = K_VENUE
            if c.p < c.end and c.p[0] == 0xc0:
                c.p += 1                  # nil: as if absent (msgspec reads None)
            elif not read_str(&c, &v, &vn):
                return -1
            elif key_is(v, vn, b"SMART", 5):
                smart = True
            else:
                venue = venue_id(tab, tn, v, vn)
                if venue < 0:
                    return -1
        elif key_is(k, kn, b"strategy", 8):
            bit = K_STRATEGY
            if c.p < c.end and c.p[0] == 0xc0:
                c.p += 1
            elif not read_str(&c, &v, &vn):
                return -1
            elif key_is(v, vn, b"sweep", 5):
                strategy = 1
            elif key_is(v, vn, b"sweep_post", 10):
                strategy = 2
            else:
                return -1
        elif key_is(k, kn, b"post_venue", 10):
            bit = K_POST_VENUE
            if c.p < c.end and c.p[0] == 0xc0:
                c.p += 1
            elif not read_str(&c, &v, &vn):
                return -1
            else:
                post_venue = venue_id(tab, tn, v, vn)
                if post_venue < 0:
                    return -1
        else:
            return -1                     # unknown here: the slow path says what it is
        if seen & bit:
            return -1                     # a key twice: not a canonical message
        seen |= bit
    if c.p != c.end:
        return -1                         # trailing bytes
    if typ == T_NEW:
        if (seen & NEW_REQUIRED) != NEW_REQUIRED or (seen & ~NEW_ALLOWED):
            return -1
        if (strategy or post_venue) and not smart:
            return -1                     # the slow path refuses it (GATEWAY_INVALID_FIELD)
        r.cmd = CMD_NEW
    elif typ == T_CANCEL:
        if seen != CANCEL_FIELDS:
            return -1
        r.cmd = CMD_CANCEL
    elif typ == T_REPLACE:
        if seen != REPLACE_FIELDS:
            return -1
        r.cmd = CMD_REPLACE
    else:
        return -1
    r.order_id = cl_ord_id             # the caller adds the account's part
    r.instrument = <uint32_t>instrument
    r.qty = qty
    r.price = price
    if typ == T_NEW:
        r.side = side
        r.ord_type = ord_type
        r.tif = tif
        r.flags = flags
        if smart:
            r.cmd = CMD_ROUTE
            if strategy == 2:
                r.flags = flags | FLAG_POST_REMAINDER
            r.venue = <uint16_t>post_venue
        else:
            r.venue = <uint16_t>venue
    return 0


def scan(const unsigned char[::1] buf, Py_ssize_t pos, Py_ssize_t end, uint32_t account,
         bytearray out, Py_ssize_t max_frame, Py_ssize_t max_msgs,
         bytes venues not None=b""):
    """Take consecutive whole order frames from ``buf[pos:end]`` into ``out`` (COMMAND_DTYPE
    records, account and order id filled in, seq/ts 0). ``venues``: the server's venue table
    (``VenueNames.wire_table``; empty: a NewOrder naming a venue is left to the slow path).

    Returns ``(pos, taken, status)``: ``pos`` is where the first frame not taken starts,
    ``status`` says why scanning stopped (DONE, SLOW, TOO_LARGE or LIMIT).
    """
    cdef Py_ssize_t taken = 0, n, base
    cdef uint64_t length
    cdef Record rec
    cdef Record* dst
    cdef int status = DONE
    cdef const uint8_t* data = &buf[0] if buf.shape[0] > 0 else NULL
    cdef int64_t hi = (<int64_t>account) << 32
    cdef const uint8_t* tab = <const uint8_t*><const char*>venues
    cdef Py_ssize_t tn = len(venues)
    while end - pos >= 4:
        length = be(data + pos, 4)
        if length > <uint64_t>max_frame:
            status = TOO_LARGE
            break
        if <uint64_t>(end - pos - 4) < length:
            break
        if taken >= max_msgs:
            status = LIMIT
            break
        memset(&rec, 0, sizeof(Record))
        if parse_order(data + pos + 4, <Py_ssize_t>length, &rec, tab, tn) != 0:
            status = SLOW
            break
        rec.order_id |= hi
        rec.account = account
        base = PyByteArray_GET_SIZE(out)
        PyByteArray_Resize(out, base + RECORD_SIZE)
        dst = <Record*>(PyByteArray_AS_STRING(out) + base)
        dst[0] = rec
        pos += 4 + <Py_ssize_t>length
        taken += 1
    return pos, taken, status


def parse_one(const unsigned char[::1] body, uint32_t account, bytes venues not None=b""):
    """One body as the fast path reads it: a 56-byte record, or None if it is not taken.
    (For the tests that hold the fast path to msgspec.)"""
    cdef Record rec
    cdef const uint8_t* tab = <const uint8_t*><const char*>venues
    memset(&rec, 0, sizeof(Record))
    if body.shape[0] == 0 or parse_order(&body[0], body.shape[0], &rec, tab,
                                         len(venues)) != 0:
        return None
    rec.order_id |= (<int64_t>account) << 32
    rec.account = account
    return (<char*>&rec)[:RECORD_SIZE]
