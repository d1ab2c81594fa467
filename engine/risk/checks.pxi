# The risk checks and account updates the core calls from its deterministic path (docs/RISK.md).
# Included (textually) by engine/_core.pyx, so that the C compiler inlines them into the
# matching loop, and by engine/risk/_risk.pyx for its admin commands; the records and the other
# functions are declared in _risk.pxd. Every product of two int64 values is taken in 128 bits;
# stored values saturate at the int64 range, and the reference model does the same.
from libc.stdint cimport int64_t, int32_t, uint32_t, uint16_t, uint8_t

cdef extern from *:
    bint __builtin_mul_overflow(int64_t a, int64_t b, int64_t* out) nogil

cdef int64_t RISK_I64_MAX = 0x7FFFFFFFFFFFFFFF
cdef int64_t RISK_I64_MIN = -0x7FFFFFFFFFFFFFFF - 1
cdef int64_t CAP = <int64_t>1 << 62
cdef int64_t NANO = 1000000000
cdef int64_t MAX_RATE = 1000000000
cdef int64_t MAX_BPS = 1000000
cdef int64_t MAX_INDEX = 1 << 20     # account ids below this are found by direct index
cdef int64_t BAND_FAST = 9000000000000   # ref below this: ref * bps fits int64 (bps <= 10**6)
cdef uint8_t RSIDE_BUY = 1   # Side.BUY


cdef inline int64_t sat(i128 x) noexcept nogil:
    if x > RISK_I64_MAX:
        return RISK_I64_MAX
    if x < RISK_I64_MIN:
        return RISK_I64_MIN
    return <int64_t>x


cdef inline i128 notional(int64_t price, int64_t qty, int64_t k) noexcept nogil:
    # price x qty x k cash units, exact up to CAP; anything larger counts as CAP + 1
    cdef i128 pq
    if price <= 0 or qty <= 0:
        return 0
    pq = <i128>price * qty
    if pq > CAP:
        return <i128>CAP + 1
    pq = pq * k
    if pq > CAP:
        return <i128>CAP + 1
    return pq


cdef inline bint converted_above(const Risk* r, i128 x, uint32_t a, uint32_t b,
                                 int64_t limit) noexcept nogil:
    # convert(x, a, b) > limit for x >= 0 (docs/RISK.md, "Units"), without dividing:
    # ceil(x * fx[a] / fx[b]) > limit  <=>  x * fx[a] > limit * fx[b]  (both below 2**126)
    if a == b:
        return x > limit
    return x * r.fx[a] > <i128>limit * r.fx[b]


cdef inline i128 band_of(i128 ref, int64_t bps) noexcept nogil:
    # ref * bps // 10000; in 64 bits (a multiply-shift) whenever the product fits
    if ref < BAND_FAST:
        return <int64_t>ref * bps // 10000
    return ref * bps // 10000


