/**
 * lib/parse.ts: the kernel's number and boolean parsers as the store routines use them
 * (lib/kstrtox.c kstrtoull/kstrtoul base 0 and kstrtobool, lib/vsprintf.c vsscanf "%d"/"%i",
 * simple_strtoul). Tables follow /work/shared/spec/ap-bus.md §1.3 and
 * /work/shared/spec/vfio-ap.md §2.2, with both specs' Errata (they win).
 */
import test from 'ava'
import { SysfsError, type Errno } from '../../lib/errors.js'
import { cstr, digitValue, kstrtobool, kstrtoul, kstrtoull, simpleStrtoul, sscanfInt } from '../../lib/parse.js'

const show = (s: string): string => JSON.stringify(s)

// ---------------------------------------------------------------------------------------
// cstr: the store buffer a C-string parser sees

const cstrCase = test.macro({
  exec (t, input: string, expected: string) { t.is(cstr(input), expected) },
  title: (_p, input: string, expected: string) => `cstr ${show(input)} -> ${show(expected)}`
})

for (const [input, expected] of [
  ['', ''],
  ['abc', 'abc'],
  ['5\n', '5\n'],
  ['5\0junk', '5'],
  ['\0', ''],
  ['\0abc', ''],
  ['a\0b\0c', 'a']
] as Array<[string, string]>) test(cstrCase, input, expected)

// ---------------------------------------------------------------------------------------
// digitValue: '0'-'9' by the raw character, letters through _tolower (c | 0x20) only

const digitCase = test.macro({
  exec (t, ch: string, expected: number | 'none') {
    const v = digitValue(ch)
    if (expected === 'none') t.true(v >= 16, `${show(ch)} must not be a digit, got ${v}`)
    else t.is(v, expected)
  },
  title: (_p, ch: string, expected: number | 'none') => `digitValue ${show(ch)} (0x${ch.charCodeAt(0).toString(16)}) -> ${expected}`
})

for (const [ch, v] of [
  ['0', 0], ['9', 9], ['a', 10], ['f', 15], ['A', 10], ['F', 15],
  ['g', 'none'], ['G', 'none'], ['x', 'none'], ['@', 'none'], ['/', 'none'], [':', 'none'], ['`', 'none'],
  [' ', 'none'], ['\n', 'none'], ['\0', 'none'],
  // The kernel tests '0' <= c <= '9' on the raw byte; only letters go through c | 0x20.
  // Control characters 0x10..0x19 are therefore not digits (0x10 | 0x20 == '0').
  ['\x10', 'none'], ['\x15', 'none'], ['\x19', 'none'],
  ['\xc1', 'none'], ['\xe1', 'none']
] as Array<[string, number | 'none']>) test(digitCase, ch, v)

// ---------------------------------------------------------------------------------------
// kstrtoull(s, 0): `[+]<number>[\n]` and nothing else (vfio-ap.md §2.2, ap-bus.md §1.3)

const U64_MAX = (1n << 64n) - 1n

const kstrtoullCase = test.macro({
  exec (t, input: string, expected: bigint | Errno) {
    if (typeof expected === 'bigint') {
      t.is(kstrtoull(input), expected)
      return
    }
    const e = t.throws(() => kstrtoull(input), { instanceOf: SysfsError })
    t.is(e?.code, expected)
  },
  title: (_p, input: string, expected: bigint | Errno) => `kstrtoull ${show(input)} -> ${String(expected)}`
})

