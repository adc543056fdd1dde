/**
 * The control plane: what a test changes about the world around the simulated host — the
 * machine's AP configuration (what the HMC, SE or SCLP do), guests starting and stopping on
 * mdevs (what QEMU does), snapshots — and the control tree that exposes it inside the mount
 * at `kernel/debug/apsim/`, where debugfs lives on a real host. The library API is Host's
 * methods; the control files and the CLI only parse text into the same calls.
 */
import { fail, isSysfsError } from './errors.js'
import { formatKlog } from './events.js'
import { CONTROL_PATH, faultText, parseFaultSpec } from './faults.js'
import { kstrtoull } from './parse.js'
import { stateText } from './state.js'
import { DirType, type DirNode, type Node, type StoreResult } from './sysfs.js'
import { ADAPTER_TYPES, type AdapterMode } from './topology.js'
import type { NewAdapter } from './ap/lpar.js'
import type { Host } from './host.js'

export { CONTROL_PATH }


/** One change to the machine's AP configuration. */
export type LparCommand =
  | { op: 'add-adapter', adapter: NewAdapter }
  | { op: 'remove-adapter' | 'add-usage-domain' | 'remove-usage-domain' | 'add-control-domain' | 'remove-control-domain', id: number }
  | { op: 'configure' | 'checkstop', id: number, on: boolean }
  | { op: 'scan' }

const MODES: readonly AdapterMode[] = ['accel', 'cca', 'ep11']

export const LPAR_USAGE = [
  'add-adapter ID TYPE MODE     TYPE: CEX4..CEX8 or a raw type number; MODE: accel, cca, ep11',
  'remove-adapter ID',
  'configure ID on|off',
  'checkstop ID on|off',
  'add-usage-domain ID, remove-usage-domain ID, add-control-domain ID, remove-control-domain ID',
  'scan'
]

function id (word: string | undefined, what: string): number {
  if (word === undefined) fail('EINVAL', `${what} is missing`)
  let v: bigint
  try { v = kstrtoull(word) } catch { return fail('EINVAL', `${what} ${JSON.stringify(word)} is not a number`) }
  if (v > 255n) fail('EINVAL', `${what} ${v} is not in 0..255`)
  return Number(v)
}

function onOff (word: string | undefined): boolean {
  if (word === 'on' || word === '1') return true
  if (word === 'off' || word === '0') return false
  return fail('EINVAL', `expected on or off, got ${JSON.stringify(word ?? '')}`)
}

