/**
 * What the kernel tells user space besides sysfs contents: the kernel log (dmesg) and
 * uevents. Both are bounded rings with live subscribers; time comes from the caller's clock
 * so the model stays pure.
 */
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

/**
 * kobject_synth_uevent: what writing to a `uevent` file does. `ACTION [UUID [KEY=VALUE ...]]`
 * re-sends the object's event with SYNTH_UUID (and SYNTH_ARG_ variables); anything else is
 * EINVAL. Returns the event, or the errno text for a bad buffer.
 */
export function synthUevent (log: UeventLog, devpath: string, subsystem: string, env: Array<[string, string]>, buf: string): Uevent | string {
  const nul = buf.indexOf('\0')
  const s = (nul < 0 ? buf : buf.slice(0, nul)).replace(/\n$/, '')
  const [action, uuid, ...vars] = s.split(' ')
  if (!SYNTH_ACTIONS.includes(action as UeventAction)) return `uevent: unknown action ${JSON.stringify(action)}`
  const extra: Array<[string, string]> = [['SYNTH_UUID', uuid ?? '0']]
  for (const v of vars) {
    const eq = v.indexOf('=')
    if (eq <= 0) return `uevent: bad variable ${JSON.stringify(v)}`
    extra.push([`SYNTH_ARG_${v.slice(0, eq)}`, v.slice(eq + 1)])
  }
  return log.emit(action as UeventAction, devpath, subsystem, [...extra, ...env])
}
