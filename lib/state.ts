/**
 * Snapshots and state files as untrusted input: one schema checks every field of a
 * `HostState` (types, ranges, UUID and mask syntax, byte strings) and builds a fresh value from
 * the checked fields only, so nothing the file says reaches the model unchecked: no
 * `__proto__`/`constructor`/`prototype` keys, no link built from anything but a checked
 * number. A refusal is EINVAL naming the field (`vfio.mdevs[0].iommuGroup: ...`).
 *
 * Each field is declared once, below; `Fields<T>` makes the compiler insist that every field
 * of the state's interfaces has its check.
 */
import type { BusState } from './ap/bus.js'
import type { ZcdnState } from './ap/zcdn.js'
import type { GuestState } from './guest.js'
import { fail } from './errors.js'
import type { KlogRecord, Uevent } from './events.js'
import { GUEST_NAME } from './control.js'
import type { HostState } from './host.js'
import { topologyData, topologyFrom, TopologyError } from './topology.js'
import { UUID_RE, type ApcbState, type VfioState } from './vfio/vfio-ap.js'

/** Checks `v` (found at `field`) and returns the value to use; throws EINVAL otherwise. */
type Check<T> = (v: unknown, field: string) => T
type Fields<T> = { [K in keyof T]-?: Check<T[K]> }

const RESERVED = new Set(['__proto__', 'constructor', 'prototype'])
/** The longest string a state holds: one store is at most a page. */
const MAX_TEXT = 4096

const shown = (v: unknown): string => {
  let s: string | undefined
  try { s = JSON.stringify(v) } catch { /* a cycle, a bigint */ }
  s ??= typeof v
  return s.length > 40 ? `${s.slice(0, 40)}...` : s
}
function refuse (field: string, why: string): never { return fail('EINVAL', `state: ${field === '' ? '(top level)' : field}: ${why}`) }
const at = (field: string, key: string | number): string => typeof key === 'number' ? `${field}[${key}]` : field === '' ? key : `${field}.${key}`

function obj<T> (fields: Fields<T>): Check<T> {
  const table = fields as Record<string, Check<unknown>>
  const names = Object.keys(table)
  return (v, field) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) refuse(field, `must be an object, got ${shown(v)}`)
    const o = v as Record<string, unknown>
    for (const k of Object.keys(o)) {
      if (!Object.hasOwn(table, k)) refuse(at(field, k), RESERVED.has(k) ? 'a reserved key' : `unknown field (allowed: ${names.join(', ')})`)
    }
    const out: Record<string, unknown> = {}
    for (const k of names) {
      const x = table[k](Object.hasOwn(o, k) ? o[k] : undefined, at(field, k))
      if (x !== undefined) out[k] = x
    }
    return out as T
  }
}

const int = (min: number, max: number): Check<number> => (v, field) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) refuse(field, `must be an integer between ${min} and ${max}, got ${shown(v)}`)
  return v
}
const bool: Check<boolean> = (v, field) => typeof v === 'boolean' ? v : refuse(field, `must be true or false, got ${shown(v)}`)
const oneOf = <T extends string | number>(...values: readonly T[]): Check<T> => (v, field) =>
  values.includes(v as T) ? v as T : refuse(field, `must be one of ${values.map(x => JSON.stringify(x)).join(', ')}, got ${shown(v)}`)
