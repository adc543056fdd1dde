/**
 * What the kernel tells user space besides sysfs contents: the kernel log (dmesg) and
 * uevents. Both are bounded rings with live subscribers; time comes from the caller's clock
 * so the model stays pure.
 */
import { fail } from './errors.js'

export type KlogLevel = 'err' | 'warn' | 'notice' | 'info'

export interface KlogRecord { seq: number, usec: number, level: KlogLevel, text: string }

/** The kernel's actions, plus `fault`: an injected failure, which only the simulator reports. */
export type UeventAction = 'add' | 'remove' | 'change' | 'move' | 'online' | 'offline' | 'bind' | 'unbind' | 'fault'

export interface Uevent {
  seq: number
  usec: number
  action: UeventAction
  /** `/devices/...` as in the kernel's DEVPATH. */
  devpath: string
  subsystem: string
  /** Extra variables in emission order (DEVTYPE, DRIVER, APMASK, ...). */
  env: Array<[string, string]>
}

/** A bounded ring: the oldest records drop out once `capacity` is reached. */
class Ring<T extends { seq: number }> {
  private readonly items: T[] = []
  /** Index of the oldest record once the ring is full. */
  private head = 0
  private readonly subscribers = new Set<(item: T) => void>()
  private seq = 0

  constructor (private readonly capacity: number) {}

  protected push (make: (seq: number) => T): T {
    if (this.muted) return make(0)
    const item = make(++this.seq)
    if (this.items.length < this.capacity) {
      this.items.push(item)
    } else {
      this.items[this.head] = item
      this.head = (this.head + 1) % this.capacity
    }
    for (const fn of this.subscribers) fn(item)
    return item
  }

  /** While muted (a restore replaying a boot), nothing is recorded. */
  muted = false

  /** Replaces the contents, as a restore does. */
  load (items: T[]): void {
    this.items.splice(0, this.items.length, ...items.slice(-this.capacity))
    this.head = 0
    this.seq = items.at(-1)?.seq ?? 0
  }

  /** The kept records newer than `sinceSeq`, oldest first. */
  records (sinceSeq = 0): T[] {
    const ordered = this.head === 0 ? this.items : [...this.items.slice(this.head), ...this.items.slice(0, this.head)]
    return ordered.filter(i => i.seq > sinceSeq)
  }

  subscribe (fn: (item: T) => void): () => void {
    this.subscribers.add(fn)
    return () => { this.subscribers.delete(fn) }
  }
}

export type Clock = () => number

export class KernelLog extends Ring<KlogRecord> {
  constructor (private readonly clockUsec: Clock, capacity = 8192) { super(capacity) }

  log (level: KlogLevel, text: string): KlogRecord {
    return this.push(seq => ({ seq, usec: this.clockUsec(), level, text }))
  }

  warn (text: string): KlogRecord { return this.log('warn', text) }
  info (text: string): KlogRecord { return this.log('info', text) }
}

/** `[    1.234567] text`, as dmesg prints a record. */
export function formatKlog (r: KlogRecord): string {
  const sec = Math.floor(r.usec / 1e6)
  const frac = String(r.usec % 1e6).padStart(6, '0')
  return `[${String(sec).padStart(5, ' ')}.${frac}] ${r.text}`
}

export class UeventLog extends Ring<Uevent> {
  constructor (private readonly clockUsec: Clock, capacity = 65536) { super(capacity) }

  emit (action: UeventAction, devpath: string, subsystem: string, env: Array<[string, string]> = []): Uevent {
    return this.push(seq => ({ seq, usec: this.clockUsec(), action, devpath, subsystem, env }))
  }
}

const SYNTH_ACTIONS: readonly UeventAction[] = ['add', 'remove', 'change', 'move', 'online', 'offline', 'bind', 'unbind']

/** Whose `uevent` file a store went to, as kobject_synth_uevent and the store around it see it. */
export interface SynthTarget {
  devpath: string
  /** The event's SUBSYSTEM; undefined when the kset's filter drops the object's events (a root device without bus or class). */
  subsystem: string | undefined
  /** The object's own variables (dev_uevent and the bus's or class's uevent callback). */
  env: Array<[string, string]>
  /**
   * A device's `uevent` (uevent_store): `DRIVER-OR-BUS NAME`, the prefix of its dev_err line.
   * Bus and driver `uevent` files return the error without a line of their own.
   */
  device?: string
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
/** The kernel's isalnum(): its ctype table counts Latin-1's letters (not × or ÷) as letters. */
const ALNUM = /^[A-Za-z0-9\xc0-\xd6\xd8-\xf6\xf8-\xff]+$/

/** One trailing newline or NUL is ignored (kobject_action_type, kobject_action_args). */
const chompOne = (s: string): string => s.endsWith('\n') || s.endsWith('\0') ? s.slice(0, -1) : s

/** kobject_action_args: `UUID [KEY=VALUE ...]`, keys and values alphanumeric; undefined when malformed. */
function synthArgs (text: string): Array<[string, string]> | undefined {
  const s = chompOne(text)
  if (s.length < 36 || !UUID.test(s.slice(0, 36))) return undefined
  const env: Array<[string, string]> = [['SYNTH_UUID', s.slice(0, 36)]]
  const rest = s.slice(36)
  if (rest === '') return env
  if (!rest.startsWith(' ')) return undefined
  for (const pair of rest.slice(1).split(' ')) {
    const eq = pair.indexOf('=')
    if (eq <= 0 || !ALNUM.test(pair.slice(0, eq)) || !ALNUM.test(pair.slice(eq + 1))) return undefined
    env.push([`SYNTH_ARG_${pair.slice(0, eq)}`, pair.slice(eq + 1)])
  }
  return env
}

/**
 * kobject_synth_uevent: what writing to a `uevent` file does. `ACTION [UUID [KEY=VALUE ...]]`
 * re-sends the object's event with SYNTH_UUID (and SYNTH_ARG_ variables). A bad buffer is
 * EINVAL and leaves the kernel's warning (and, for a device, uevent_store's error line; with
 * the error code when `logRc`, 6.1 on).
 */
export function synthUevent (log: UeventLog, klog: KernelLog, t: SynthTarget, buf: string, logRc: boolean): void {
  const s = chompOne(buf)
  const sp = s.indexOf(' ')
  const action = sp < 0 ? s : s.slice(0, sp)
  let why: string | undefined
  let extra: Array<[string, string]> | undefined = [['SYNTH_UUID', '0']]
  if (!SYNTH_ACTIONS.includes(action as UeventAction)) why = 'unknown uevent action string'
  else if (sp >= 0 && (extra = synthArgs(buf.slice(sp + 1))) === undefined) why = 'incorrect uevent action arguments'
  if (why !== undefined) {
    klog.warn(`synth uevent: ${t.devpath}: ${why}`)
    if (t.device !== undefined) klog.log('err', `${t.device}: uevent: failed to send synthetic uevent${logRc ? ': -22' : ''}`)
    fail('EINVAL', `uevent: ${why}: ${JSON.stringify(buf)}`)
  }
  if (t.subsystem !== undefined) log.emit(action as UeventAction, t.devpath, t.subsystem, [...extra!, ...t.env])
}
