/**
 * The kernel's number and boolean parsers, as the store routines use them. Each takes the
 * buffer a store received (a latin1 string of the written bytes) and throws SysfsError with
 * the kernel's errno. The kernel hands stores a NUL-terminated buffer, so C-string parsers
 * stop at the first NUL.
 */
import { fail } from './errors.js'

const U64_MAX = (1n << 64n) - 1n

/** The part of a store buffer a C-string parser sees. */
export function cstr (s: string): string {
  const nul = s.indexOf('\0')
  return nul < 0 ? s : s.slice(0, nul)
}

function digitValue (c: string): number {
  const code = c.charCodeAt(0)
  if (code >= 0x30 && code <= 0x39) return code - 0x30
  const lower = code | 0x20
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10
  return 99
}

/** Radix auto-detection shared by kstrto*() and simple_strto*(): returns [base, digits start]. */
function autoBase (s: string, i: number): [number, number] {
  if (s[i] === '0') {
    if ((s[i + 1] === 'x' || s[i + 1] === 'X') && i + 2 < s.length && digitValue(s[i + 2]) < 16) return [16, i + 2]
    return [8, i]
  }
  return [10, i]
}

/**
 * kstrtoull(s, 0): `[+]<number>[\n]` and nothing else. Overflow is detected while digits are
 * consumed, before the trailing characters are looked at, so it wins over EINVAL.
 */
export function kstrtoull (buf: string): bigint {
  const s = cstr(buf)
  let i = 0
  if (s[i] === '+') i++
  const [base, start] = autoBase(s, i)
  let v = 0n
  let n = start
  let overflow = false
  for (; n < s.length; n++) {
    const d = digitValue(s[n])
    if (d >= base) break
    v = v * BigInt(base) + BigInt(d)
    if (v > U64_MAX) overflow = true
  }
  if (n === start) fail('EINVAL', `no digits in ${JSON.stringify(buf)}`)
  if (overflow) fail('ERANGE', `${JSON.stringify(buf)} does not fit in 64 bits`)
  const rest = s.slice(n)
  if (rest !== '' && rest !== '\n') fail('EINVAL', `unexpected ${JSON.stringify(rest)} after the number`)
  return v
}

/** kstrtoul(s, 0) as a JS number, for callers whose valid range is small. */
export function kstrtoul (buf: string): number {
  const v = kstrtoull(buf)
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
}

/**
 * kstrtobool(): decided by the first one or two characters. Newest kernels also accept
 * e/E (enable) and d/D (disable).
 */
export function kstrtobool (buf: string, enableDisable = true): boolean {
  const s = cstr(buf)
  switch (s[0]) {
    case 'y': case 'Y': case 't': case 'T': case '1': return true
    case 'n': case 'N': case 'f': case 'F': case '0': return false
    case 'e': case 'E': if (enableDisable) return true; break
    case 'd': case 'D': if (enableDisable) return false; break
    case 'o': case 'O':
      if (s[1] === 'n' || s[1] === 'N') return true
      if (s[1] === 'f' || s[1] === 'F') return false
  }
  return fail('EINVAL', `${JSON.stringify(buf)} is not a boolean`)
}

/** The kernel's isspace(): the C white space plus latin1 NBSP (0xa0, lib/ctype.c). */
const isSpace = (c: string | undefined): boolean => c !== undefined && ' \t\n\v\f\r\xa0'.includes(c)

/**
 * sscanf(buf, "%d") / "%i" for one int: leading white space skipped, an optional '-', then
 * digits (base 10 for %d, auto-detected for %i); trailing text is ignored. Returns undefined
 * where sscanf would convert nothing. The kernel's sscanf has no '+' sign. The value is
 * truncated to 32 bits as the int conversion does.
 */
export function sscanfInt (buf: string, conversion: 'd' | 'i'): number | undefined {
  const s = cstr(buf)
  let i = 0
  while (isSpace(s[i])) i++
  let neg = false
  if (s[i] === '-') { neg = true; i++ }
  let base = 10
  let start = i
  if (conversion === 'i') [base, start] = autoBase(s, i)
  let v = 0n
  let n = start
  for (; n < s.length && digitValue(s[n]) < base; n++) v = v * BigInt(base) + BigInt(digitValue(s[n]))
  if (n === start) return undefined
  v = BigInt.asIntN(32, neg ? -v : v)
  return Number(v)
}

/** sscanf(buf, "%llu"): leading white space, decimal digits, trailing text ignored (wraps at 64 bits). */
export function sscanfU64 (buf: string): bigint | undefined {
  const s = cstr(buf)
  let i = 0
  while (isSpace(s[i])) i++
  let v = 0n
  const start = i
  for (; i < s.length && s[i] >= '0' && s[i] <= '9'; i++) v = (v * 10n + BigInt(s.charCodeAt(i) - 48)) & U64_MAX
  return i === start ? undefined : v
}

/** simple_strtoul(s, &end, 0) as used by the AP bus relative mask grammar: returns [value, end]. */
export function simpleStrtoul (s: string, i: number): [bigint, number] {
  const [base, start] = autoBase(s, i)
  let v = 0n
  let n = start
  for (; n < s.length && digitValue(s[n]) < base; n++) v = (v * BigInt(base) + BigInt(digitValue(s[n]))) & U64_MAX
  return [v, n]
}

export { digitValue }