cdef inline i128 fee_of(i128 n, int64_t ppm) noexcept nogil:
    # ceil(n * ppm / 10**6) for 0 <= n <= CAP + 1, in 64-bit steps: n = q * 10**6 + m
    cdef int64_t q = <int64_t>(n // 1000000), m = <int64_t>(n - <i128>q * 1000000)
    return <i128>q * ppm + (m * ppm + 999999) // 1000000


cdef inline i128 part_of(i128 x, i128 num, i128 den) noexcept nogil:
    # x * num // den for 0 <= num <= den, x >= 0: in 64 bits when the product fits
    cdef int64_t p
    if x <= RISK_I64_MAX and num <= RISK_I64_MAX and den <= RISK_I64_MAX and \
            not __builtin_mul_overflow(<int64_t>x, <int64_t>num, &p):
        return p // <int64_t>den
    return x * num // den


cdef inline i128 tokens(const RAccount* A, int64_t ts) noexcept nogil:
    # the account's bucket at ts, in nano-tokens
    cdef i128 t = A.tokens_nano
    cdef i128 cap = <i128>A.rate_burst * NANO
    if ts > A.last_ts:
        t += (<i128>ts - A.last_ts) * A.rate_per_s
    return cap if t > cap else t


cdef inline i128 reference(const RInstrument* I) noexcept nogil:
    return I.last_price if I.last_price != 0 else I.ref_price


cdef int32_t risk_account(Risk* r, uint32_t account) noexcept nogil:
    # the account's index, or -1: a direct table when the ids are small, else a binary
    # search (ids ascend) that tries the last one found first
    cdef int32_t lo = 0, hi = r.n_acct - 1, mid
    if r.index != NULL:
        return r.index[account] if account < r.n_index else -1
    if r.last < r.n_acct and r.acct[r.last].account == account:
        return r.last
    while lo <= hi:
        mid = (lo + hi) >> 1
        if r.acct[mid].account < account:
            lo = mid + 1
        elif r.acct[mid].account > account:
            hi = mid - 1
        else:
            r.last = mid
            return mid
    return -1


# -- the checks -----------------------------------------------------------------------------

cdef inline uint16_t kill_check(const Risk* r, const RAccount* A, const RPosition* P,
                                uint8_t side, int64_t open_buy, int64_t open_sell,
                                int64_t qty) noexcept nogil:
    # check 10 with the order's own open quantity already out of open_buy/open_sell
    cdef int64_t mode = A.kill if A.kill > r.kill else r.kill
    if mode == KILL_KILLED:
        return R_RISK_KILL_SWITCH if A.kill == KILL_KILLED else R_RISK_KILL_SWITCH_GLOBAL
    if mode == KILL_REDUCE_ONLY:
        if side == RSIDE_BUY:
            if not (P.position < 0 and <i128>open_buy + qty <= -<i128>P.position):
                return R_RISK_REDUCE_ONLY
        elif not (P.position > 0 and <i128>open_sell + qty <= P.position):
            return R_RISK_REDUCE_ONLY
    return 0


cdef inline uint16_t band_check(const RInstrument* I, int64_t price) noexcept nogil:
    cdef i128 ref = reference(I), band
    if ref != 0 and I.band_bps != 0:
        band = band_of(ref, I.band_bps)
        if price < ref - band or price > ref + band:
            return R_RISK_PRICE_BAND
    return 0


cdef inline uint16_t size_check(const Risk* r, const RAccount* A, const RPosition* P,
                                const RInstrument* I, int64_t price, int64_t qty,
                                i128* out) noexcept nogil:
    # check 4; the order's notional goes to `out`
    cdef i128 n
    if qty > P.max_order_qty:
        return R_RISK_MAX_ORDER_QTY
    n = notional(price, qty, I.k)
    out[0] = n
    if n > CAP or converted_above(r, n, I.ccy, A.base_ccy, P.max_order_notional):
        return R_RISK_MAX_ORDER_NOTIONAL
    return 0


cdef uint16_t risk_check_new(Risk* r, int32_t a, int32_t b, uint8_t side, bint market,
                             bint may_rest, int64_t price, int64_t qty, int64_t ts,
                             int64_t* protect) noexcept nogil:
    # checks 3..10 of a NEW (docs/RISK.md); a market order gets its protection limit
    cdef RAccount* A = &r.acct[a]
    cdef RPosition* P = &r.pos[<Py_ssize_t>a * r.n_inst + b]
    cdef RInstrument* I = &r.inst[b]
    cdef RCash* C
    cdef i128 ref, band, w, n
    cdef uint16_t reason
    # 3. price band (and a market order's protection)
    if market:
        ref = reference(I)
        if ref == 0:
            return R_RISK_NO_REFERENCE_PRICE
        band = band_of(ref, I.band_bps)
        w = ref + band
        if w > RISK_I64_MAX:
            w = RISK_I64_MAX
        protect[0] = <int64_t>w if side == RSIDE_BUY else <int64_t>(ref - band)
    else:
        reason = band_check(I, price)
        if reason:
            return reason
        w = price
    # 4. order size
    reason = size_check(r, A, P, I, <int64_t>w, qty, &n)
    if reason:
        return reason
    # 5. buying power, 6. position limit
    if side == RSIDE_BUY:
        C = &r.cash[<Py_ssize_t>a * r.n_ccy + I.ccy]
        if n > <i128>C.cash + C.credit - C.open_buy_notional:
            return R_RISK_INSUFFICIENT_CASH
        if <i128>P.position + P.open_buy_qty + qty > P.position_limit:
            return R_RISK_POSITION_LIMIT
    else:
        if qty > <i128>P.position - P.open_sell_qty + P.short_limit:
            return R_RISK_INSUFFICIENT_POSITION
        if <i128>P.position - P.open_sell_qty - qty < -<i128>P.position_limit:
            return R_RISK_POSITION_LIMIT
    # 7. open orders
    if may_rest and A.open_orders >= A.max_open_orders:
        return R_RISK_MAX_OPEN_ORDERS
    # 8. order rate
    if A.rate_per_s > 0 and tokens(A, ts) < NANO:
        return R_RISK_RATE_LIMITED
    # 9. restricted lists
    if P.restricted:
        return R_RISK_RESTRICTED
    if I.restricted:
        return R_RISK_RESTRICTED_GLOBAL
    # 10. kill switch
    return kill_check(r, A, P, side, P.open_buy_qty, P.open_sell_qty, qty)


cdef uint16_t risk_check_replace(Risk* r, int32_t a, int32_t b, uint8_t side, int64_t old_price,
                                 int64_t old_open, int64_t price, int64_t qty, int64_t new_open,
                                 int64_t ts) noexcept nogil:
    # checks 3..10 of a REPLACE, 5 and 6 on what it adds (docs/RISK.md, "Replaces")
    cdef RAccount* A = &r.acct[a]
    cdef RPosition* P = &r.pos[<Py_ssize_t>a * r.n_inst + b]
    cdef RInstrument* I = &r.inst[b]
    cdef RCash* C
    cdef i128 extra, n
    cdef int64_t dq = new_open - old_open
    cdef uint16_t reason = band_check(I, price)
    if reason:
        return reason
    reason = size_check(r, A, P, I, price, qty, &n)
    if reason:
        return reason
    if side == RSIDE_BUY:
        C = &r.cash[<Py_ssize_t>a * r.n_ccy + I.ccy]
        extra = notional(price, new_open, I.k) - notional(old_price, old_open, I.k)
        if extra > 0 and extra > <i128>C.cash + C.credit - C.open_buy_notional:
            return R_RISK_INSUFFICIENT_CASH
        if dq > 0 and <i128>P.position + P.open_buy_qty + dq > P.position_limit:
            return R_RISK_POSITION_LIMIT
    elif dq > 0:
        if dq > <i128>P.position - P.open_sell_qty + P.short_limit:
            return R_RISK_INSUFFICIENT_POSITION
        if <i128>P.position - P.open_sell_qty - dq < -<i128>P.position_limit:
            return R_RISK_POSITION_LIMIT
    if A.rate_per_s > 0 and tokens(A, ts) < NANO:
        return R_RISK_RATE_LIMITED
    # a replace that only lowers the quantity at the same price is not held by a list
    if price != old_price or dq > 0:
        if P.restricted:
            return R_RISK_RESTRICTED
        if I.restricted:
            return R_RISK_RESTRICTED_GLOBAL
    if side == RSIDE_BUY:
        return kill_check(r, A, P, side, P.open_buy_qty - old_open, P.open_sell_qty, new_open)
    return kill_check(r, A, P, side, P.open_buy_qty, P.open_sell_qty - old_open, new_open)


cdef void risk_accept(Risk* r, int32_t a, int64_t ts) noexcept nogil:
    # an accepted NEW or REPLACE takes one token
    cdef RAccount* A = &r.acct[a]
    if A.rate_per_s > 0:
        A.tokens_nano = <int64_t>(tokens(A, ts) - NANO)
        if ts > A.last_ts:
            A.last_ts = ts


# -- exposure and fills ---------------------------------------------------------------------

cdef void risk_rest(Risk* r, int32_t a, int32_t b, uint8_t side, int64_t price,
                    int64_t open_qty) noexcept nogil:
    cdef RPosition* P = &r.pos[<Py_ssize_t>a * r.n_inst + b]
    cdef RCash* C
    r.acct[a].open_orders += 1
    if side == RSIDE_BUY:
        P.open_buy_qty = sat(<i128>P.open_buy_qty + open_qty)
        C = &r.cash[<Py_ssize_t>a * r.n_ccy + r.inst[b].ccy]
        C.open_buy_notional = sat(C.open_buy_notional + notional(price, open_qty, r.inst[b].k))
    else:
        P.open_sell_qty = sat(<i128>P.open_sell_qty + open_qty)


cdef void risk_leave(Risk* r, uint32_t account, int32_t b, uint8_t side, int64_t price,
                     int64_t open_qty) noexcept nogil:
    cdef int32_t a = risk_account(r, account)
    cdef RPosition* P
    cdef RCash* C
    if a < 0:
        return
    P = &r.pos[<Py_ssize_t>a * r.n_inst + b]
    r.acct[a].open_orders -= 1
    if side == RSIDE_BUY:
        P.open_buy_qty -= open_qty
        C = &r.cash[<Py_ssize_t>a * r.n_ccy + r.inst[b].ccy]
        C.open_buy_notional = sat(C.open_buy_notional - notional(price, open_qty, r.inst[b].k))
    else:
        P.open_sell_qty -= open_qty


cdef void move_position(RPosition* P, int64_t d, i128 n) noexcept nogil:
    # the cost rule of docs/RISK.md: d signed lots (+ buy, - sell) bought or sold for n
    cdef i128 pos = P.position, cost = P.cost, ad = d if d > 0 else -d, ap, close
    cdef i128 basis, value
    if pos == 0 or (pos > 0) == (d > 0):
        P.position = sat(pos + d)
        P.cost = sat(cost + n)
        return
    ap = pos if pos > 0 else -pos
    close = ad if ad < ap else ap
    basis = cost if close == ap else part_of(cost, close, ap)
    value = n if close == ad else part_of(n, close, ad)
    if pos > 0:
        P.realized = sat(<i128>P.realized + value - basis)
    else:
        P.realized = sat(<i128>P.realized + basis - value)
    cost -= basis
    pos += close if d > 0 else -close
    if ad > close:
        pos += (ad - close) if d > 0 else -(ad - close)
        cost = n - value
    P.position = sat(pos)
    P.cost = sat(cost)


cdef inline void fill_side(Risk* r, int32_t a, int32_t b, uint8_t side, i128 n, i128 fee,
                           int64_t qty) noexcept nogil:
    cdef RPosition* P = &r.pos[<Py_ssize_t>a * r.n_inst + b]
    cdef RCash* C = &r.cash[<Py_ssize_t>a * r.n_ccy + r.inst[b].ccy]
    if side == RSIDE_BUY:
        C.cash = sat(<i128>C.cash - n - fee)
        move_position(P, qty, n)
    else:
        C.cash = sat(<i128>C.cash + n - fee)
        move_position(P, -qty, n)
    P.fees = sat(<i128>P.fees + fee)


cdef inline i128 signed_fee(i128 n, int64_t ppm) noexcept nogil:
    # docs/ROUTING.md, "Fees": ceil(n * ppm / 10**6) for ppm >= 0 (a fee rounds up), and
    # -floor(n * -ppm / 10**6) for ppm < 0 (a rebate rounds toward zero); 0 <= n <= CAP + 1
    cdef int64_t q, m
    if ppm >= 0:
        return fee_of(n, ppm) if ppm != 0 else 0
    q = <int64_t>(n // 1000000)
    m = <int64_t>(n - <i128>q * 1000000)
    return -(<i128>q * -ppm + (m * -ppm) // 1000000)


cdef void risk_fill(Risk* r, int32_t b, int32_t ta, uint8_t taker_side, uint32_t maker_account,
                    int64_t price, int64_t qty, bint maker_done, i128 n, int64_t taker_fee,
                    int64_t maker_fee) noexcept nogil:
    # a fill of `qty` at `price` (notional `n`) with the fees the core computed for each side
    cdef RInstrument* I = &r.inst[b]
    cdef uint8_t maker_side = 3 - taker_side
    cdef int32_t ma = risk_account(r, maker_account)
    cdef RPosition* P
    cdef RCash* C
    fill_side(r, ta, b, taker_side, n, taker_fee, qty)
    if ma >= 0:
        fill_side(r, ma, b, maker_side, n, maker_fee, qty)
        P = &r.pos[<Py_ssize_t>ma * r.n_inst + b]
        if maker_side == RSIDE_BUY:
            P.open_buy_qty -= qty
            C = &r.cash[<Py_ssize_t>ma * r.n_ccy + I.ccy]
            C.open_buy_notional = sat(C.open_buy_notional - n)
        else:
            P.open_sell_qty -= qty
        if maker_done:
            r.acct[ma].open_orders -= 1
    I.last_price = price