/** A string of bytes (the model keeps what a store wrote as latin1: no character above 0xff). */
const bytes = (re?: RegExp, what = 'a string'): Check<string> => (v, field) => {
  if (typeof v !== 'string' || v.length > MAX_TEXT || !/^[\0-\xff]*$/.test(v)) refuse(field, `must be ${what} of at most ${MAX_TEXT} bytes, got ${shown(v)}`)
  if (re !== undefined && !re.test(v)) refuse(field, `must be ${what}, got ${shown(v)}`)
  return v
}
const nullable = <T>(c: Check<T>): Check<T | null> => (v, field) => v === null ? null : c(v, field)
const optional = <T>(c: Check<T>): Check<T | undefined> => (v, field) => v === undefined ? undefined : c(v, field)
const list = <T>(c: Check<T>): Check<T[]> => (v, field) => {
  if (!Array.isArray(v)) refuse(field, `must be a list, got ${shown(v)}`)
  return (v as unknown[]).map((x, i) => c(x, at(field, i)))
}
const pair = <A, B>(a: Check<A>, b: Check<B>): Check<[A, B]> => (v, field) => {
  if (!Array.isArray(v) || v.length !== 2) refuse(field, `must be a pair, got ${shown(v)}`)
  return [a((v as unknown[])[0], at(field, 0)), b((v as unknown[])[1], at(field, 1))]
}
/** An object used as a map: every key checked, reserved keys refused. */
const record = <T>(key: Check<string>, c: Check<T>): Check<Record<string, T>> => (v, field) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) refuse(field, `must be an object, got ${shown(v)}`)
  const out = new Map<string, T>()
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (RESERVED.has(k)) refuse(at(field, k), 'a reserved key')
    out.set(key(k, `${field} key ${shown(k)}`), c(x, at(field, k)))
  }
  return Object.fromEntries(out)
}

const decimal = bytes(/^(0|[1-9][0-9]{0,19})$/, 'a decimal number in a string')
const mask = bytes(/^0x[0-9a-f]{64}$/, 'a 256-bit mask (0x and 64 hex digits)')
const id = int(0, 255)
const group = int(0, 2 ** 31 - 1)
const devpath = bytes(/^\/[^\0]*$/, 'a device path')
const driver = nullable(oneOf('cex4card', 'cex4queue', 'vfio_ap'))

// control.ts imports this module: its GUEST_NAME is only looked at when a state is checked.
const guestName: Check<string> = (v, field) => bytes(GUEST_NAME, 'a guest name')(v, field)

const apcb = obj<ApcbState>({ apm: mask, aqm: mask, adm: mask })

/** The topology part: the topology file's own validation, then its normal form. */
const topology: Check<Record<string, unknown>> = (v, field) => {
  try {
    return topologyData(topologyFrom(v))
  } catch (e) {
    if (e instanceof TopologyError) return refuse(at(field, e.field), e.reason)
    throw e
  }
}

const bus = obj<BusState>({
  apmask: mask,
  aqmask: mask,
  apDomain: int(-1, 255),
  configTime: int(5, 120),
  pollTimeout: decimal,
  pollThread: bool,
  driversAutoprobe: bool,
  scans: decimal,
  bindingsCompleteCount: decimal,
  bindingsDone: bool,
  masksInUse: bool,
  cards: list(obj<BusState['cards'][number]>({ id, driver, zcryptOnline: bool, config: bool, chkstop: bool, requestCount: decimal })),
  queues: list(obj<BusState['queues'][number]>({
    apid: id,
    apqi: id,
    driver,
    zcryptOnline: bool,
    driverOverride: nullable(bytes()),
    devState: oneOf('uninitiated', 'operating', 'shutdown', 'error'),
    smState: oneOf('reset_start', 'idle'),
    config: bool,
    chkstop: bool,
    requestCount: decimal,
    resets: int(0, Number.MAX_SAFE_INTEGER),
    resetResult: oneOf('normal', 'deconfigured', 'checkstopped', 'failed'),
    seBind: optional(oneOf('usable', 'usable-no-secure-key', 'available', 'unusable')),
    assocIdx: optional(nullable(int(0, 0xffff)))
  }))
})

const vfio = obj<VfioState>({
  host: apcb,
  mdevs: list(obj<VfioState['mdevs'][number]>({
    uuid: bytes(UUID_RE, 'a UUID'),
    iommuGroup: group,
    matrix: apcb,
    shadow: apcb,
    guest: nullable(guestName),
    guestApcb: nullable(apcb),
    guestUpdates: int(0, Number.MAX_SAFE_INTEGER),
    removing: bool
  })),
  freedGroups: list(group),
  nextGroup: group
})

const seq = int(1, Number.MAX_SAFE_INTEGER)
const usec = int(0, Number.MAX_SAFE_INTEGER)

/** A zcrypt device node's name as the kernel keeps it: any bytes but `/` (stored as `!`) and NUL, at most 31. */
const zcdnName = bytes(/^(?!\.\.?$|create$|destroy$)[^/\0]{1,31}$/, 'a zcrypt node name')

