/**
 * 256-bit AP masks (apm/aqm/adm, apmask/aqmask, QCI masks) in the kernel's "inverted" bit
 * order: id 0 is the most significant bit of the first hex digit. Storage is a `bitset`.
 */
import BitSet from 'bitset'
import { fail } from './errors.js'
import { cstr, digitValue, simpleStrtoul } from './parse.js'

export const AP_IDS = 256

export class Mask {
  private bits: InstanceType<typeof BitSet>

  constructor (ids: Iterable<number> = []) {
    this.bits = new BitSet()
    for (const id of ids) this.set(id)
  }

  /** Ids 0..max inclusive (bitset's own setRange miscounts at word ends, so bit by bit). */
  static upTo (max: number): Mask {
    const m = new Mask()
    for (let id = 0; id <= Math.min(max, AP_IDS - 1); id++) m.bits.set(id, 1)
    return m
  }

  static all (): Mask { return Mask.upTo(AP_IDS - 1) }

  has (id: number): boolean { return id >= 0 && id < AP_IDS && this.bits.get(id) === 1 }
  set (id: number, on = true): this { this.bits.set(id, on ? 1 : 0); return this }
  clear (id: number): this { return this.set(id, false) }
  clone (): Mask { const m = new Mask(); m.bits = this.bits.clone(); return m }
  equals (o: Mask): boolean { return this.bits.equals(o.bits) }
  isEmpty (): boolean { return this.bits.isEmpty() }
  count (): number { return this.bits.cardinality() }
  /** Ascending ids. */
  ids (): number[] { return this.bits.toArray() }
  and (o: Mask): Mask { const m = new Mask(); m.bits = this.bits.and(o.bits); return m }
  or (o: Mask): Mask { const m = new Mask(); m.bits = this.bits.or(o.bits); return m }
  andNot (o: Mask): Mask { const m = new Mask(); m.bits = this.bits.andNot(o.bits); return m }
  intersects (o: Mask): boolean { return !this.bits.and(o.bits).isEmpty() }

  /** `0x` + 64 lowercase hex digits, as apmask/aqmask/ap_config print. */
  toHex (): string {
    let s = '0x'
    for (let k = 0; k < AP_IDS / 4; k++) {
      const b = 4 * k
      s += ((this.bits.get(b) << 3) | (this.bits.get(b + 1) << 2) | (this.bits.get(b + 2) << 1) | this.bits.get(b + 3)).toString(16)
    }
    return s
  }

  toJSON (): string { return this.toHex() }
}

/**
 * The AP bus absolute syntax (ap_hex2bitmap): optional `0x` or `x`, up to 64 hex digits filled
 * from the left, one optional newline, then the end of the string.
 */
export function hex2mask (buf: string, what = 'mask'): Mask {
  const s = cstr(buf)
  let i = 0
  if (s[0] === '0' && s[1] === 'x') i++
  if (s[i] === 'x') i++
  const m = new Mask()
  let bit = 0
  for (; i < s.length && digitValue(s[i]) < 16 && bit < AP_IDS; i++, bit += 4) {
    const d = digitValue(s[i])
    for (let n = 0; n < 4; n++) if (d & (8 >> n)) m.set(bit + n)
  }
  if (s[i] === '\n') i++
  if (i < s.length) fail('EINVAL', `${what}: unexpected ${JSON.stringify(s.slice(i, i + 8))} in ${JSON.stringify(buf)}`)
  return m
}

/**
 * The AP bus relative syntax (modify_bitmap), applied to a copy of `current`: terms
 * `+N`, `-N`, `+A-B`, `-A-B`, each followed by any run of `,` and `\n`.
 */
export function modifyMask (buf: string, current: Mask, what = 'mask'): Mask {
  const s = cstr(buf)
  const m = current.clone()
  let i = 0
  const bad = (why: string): never => fail('EINVAL', `${what}: ${why} in ${JSON.stringify(buf)}`)
  while (i < s.length) {
    const sign = s[i++]
    if (sign !== '+' && sign !== '-') bad(`expected + or - at offset ${i - 1}`)
    const [a, np] = simpleStrtoul(s, i)
    if (np === i || a >= BigInt(AP_IDS)) bad(np === i ? `missing number at offset ${i}` : `id ${a} out of range`)
    i = np
    let z = a
    if (s[i] === '-') {
      const [b, np2] = simpleStrtoul(s, i + 1)
      if (np2 === i + 1 || a > b || b >= BigInt(AP_IDS)) bad(`bad range end at offset ${i + 1}`)
      z = b
      i = np2
    }
    for (let id = Number(a); id <= Number(z); id++) m.set(id, sign === '+')
    while (s[i] === ',' || s[i] === '\n') i++
  }
  return m
}

/** ap_parse_mask_str(): the first character chooses the relative or the absolute grammar. */
export function parseApMask (buf: string, current: Mask, what = 'mask'): Mask {
  const c = cstr(buf)[0]
  return c === '+' || c === '-' ? modifyMask(buf, current, what) : hex2mask(buf, what)
}

/** The QCI mask attributes: `0x` + eight 8-digit groups (same 64 digits as toHex). */
export function qciMaskText (m: Mask | undefined): string {
  return m === undefined ? 'not supported\n' : m.toHex() + '\n'
}