for (const [input, expected] of [
  // decimal, one optional leading '+', at most one trailing newline
  ['0', 0n],
  ['5', 5n],
  ['5\n', 5n],
  ['+5', 5n],
  ['+5\n', 5n],
  ['255', 255n],
  ['18446744073709551615', U64_MAX],
  // radix auto-detection: 0x/0X + hex digit -> hex, leading 0 -> octal
  ['010', 8n],
  ['00', 0n],
  ['0x1f', 31n],
  ['0X1f', 31n],
  ['0X1F', 31n],
  ['+0X1f', 31n],
  ['0xff\n', 255n],
  ['0xffffffffffffffff', U64_MAX],
  ['0777', 511n],
  // the buffer is NUL-terminated: what follows a NUL is not seen
  ['5\0junk', 5n],
  ['5\n\0\n', 5n],
  // signs and blanks
  ['-1', 'EINVAL'],
  ['-0', 'EINVAL'],
  ['++5', 'EINVAL'],
  ['+', 'EINVAL'],
  ['+\n', 'EINVAL'],
  [' 5', 'EINVAL'],
  ['\t5', 'EINVAL'],
  ['5 ', 'EINVAL'],
  ['5\t', 'EINVAL'],
  ['5\r\n', 'EINVAL'],
  ['5\n\n', 'EINVAL'],
  ['\n5', 'EINVAL'],
  ['5,6', 'EINVAL'],
  ['5 6', 'EINVAL'],
  ['1.5', 'EINVAL'],
  ['5abc', 'EINVAL'],
  // nothing to convert
  ['', 'EINVAL'],
  ['\n', 'EINVAL'],
  ['\0', 'EINVAL'],
  ['\x005', 'EINVAL'],
  ['abc', 'EINVAL'],
  ['x10', 'EINVAL'],
  // octal with 8/9 and bare 0x: '0' is converted, then an unexpected character
  ['08', 'EINVAL'],
  ['09', 'EINVAL'],
  ['0099', 'EINVAL'],
  ['0x', 'EINVAL'],
  ['0x\n', 'EINVAL'],
  ['0xg', 'EINVAL'],
  ['0X', 'EINVAL'],
  // only '0'..'9' and letters are digits: control bytes 0x10..0x19 are not
  ['5\x10', 'EINVAL'],
  ['\x15', 'EINVAL'],
  ['1\x19\n', 'EINVAL'],
  // 64-bit overflow -> ERANGE, and it wins over trailing garbage (vfio-ap.md Errata 4)
  ['18446744073709551616', 'ERANGE'],
  ['99999999999999999999', 'ERANGE'],
  ['99999999999999999999\n', 'ERANGE'],
  ['99999999999999999999 ', 'ERANGE'],
  ['99999999999999999999\n\n', 'ERANGE'],
  ['99999999999999999999abc', 'ERANGE'],
  ['0x10000000000000000', 'ERANGE'],
  ['+0x10000000000000000', 'ERANGE'],
  ['0x10000000000000000 ', 'ERANGE'],
  ['02000000000000000000000', 'ERANGE'],
  ['01777777777777777777777', U64_MAX]
] as Array<[string, bigint | Errno]>) test(kstrtoullCase, input, expected)

test('kstrtoul: small values as numbers, huge ones saturate, errors pass through', t => {
  t.is(kstrtoul('0x47\n'), 0x47)
  t.is(kstrtoul('+010'), 8)
  t.is(kstrtoul('18446744073709551615'), Number.MAX_SAFE_INTEGER)
  t.is(t.throws(() => kstrtoul('99999999999999999999'), { instanceOf: SysfsError })?.code, 'ERANGE')
  t.is(t.throws(() => kstrtoul('-1'), { instanceOf: SysfsError })?.code, 'EINVAL')
})

// ---------------------------------------------------------------------------------------
// kstrtobool: the first one or two characters decide (ap-bus.md §1.3 poll_thread, Errata 2)

const boolCase = test.macro({
  exec (t, input: string, expected: boolean | 'EINVAL') {
    if (expected === 'EINVAL') {
      t.is(t.throws(() => kstrtobool(input), { instanceOf: SysfsError })?.code, 'EINVAL')
    } else {
      t.is(kstrtobool(input), expected)
    }
  },
  title: (_p, input: string, expected: boolean | 'EINVAL') => `kstrtobool ${show(input)} -> ${String(expected)}`
})

for (const [input, expected] of [
  ['1', true], ['1\n', true], ['y', true], ['Y', true], ['t', true], ['T', true],
  ['yes', true], ['true', true], ['1abc', true], ['y garbage', true],
  ['on', true], ['ON', true], ['On', true], ['oN', true], ['on\n', true], ['onwards', true],
  ['e', true], ['E', true], ['enable', true], ['Enable\n', true],
  ['0', false], ['0\n', false], ['n', false], ['N', false], ['f', false], ['F', false],
  ['no', false], ['false', false], ['0x1', false],
  ['off', false], ['OFF', false], ['oF', false], ['of', false],
  ['d', false], ['D', false], ['disable', false], ['Disable\n', false],
  ['', 'EINVAL'], ['\n', 'EINVAL'], [' 1', 'EINVAL'], ['\t1', 'EINVAL'], ['2', 'EINVAL'], ['-1', 'EINVAL'],
  ['+1', 'EINVAL'], ['maybe', 'EINVAL'], ['o', 'EINVAL'], ['o\n', 'EINVAL'], ['ox', 'EINVAL'], ['o n', 'EINVAL'],
  ['x', 'EINVAL'], ['\0' + '1', 'EINVAL'], ['Ja', 'EINVAL']
] as Array<[string, boolean | 'EINVAL']>) test(boolCase, input, expected)