const zcdn = obj<ZcdnState>({
  nodes: list(obj<ZcdnState['nodes'][number]>({ name: zcdnName, minor: id, ioctlmask: mask, apmask: mask, aqmask: mask, admask: mask }))
})

const hostState: Check<HostState> = (v, field) => hostStateFields(v, field)

/** A running guest's own kernel: a host state of its own (which has no guests). */
const guest = obj<GuestState>({ name: guestName, se: bool, updates: int(0, Number.MAX_SAFE_INTEGER), state: hostState })

const hostStateFields = obj<HostState>({
  format: oneOf('apsim-state'),
  version: oneOf(1),
  topology,
  bus,
  vfio: nullable(vfio),
  klog: list(obj<KlogRecord>({ seq, usec, level: oneOf('err', 'warn', 'notice', 'info'), text: bytes() })),
  uevents: list(obj<Uevent>({
    seq,
    usec,
    action: oneOf('add', 'remove', 'change', 'move', 'online', 'offline', 'bind', 'unbind', 'fault'),
    devpath,
    subsystem: bytes(/^[a-z_]{1,32}$/, 'a subsystem name'),
    env: list(pair(bytes(/^[^=]+$/, 'a variable name'), bytes()))
  })),
  power: optional(record(devpath, oneOf('on' as const))),
  zcdn: optional(zcdn),
  guests: optional(list(guest))
})

/** `field` must not repeat a value. */
function unique<T> (items: T[], value: (x: T) => unknown, field: (i: number) => string): void {
  const seen = new Set<unknown>()
  items.forEach((x, i) => {
    const v = value(x)
    if (v === undefined) return
    if (seen.has(v)) refuse(field(i), `${shown(v)} appears twice`)
    seen.add(v)
  })
}

/** Records in the order they were made (the rings go on numbering from the last). */
function ascending (items: Array<{ seq: number }>, field: string): void {
  items.forEach((x, i) => { if (i > 0 && x.seq <= items[i - 1].seq) refuse(`${field}[${i}].seq`, `must be above the previous record's ${items[i - 1].seq}`) })
}

/** The checked copy of an untrusted snapshot; EINVAL naming the first bad field. */
export function parseHostState (v: unknown): HostState {
  const s = hostState(v, '')
  unique(s.bus.cards, c => c.id, i => `bus.cards[${i}].id`)
  unique(s.bus.queues, q => `${q.apid}.${q.apqi}`, i => `bus.queues[${i}]`)
  if (s.vfio !== null) {
    const mdevs = s.vfio.mdevs
    unique(mdevs, m => m.uuid.toLowerCase(), i => `vfio.mdevs[${i}].uuid`)
    unique([...mdevs.map(m => m.iommuGroup), ...s.vfio.freedGroups], g => g, i => i < mdevs.length ? `vfio.mdevs[${i}].iommuGroup` : `vfio.freedGroups[${i - mdevs.length}]`)
    unique(mdevs, m => m.guest ?? undefined, i => `vfio.mdevs[${i}].guest`)
    mdevs.forEach((m, i) => { if (m.iommuGroup >= s.vfio!.nextGroup) refuse(`vfio.mdevs[${i}].iommuGroup`, `must be below nextGroup (${s.vfio!.nextGroup})`) })
  }
  if (s.zcdn !== undefined) {
    unique(s.zcdn.nodes, n => n.name, i => `zcdn.nodes[${i}].name`)
    unique(s.zcdn.nodes, n => n.minor, i => `zcdn.nodes[${i}].minor`)
  }
  unique(s.guests ?? [], g => g.name, i => `guests[${i}].name`)
  ascending(s.klog, 'klog')
  ascending(s.uevents, 'uevents')
  return s
}

/**
 * The bytes of a snapshot, the same for the `state` control file and `--state`: JSON with
 * every character above 0x7e escaped, so the file is ASCII (valid UTF-8 too) whatever bytes
 * the host stored, and reads back to the same strings whichever way it is decoded.
 */
export function stateText (s: HostState): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) + '\n'
}