/** Parses the control grammar (one command per line, `#` comments). */
export function parseLparCommands (text: string): LparCommand[] {
  const cmds: LparCommand[] = []
  for (const raw of text.split('\n')) {
    const words = raw.replace(/#.*/, '').trim().split(/\s+/).filter(w => w !== '')
    if (words.length === 0) continue
    const [op, a, b, c] = words
    const expect = (n: number): void => { if (words.length !== n) fail('EINVAL', `${op}: expected ${n - 1} argument(s) in ${JSON.stringify(raw)}`) }
    switch (op) {
      case 'add-adapter': {
        expect(4)
        const mode = c as AdapterMode
        if (!MODES.includes(mode)) fail('EINVAL', `add-adapter: mode must be accel, cca or ep11, got ${JSON.stringify(c)}`)
        const adapter: NewAdapter = { id: id(a, 'adapter'), mode }
        if (ADAPTER_TYPES.includes(b)) adapter.type = b as NewAdapter['type']
        else if (/^[0-9]/.test(b)) adapter.rawType = id(b, 'adapter type')
        else fail('EINVAL', `add-adapter: type must be one of ${ADAPTER_TYPES.join(', ')} or a raw type number, got ${JSON.stringify(b)}`)
        cmds.push({ op, adapter })
        break
      }
      case 'configure': case 'checkstop':
        expect(3)
        cmds.push({ op, id: id(a, 'adapter'), on: onOff(b) })
        break
      case 'remove-adapter': case 'add-usage-domain': case 'remove-usage-domain': case 'add-control-domain': case 'remove-control-domain':
        expect(2)
        cmds.push({ op, id: id(a, op === 'remove-adapter' ? 'adapter' : 'domain') })
        break
      case 'scan':
        expect(1)
        cmds.push({ op })
        break
      default:
        fail('EINVAL', `unknown command ${JSON.stringify(op)}; commands: ${LPAR_USAGE.join('; ')}`)
    }
  }
  return cmds
}

export const GUEST_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

export interface GuestInfo { name: string, mdev: string, se: boolean, apcb: { apm: string, aqm: string, adm: string }, updates: number }

/**
 * The control tree. Writes that fail leave their reason in `last_error` (the errno alone
 * cannot say why).
 */
export function controlTree (host: Host): DirNode {
  const remember = (e: unknown): never => {
    if (isSysfsError(e)) host.lastError = `${e.code}: ${e.why}\n`
    throw e
  }
  const guarded = (fn: (buf: string) => StoreResult) => (_h: Host, buf: string): StoreResult => {
    try {
      const r = fn(buf)
      return r === undefined ? r : r.catch(remember)
    } catch (e) {
      return remember(e)
    }
  }
  const jsonLines = (items: unknown[]): string => items.map(i => JSON.stringify(i) + '\n').join('')
  const unbounded = Number.MAX_SAFE_INTEGER

  // By guest name, not by a GuestInfo of the moment: files show the guest as it is when read,
  // and an open file stays the same file while the guest runs.
  const info = (name: string): GuestInfo | undefined => host.guest(name)
  const guestDir = new DirType<string>([
    { name: 'mdev', mode: 0o400, show: n => { const g = info(n); return g === undefined ? '' : `${g.mdev}\n` } },
    { name: 'apcb', mode: 0o400, show: n => { const g = info(n); return g === undefined ? '' : `${g.apcb.apm},${g.apcb.aqm},${g.apcb.adm}\n` } },
    { name: 'updates', mode: 0o400, show: n => { const g = info(n); return g === undefined ? '' : `${g.updates}\n` } },
    { name: 'sys', dir: n => host.guestView(n) }
  ])

  return new DirType<Host>([
    { name: 'dmesg', mode: 0o400, limit: unbounded, show: h => h.klog.records().map(r => formatKlog(r) + '\n').join('') },
    { name: 'kmsg', mode: 0o400, limit: unbounded, show: h => jsonLines(h.klog.records()) },
    { name: 'uevents', mode: 0o400, limit: unbounded, show: h => jsonLines(h.uevents.records()) },
    {
      name: 'lpar',
      mode: 0o600,
      limit: unbounded,
      show: h => h.lparText(),
      store: guarded(buf => host.changeLpar(parseLparCommands(buf.replace(/\0.*$/s, ''))))
    },
    {
      name: 'guests',
      mode: 0o600,
      limit: unbounded,
      show: h => h.guests().map(g => `${g.name} ${g.mdev}${g.se ? ' se' : ''}\n`).join(''),
      store: guarded(buf => {
        const words = buf.replace(/\0.*$/s, '').trim().split(/\s+/)
        if (words[0] === 'start' && (words.length === 3 || (words.length === 4 && words[3] === 'se'))) host.startGuest(words[1], words[2], words.length === 4)
        else if (words[0] === 'stop' && words.length === 2) host.stopGuest(words[1])
        else fail('EINVAL', `expected "start NAME UUID", "start NAME UUID se" or "stop NAME", got ${JSON.stringify(buf)}`)
      })
    },
    {
      name: 'guest',
      dir: h => new DirType<Host>([{
        kind: 'dir',
        names: hh => hh.guests().map(g => g.name),
        lookup: (hh, name): Node | undefined => {
          return hh.guest(name) !== undefined ? guestDir.instance(name) : undefined
        }
      }]).instance(h)
    },
    { name: 'state', mode: 0o400, limit: unbounded, show: h => stateText(h.snapshot()) },
    { name: 'restore', mode: 0o200, store: guarded(buf => host.restoreFrom(buf.replace(/\0.*$/s, '').replace(/\n$/, ''))) },
    { name: 'reset', mode: 0o200, store: guarded(buf => host.resetFrom(buf.replace(/\0.*$/s, '').replace(/\n$/, ''))) },
    {
      name: 'faults',
      mode: 0o600,
      limit: unbounded,
      show: h => h.faults.list().map(r => faultText(r) + '\n').join(''),
      store: guarded(buf => {
        const text = buf.replace(/\0.*$/s, '').trim()
        const [verb, ...rest] = text.split(/\s+/)
        if (verb === 'add') host.faults.add(parseFaultSpec(rest.join(' ')))
        else if (verb === 'clear' && rest.length === 0) host.faults.clear()
        else if (verb === 'clear' && rest.length === 1 && /^[1-9][0-9]*$/.test(rest[0])) host.faults.clear(Number(rest[0]))
        else fail('EINVAL', `expected "add OP PATHGLOB ERRNO [options]", "clear" or "clear ID", got ${JSON.stringify(text)}`)
      })
    },
    { name: 'fault_history', mode: 0o400, limit: unbounded, show: h => jsonLines(h.faults.history()) },
    { name: 'last_error', mode: 0o400, show: h => h.lastError }
  ]).instance(host)
}

/** Wraps a tree so that it reads like a different root: links re-rooted under `prefix`, attributes as they are. */
export function rerootedView (node: DirNode, prefix: string): DirNode {
  const wrap = (n: Node): Node => {
    switch (n.kind) {
      case 'link': return { kind: 'link', target: `${prefix}/${n.target}` }
      case 'attr': return n
      case 'dir': return { kind: 'dir', mode: n.mode, entries: () => n.entries(), lookup: name => { const c = n.lookup(name); return c === undefined ? undefined : wrap(c) } }
    }
  }
  return wrap(node) as DirNode
}