// ---------------------------------------------------------------------------------------
// sscanf "%d" / "%i" into an int (ap-bus.md §1.3 ap_domain/config_time, Errata 5)

const scanCase = test.macro({
  exec (t, conv: 'd' | 'i', input: string, expected: number | undefined) {
    t.is(sscanfInt(input, conv), expected)
  },
  title: (_p, conv: 'd' | 'i', input: string, expected: number | undefined) => `sscanf %${conv} ${show(input)} -> ${expected === undefined ? 'no conversion' : expected}`
})

for (const [conv, input, expected] of [
  // %d: decimal only, leading white space skipped, '-' allowed, '+' not, trailing text ignored
  ['d', '60', 60],
  ['d', '60\n', 60],
  ['d', '  60', 60],
  ['d', '\t\n\v\f\r 60', 60],
  ['d', '60abc', 60],
  ['d', '60 70', 60],
  ['d', '5abc', 5],
  ['d', '-60', -60],
  ['d', '-0', 0],
  ['d', '010', 10],
  ['d', '0x10', 0],
  ['d', '08', 8],
  ['d', '+60', undefined],
  ['d', '- 60', undefined],
  ['d', '-', undefined],
  ['d', '', undefined],
  ['d', '\n', undefined],
  ['d', 'abc', undefined],
  ['d', '\x160', undefined],
  ['d', '\0' + '60', undefined],
  ['d', '6\x100', 6],
  // the int conversion keeps the low 32 bits of the (64-bit wrapping) value
  ['d', '2147483647', 2147483647],
  ['d', '2147483648', -2147483648],
  ['d', '4294967295', -1],
  ['d', '4294967356', 60],
  ['d', '-4294967295', 1],
  ['d', '18446744073709551621', 5],
  // %i: radix auto-detection as kstrto*, plus the same blanks/sign/garbage rules
  ['i', '3', 3],
  ['i', '0x0b', 11],
  ['i', '0X0B\n', 11],
  ['i', '013', 11],
  ['i', '08', 0],
  ['i', '0', 0],
  ['i', '0x', 0],
  ['i', '0xg', 0],
  ['i', '-0x10', -16],
  ['i', '-010', -8],
  ['i', '  0x47', 0x47],
  ['i', '5abc', 5],
  ['i', '+5', undefined],
  ['i', 'x5', undefined],
  ['i', '4294967300', 4],
  ['i', '0x100000004', 4],
  ['i', '4294967295', -1]
] as Array<['d' | 'i', string, number | undefined]>) test(scanCase, conv, input, expected)

// ---------------------------------------------------------------------------------------
// simple_strtoul(s, &end, 0): the relative mask grammar's number (ap-bus.md §1.4, Errata 4)

const strtoulCase = test.macro({
  exec (t, input: string, start: number, value: bigint, end: number) {
    t.deepEqual(simpleStrtoul(input, start), [value, end])
  },
  title: (_p, input: string, start: number, value: bigint, end: number) => `simple_strtoul ${show(input)} @${start} -> ${value} end ${end}`
})

for (const [input, start, value, end] of [
  ['5', 0, 5n, 1],
  ['+5', 1, 5n, 2],
  ['+10-20', 1, 10n, 3],
  ['+10-20', 4, 20n, 6],
  ['010', 0, 8n, 3],
  ['08', 0, 0n, 1],
  ['0x1f,', 0, 31n, 4],
  ['0X1F', 0, 31n, 4],
  ['0x', 0, 0n, 1],
  ['0xg', 0, 0n, 1],
  ['', 0, 0n, 0],
  ['-5', 0, 0n, 0],
  [' 5', 0, 0n, 0],
  ['abc', 0, 0n, 0],
  ['\x15', 0, 0n, 0],
  // no overflow check: the value wraps modulo 2^64
  ['18446744073709551615', 0, U64_MAX, 20],
  ['18446744073709551616', 0, 0n, 20],
  ['18446744073709551617', 0, 1n, 20],
  ['0x10000000000000005', 0, 5n, 19]
] as Array<[string, number, bigint, number]>) test(strtoulCase, input, start, value, end)
