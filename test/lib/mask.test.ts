/**
 * lib/mask.ts: 256-bit AP masks in the kernel's inverted bit order and the two write
 * grammars of /sys/bus/ap/apmask and aqmask (ap_bus.c ap_hex2bitmap, modify_bitmap,
 * ap_parse_mask_str). Every rule and example of /work/shared/spec/ap-bus.md §1.2, §1.4 and
 * §10 scenarios 8–20, plus Errata 4 (relative numbers wrap instead of failing).
 */
import test from 'ava'
import { SysfsError, type Errno } from '../../lib/errors.js'
import { AP_IDS, hex2mask, Mask, modifyMask, parseApMask, qciMaskText } from '../../lib/mask.js'

const show = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 40)}…${s.slice(-20)}` : s)

/** The read format of a mask whose leading hex digits are `digits` (padded with zeros on the right). */
const H = (digits: string): string => '0x' + digits.padEnd(64, '0')
const ZERO = H('')
const ALL = H('f'.repeat(64))
const F = (n: number): string => 'f'.repeat(n)

/** A starting mask given as its read format. */
const start = (hex: string): Mask => hex2mask(hex)

// ---------------------------------------------------------------------------------------
// Mask: bit order and set operations

const hexCase = test.macro({
  exec (t, ids: number[], expected: string) {
    const m = new Mask(ids)
    t.is(m.toHex(), expected)
    t.is(m.toJSON(), expected)
    t.deepEqual(m.ids(), [...ids].sort((a, b) => a - b))
    t.is(m.count(), ids.length)
    t.is(hex2mask(expected).toHex(), expected, 'the read format parses back to the same mask')
  },
  title: (_p, ids: number[], expected: string) => `toHex [${ids.join(',')}] -> ${expected.slice(0, 20)}…`
})

for (const [ids, hex] of [
  [[], ZERO],
  [[0], H('8')],
  [[5], H('04')],
  [[1, 3], H('5')],
  [[3, 5, 6], '0x1600000000000000000000000000000000000000000000000000000000000000'],
  [[1, 7], '0x4100000000000000000000000000000000000000000000000000000000000000'],
  [[255], '0x' + '0'.repeat(63) + '1'],
  [[254, 0], H('8'.padEnd(63, '0') + '2')],
  // F1 usage domains 4, 0x0b, 0x47 (ap-bus.md §10 scenario 3)
  [[4, 11, 0x47], '0x0810000000000000010000000000000000000000000000000000000000000000'],
  // TG: adapters 5,6 and domains 4,0xab (vfio-ap.md §5.1)
  [[6, 5], '0x0600000000000000000000000000000000000000000000000000000000000000'],
  [[0xab, 4], '0x0800000000000000000000000000000000000000001000000000000000000000']
] as Array<[number[], string]>) test(hexCase, ids, hex)

const upToCase = test.macro({
  exec (t, max: number, count: number, hex: string) {
    const m = Mask.upTo(max)
    t.is(m.count(), count)
    t.is(m.toHex(), hex)
  },
  title: (_p, max: number) => `Mask.upTo(${max})`
})

for (const [max, count, hex] of [
  [-1, 0, ZERO],
  [0, 1, H('8')],
  [15, 16, H(F(4))],
  [30, 31, H(F(7) + 'e')],
  [31, 32, H(F(8))],
  [32, 33, H(F(8) + '8')],
  [62, 63, H(F(15) + 'e')],
  [63, 64, H(F(16))],
  [64, 65, H(F(16) + '8')],
  [127, 128, H(F(32))],
  [254, 255, H(F(63) + 'e')],
  [255, 256, ALL],
  [300, 256, ALL]
] as Array<[number, number, string]>) test(upToCase, max, count, hex)

test('Mask.all has every id 0..255 and nothing beyond', t => {
  const m = Mask.all()
  t.is(m.count(), AP_IDS)
  t.is(m.toHex(), ALL)
  t.true(m.has(0))
  t.true(m.has(255))
  t.false(m.has(256))
  t.false(m.has(-1))
})

test('Mask: set, clear, clone, equals, isEmpty', t => {
  const m = new Mask().set(3).set(200)
  t.true(m.has(3))
  t.false(m.has(4))
  const c = m.clone()
  c.clear(3)
  t.true(m.has(3), 'a clone is independent')
  t.false(c.has(3))
  t.false(m.equals(c))
  t.true(m.equals(new Mask([200, 3])))
  t.true(m.set(7, false).equals(new Mask([3, 200])))
  t.false(m.isEmpty())
  t.true(new Mask().isEmpty())
  // Equality does not depend on how the mask was built.
  t.true(Mask.all().andNot(Mask.all()).equals(new Mask()))
  t.true(new Mask().equals(Mask.all().andNot(Mask.all())))
  t.true(new Mask([255]).clear(255).equals(new Mask()))
  t.true(modifyMask('-0-255', Mask.all()).equals(hex2mask('0x')))
})

test('Mask: and, or, andNot, intersects', t => {
  const a = new Mask([1, 2, 3, 100])
  const b = new Mask([3, 4, 100, 255])
  t.deepEqual(a.and(b).ids(), [3, 100])
  t.deepEqual(a.or(b).ids(), [1, 2, 3, 4, 100, 255])
  t.deepEqual(a.andNot(b).ids(), [1, 2])
  t.deepEqual(b.andNot(a).ids(), [4, 255])
  t.true(a.intersects(b))
  t.false(a.intersects(new Mask([0, 254])))
  t.false(new Mask().intersects(Mask.all()))
  t.deepEqual(a.ids(), [1, 2, 3, 100], 'operands are not modified')
})

test('qciMaskText: 67 bytes, or "not supported" without QCI (ap-bus.md §1.2)', t => {
  t.is(qciMaskText(undefined), 'not supported\n')
  const text = qciMaskText(new Mask([3, 5, 6]))
  t.is(text, '0x1600000000000000000000000000000000000000000000000000000000000000\n')
  t.is(text.length, 67)
  t.is(qciMaskText(new Mask()), ZERO + '\n')
})

// ---------------------------------------------------------------------------------------
// Absolute syntax (ap_hex2bitmap), ap-bus.md §1.4 rules 1–6 and scenarios 10–15

const hexParse = test.macro({
  exec (t, input: string, expected: string | Errno) {
    if (expected.startsWith('0x')) {
      t.is(hex2mask(input).toHex(), expected)
      return
    }
    const e = t.throws(() => hex2mask(input, 'apmask'), { instanceOf: SysfsError })
    t.is(e?.code, expected as Errno)
    t.true(e?.why.startsWith('apmask') ?? false, 'the message names the mask')
  },
  title: (_p, input: string, expected: string | Errno) => `hex2mask ${show(input)} -> ${expected.startsWith('0x') ? show(expected) : expected}`
})

for (const [input, expected] of [
  // 1. optional prefix: 0x (lowercase only) or x
  ['0x41', H('41')],
  ['41', H('41')],
  ['x41', H('41')],
  ['0x41\n', H('41')],
  ['x41\n', H('41')],
  ['41\n', H('41')],
  ['0X41', 'EINVAL'],
  ['0X41\n', 'EINVAL'],
  ['X41', 'EINVAL'],
  ['0xx41', 'EINVAL'],
  ['xx41', 'EINVAL'],
  ['x0x41', 'EINVAL'],
  ['00x41', 'EINVAL'],
  // 2. hex digits of either case, digit k = ids 4k..4k+3, MSB first
  ['0xABCDEF', H('abcdef')],
  ['0xaBcD', H('abcd')],
  ['5', H('5')],
  ['8', H('8')],
  ['0x0000000000000001', H('0000000000000001')],
  ['0xZZ', 'EINVAL'],
  ['0xg', 'EINVAL'],
  ['0x-1', 'EINVAL'],
  ['+1', 'EINVAL'],
  ['0x\x11', 'EINVAL'],
  ['\x10', 'EINVAL'],
  // 2./4. at most 64 digits: a 65th digit is an error even when it is zero (scenario 13)
  [F(64), ALL],
  ['0x' + F(64), ALL],
  ['x' + F(64), ALL],
  ['0x' + F(64) + '\n', ALL],
  ['0x' + F(65), 'EINVAL'],
  ['0x' + F(64) + '0', 'EINVAL'],
  ['0x' + '0'.repeat(65), 'EINVAL'],
  [F(65), 'EINVAL'],
  ['0x' + F(64) + '\n\n', 'EINVAL'],
  // 3. shorter strings are padded with zero bits on the right (scenario 10, 11)
  ['0x1', H('1')],
  ['0xffff', H('ffff')],
  ['0x' + '0'.repeat(63) + '1', H('0'.repeat(63) + '1')],
  // 4. one optional newline, then the end (scenario 14)
  ['0xff', H('ff')],
  ['0xff\n', H('ff')],
  ['0xff ', 'EINVAL'],
  ['0xff\n\n', 'EINVAL'],
  ['0xff\r', 'EINVAL'],
  ['0xff\r\n', 'EINVAL'],
  ['0xff\t', 'EINVAL'],
  ['0xff,', 'EINVAL'],
  ['0xff,0x1', 'EINVAL'],
  ['0xff\nff', 'EINVAL'],
  [' 0xff', 'EINVAL'],
  ['\t0xff', 'EINVAL'],
  ['\n0xff', 'EINVAL'],
  ['0x ff', 'EINVAL'],
  ['\r', 'EINVAL'],
  ['\r\n', 'EINVAL'],
  [' ', 'EINVAL'],
  [' \n', 'EINVAL'],
  ['\t', 'EINVAL'],
  ['\n\n', 'EINVAL'],
  // 5. zero digits is legal: empty, a lone newline, 0x, x, 0 (scenario 15)
  ['', ZERO],
  ['\n', ZERO],
  ['0x', ZERO],
  ['0x\n', ZERO],
  ['x', ZERO],
  ['x\n', ZERO],
  ['0', ZERO],
  ['0\n', ZERO],
  ['0x' + '0'.repeat(64), ZERO],
  // 6. bytes after an embedded NUL are not parsed
  ['0xff\0garbage', H('ff')],
  ['0xff\n\0\n', H('ff')],
  ['\0garbage', ZERO],
  ['0x' + F(64) + '\0' + 'f', ALL]
] as Array<[string, string]>) test(hexParse, input, expected)

test('hex2mask replaces the whole mask (it has no "current" argument)', t => {
  t.is(parseApMask('0x41', Mask.all()).toHex(), H('41'))
  t.is(parseApMask('\n', Mask.all()).toHex(), ZERO)
})

// ---------------------------------------------------------------------------------------
// Relative syntax (modify_bitmap), ap-bus.md §1.4 and scenarios 8, 9, 16–20, 28

const relParse = test.macro({
  exec (t, from: string, input: string, expected: string | Errno) {
    const current = start(from)
    const before = current.toHex()
    if (expected.startsWith('0x')) {
      t.is(modifyMask(input, current).toHex(), expected)
      t.is(parseApMask(input, current).toHex(), expected, 'parseApMask picks the relative grammar')
    } else {
      const e = t.throws(() => modifyMask(input, current, 'aqmask'), { instanceOf: SysfsError })
      t.is(e?.code, expected as Errno)
      t.true(e?.why.startsWith('aqmask') ?? false, 'the message names the mask')
      t.is(t.throws(() => parseApMask(input, current), { instanceOf: SysfsError })?.code, expected as Errno)
    }
    t.is(current.toHex(), before, 'the current mask is never modified (the kernel parses into a copy)')
  },
  title: (_p, from: string, input: string, expected: string | Errno) =>
    `modify_bitmap ${from === ZERO ? 'zero' : from === ALL ? 'all' : from.slice(0, 8)} ${show(input)} -> ${expected.startsWith('0x') ? show(expected) : expected}`
})

for (const [from, input, expected] of [
  // single ids and ranges
  [ZERO, '+0', H('8')],
  [ZERO, '+5', H('04')],
  [ZERO, '+0-15', H(F(4))],
  [ZERO, '+3-3', H('1')],
  [ZERO, '+255', H('0'.repeat(63) + '1')],
  [ZERO, '+0-255', ALL],
  [ZERO, '+1-0x10', H('7fff8')],
  [ALL, '-5,-6', H('f9' + F(62))],
  [H('f9' + F(62)), '+5', H('fd' + F(62))],
  [ALL, '-0x10', H(F(4) + '7' + F(59))],
  [ALL, '-4,-0x47,-0xab,-0xff', '0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe'],
  [ALL, '-0-63', H('0'.repeat(16) + F(48))],
  // bits not mentioned keep their value
  [H('41'), '+0', H('c1')],
  [H('41'), '-1', H('01')],
  [H('41'), '-2', H('41')],
  // numbers: decimal, 0x/0X hex, leading-0 octal; no sign, no blanks
  [ZERO, '+010', H('008')],
  [ZERO, '+0x10', H('0000' + '8')],
  [ZERO, '+0X10', H('0000' + '8')],
  [ZERO, '+0xff', H('0'.repeat(63) + '1')],
  [ZERO, '+00', H('8')],
  [ZERO, '+08', 'EINVAL'],
  [ZERO, '+09', 'EINVAL'],
  [ZERO, '+0x', 'EINVAL'],
  [ZERO, '+0x\n', 'EINVAL'],
  [ZERO, '+0xg', 'EINVAL'],
  [ZERO, '+a', 'EINVAL'],
  [ZERO, '+-5', 'EINVAL'],
  [ZERO, '++5', 'EINVAL'],
  [ZERO, '+ 5', 'EINVAL'],
  [ZERO, '+\x15', 'EINVAL'],
  [ZERO, '+1\x10', 'EINVAL'],
  // terms follow each other directly or after any run of ',' and '\n'
  [ZERO, '+1+2', H('6')],
  [ZERO, '+1-2+5', H('64')],
  [ZERO, '+1,+2', H('6')],
  [ZERO, '+1,,+2,', H('6')],
  [ZERO, '+1,', H('4')],
  [ZERO, '+1\n', H('4')],
  [ZERO, '+1\n\n', H('4')],
  [ZERO, '+1,\n,\n', H('4')],
  [ZERO, '+1\n+2\n', H('6')],
  [ALL, '-3\n\n', H('e' + F(63))],
  [ZERO, '+1, +2', 'EINVAL'],
  [ZERO, '+1 ,+2', 'EINVAL'],
  [ZERO, '+1,2', 'EINVAL'],
  [ZERO, '+1;+2', 'EINVAL'],
  [ZERO, '+5 ', 'EINVAL'],
  [ZERO, '+5\t', 'EINVAL'],
  [ZERO, '+5\r\n', 'EINVAL'],
  [ZERO, '+5\r', 'EINVAL'],
  [ZERO, '+', 'EINVAL'],
  [ZERO, '-', 'EINVAL'],
  [ZERO, '+\n', 'EINVAL'],
  [ZERO, '+,', 'EINVAL'],
  [ZERO, '+1,+', 'EINVAL'],
  // later terms override earlier ones
  [ZERO, '+0-255,-128', H(F(32) + '7' + F(31))],
  [ZERO, '+0-7,-3', H('ef')],
  [ALL, '-0-7,+3', H('10' + F(62))],
  [ZERO, '+1,-1', ZERO],
  // ranges need a <= b < 256; single ids < 256; ids above the max adapter/domain id are fine
  [ZERO, '+5-3', 'EINVAL'],
  [ZERO, '+3-1', 'EINVAL'],
  [ZERO, '+256', 'EINVAL'],
  [ZERO, '+0x100', 'EINVAL'],
  [ZERO, '+0-256', 'EINVAL'],
  [ZERO, '+255-256', 'EINVAL'],
  [ZERO, '+5-', 'EINVAL'],
  [ZERO, '+5-x', 'EINVAL'],
  [ZERO, '+5--6', 'EINVAL'],
  // after a range the next '-' starts a new (clearing) term
  [ZERO, '+5-6-7', H('06')],
  [ZERO, '+4-7-6', H('0d')],
  [ZERO, '+1,+2,+300', 'EINVAL'],
  [ALL, '-300', 'EINVAL'],
  // Errata 4: numbers wrap modulo 2^64 instead of failing
  [ZERO, '+18446744073709551617', H('4')],
  [ZERO, '+18446744073709551616', H('8')],
  [ZERO, '+0x10000000000000001', H('4')],
  [ZERO, '+18446744073709551872', 'EINVAL'],
  [ZERO, '+0-18446744073709551871', ALL],
  [ALL, '-18446744073709551617', H('b' + F(63))],
  // the NUL-terminated buffer
  [ZERO, '+1\0garbage', H('4')],
  [ZERO, '+1,\0+2', H('4')]
] as Array<[string, string, string]>) test(relParse, from, input, expected)

// ---------------------------------------------------------------------------------------
// ap_parse_mask_str: only the first character decides

const dispatch = test.macro({
  exec (t, input: string, expected: string | Errno) {
    if (expected.startsWith('0x')) t.is(parseApMask(input, Mask.all()).toHex(), expected)
    else t.is(t.throws(() => parseApMask(input, Mask.all()), { instanceOf: SysfsError })?.code, expected as Errno)
  },
  title: (_p, input: string, expected: string | Errno) => `parseApMask from all-ones ${show(input)} -> ${expected.startsWith('0x') ? show(expected) : expected}`
})

for (const [input, expected] of [
  ['+1', ALL],
  ['-1', H('b' + F(63))],
  ['1', H('1')],
  ['0x41', H('41')],
  ['\n', ZERO],
  ['', ZERO],
  [' +1', 'EINVAL'],
  ['\n+1', 'EINVAL'],
  ['\0+1', ZERO],
  ['x-1', 'EINVAL']
] as Array<[string, string]>) test(dispatch, input, expected)
