/**
 * Fault injection for users (in the spirit of scsi_debug/netdevsim knobs and undici's
 * MockAgent): rules that make matching operations on the tree fail with an errno, once, N
 * times, always or with a seeded probability, optionally after a delay. Every injected
 * failure is recorded (`history`) and announced to `onInject`, so nobody mistakes it for a
 * model bug.
 */
import { fail, type Errno } from './errors.js'

/** Where the control tree lives (also in control.ts, which imports this module). */
export const CONTROL_PATH = 'kernel/debug/apsim'

export type FaultOp = 'open' | 'read' | 'write'

export interface FaultSpec {
  /** Glob over tree paths as the filesystem sees them (links resolved): `*` within a name, `**` across names. */
  path: string
  op: FaultOp | 'any'
  /** The errno to fail with; none makes a delay-only rule. */
  errno?: Errno
  /** Only writes whose data (without one trailing newline) equals this. */
  match?: string
  /** How many times the rule fires; undefined: every time. */
  times?: number
  /** Fire with this probability (0..1), drawn from a PRNG seeded with `seed`. */
  probability?: number
  seed?: number
  /** Milliseconds a write waits before it fails or proceeds. */
  delayMs?: number
}

export interface FaultRule extends FaultSpec { id: number, hits: number }

export interface Injection { seq: number, rule: number, op: FaultOp, path: string, errno?: Errno, delayMs?: number }

const ERRNOS: readonly Errno[] = ['EACCES', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EBUSY', 'EEXIST', 'EINVAL', 'EIO', 'ENODEV', 'ENOENT', 'ENOMEM', 'ENOSPC', 'EOPNOTSUPP', 'EPERM', 'ERANGE', 'EUSERS', 'EAGAIN', 'EINTR', 'ETIMEDOUT']

/** One step of a compiled glob: a literal byte, `?` (one byte of a name), `*` (a run within a name), `**` (any run). */
type GlobStep = string | '?' | '*' | '**'

function compileGlob (glob: string): GlobStep[] {
  const steps: GlobStep[] = []
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*' && glob[i + 1] === '*') { i++; if (steps.at(-1) !== '**') steps.push('**') } else if (c === '*') { if (steps.at(-1) !== '*' && steps.at(-1) !== '**') steps.push('*') } else steps.push(c)
  }
  return steps
}

/**
 * Whether `path` matches the compiled glob: the glob run as an NFA over the path, one set of
 * live steps per byte, so the cost is O(path length x glob length) whatever the pattern (a
 * backtracking regex of twenty `**` takes exponential time on a path that does not match).
 */
export function globMatch (steps: GlobStep[], path: string): boolean {
  const n = steps.length
  let live = new Uint8Array(n + 1)
  let next = new Uint8Array(n + 1)
  // A star may match nothing: a live star makes the step after it live too.
  const close = (set: Uint8Array): void => {
    for (let k = 0; k < n; k++) if (set[k] === 1 && (steps[k] === '*' || steps[k] === '**')) set[k + 1] = 1
  }
  live[0] = 1
  close(live)
  for (let i = 0; i < path.length; i++) {
    const c = path[i]
    next.fill(0)
    let any = false
    for (let k = 0; k < n; k++) {
      if (live[k] === 0) continue
      const s = steps[k]
      if (s === '**' || (s === '*' && c !== '/')) { next[k] = 1; any = true } else if ((s === '?' && c !== '/') || s === c) { next[k + 1] = 1; any = true }
    }
    if (!any) return false
    close(next)
    const done = live
    live = next
    next = done
  }
  return live[n] === 1
}

/** mulberry32: small, seedable, good enough to make a probability reproducible. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Live { rule: FaultRule, glob: GlobStep[], random?: () => number }

export class Faults {
  private readonly rules: Live[] = []
  private nextId = 1
  private readonly injected: Injection[] = []
  private seq = 0

  constructor (private readonly onInject?: (i: Injection) => void, readonly sleep?: (ms: number) => Promise<void>) {}

  add (spec: FaultSpec): FaultRule {
    const path = spec.path.replace(/^\/+/, '')
    if (path === '') fail('EINVAL', 'fault: a path glob is required')
    if (!['open', 'read', 'write', 'any'].includes(spec.op)) fail('EINVAL', `fault: op must be open, read, write or any, got ${JSON.stringify(spec.op)}`)
    if (spec.errno !== undefined && !ERRNOS.includes(spec.errno)) fail('EINVAL', `fault: unknown errno ${JSON.stringify(spec.errno)} (one of ${ERRNOS.join(', ')})`)
    if (spec.errno === undefined && spec.delayMs === undefined) fail('EINVAL', 'fault: give an errno, a delay, or both')
    if (spec.times !== undefined && (!Number.isInteger(spec.times) || spec.times < 1)) fail('EINVAL', 'fault: times must be a positive integer')
    if (spec.probability !== undefined && !(spec.probability >= 0 && spec.probability <= 1)) fail('EINVAL', 'fault: probability must be between 0 and 1')
    if (spec.delayMs !== undefined && (!Number.isInteger(spec.delayMs) || spec.delayMs < 0 || spec.delayMs > 600000)) fail('EINVAL', 'fault: delay must be 0..600000 ms')
    if (spec.delayMs !== undefined && spec.op !== 'write') fail('EINVAL', 'fault: a delay applies to writes only')
    if (spec.delayMs !== undefined && this.sleep === undefined) fail('EOPNOTSUPP', 'fault: this host has no timer for delays')
    if (spec.match !== undefined && spec.op !== 'write') fail('EINVAL', 'fault: match applies to writes only')
    const rule: FaultRule = { ...spec, path, id: this.nextId++, hits: 0 }
    this.rules.push({ rule, glob: compileGlob(path), random: spec.probability === undefined ? undefined : prng(spec.seed ?? 0) })
    return { ...rule }
  }

  list (): FaultRule[] { return this.rules.map(l => ({ ...l.rule })) }

  /** Removes one rule (ENOENT if unknown) or all. */
  clear (id?: number): void {
    if (id === undefined) { this.rules.length = 0; return }
    const i = this.rules.findIndex(l => l.rule.id === id)
    if (i < 0) fail('ENOENT', `fault: no rule ${id}`)
    this.rules.splice(i, 1)
  }

  /** Rules with `times` left: what a test expected to happen but did not (MockAgent's pending interceptors). */
  pending (): FaultRule[] { return this.list().filter(r => r.times !== undefined && r.hits < r.times) }

  history (): Injection[] { return [...this.injected] }

  /** As on a fresh host: no rules, no history, ids from 1 again. */
  reset (): void {
    this.rules.length = 0
    this.injected.length = 0
    this.nextId = 1
    this.seq = 0
  }

  /** The rule that fires for this operation, if any (and counts it). */
  check (op: FaultOp, path: string, data?: string): Injection | undefined {
    const p = path.replace(/^\/+/, '')
    // The control tree stays usable whatever the rules say (a rule must remain clearable).
    if (p.startsWith(`${CONTROL_PATH}/`)) return undefined
    for (const l of this.rules) {
      const r = l.rule
      if (r.op !== 'any' && r.op !== op) continue
      if (!globMatch(l.glob, p)) continue
      if (r.match !== undefined && (data === undefined || data.replace(/\n$/, '') !== r.match)) continue
      if (r.times !== undefined && r.hits >= r.times) continue
      if (l.random !== undefined && l.random() >= (r.probability ?? 1)) continue
      r.hits++
      const inj: Injection = { seq: ++this.seq, rule: r.id, op, path: p, errno: r.errno, delayMs: r.delayMs }
      this.injected.push(inj)
      if (this.injected.length > 10000) this.injected.shift()
      this.onInject?.(inj)
      return inj
    }
    return undefined
  }
}

/** Text form of a rule for the control file: the same words `parseFaultSpec` reads. */
export function faultText (r: FaultRule): string {
  const words = [`${r.id}`, r.op, r.path, r.errno ?? '-']
  if (r.times !== undefined) words.push(`times=${r.times}`)
  if (r.probability !== undefined) words.push(`probability=${r.probability}`, `seed=${r.seed ?? 0}`)
  if (r.match !== undefined) words.push(`match=${r.match}`)
  if (r.delayMs !== undefined) words.push(`delay=${r.delayMs}`)
  words.push(`hits=${r.hits}`)
  return words.join(' ')
}

/** `OP PATHGLOB ERRNO|- [times=N] [probability=P] [seed=S] [match=VALUE] [delay=MS]` */
export function parseFaultSpec (text: string): FaultSpec {
  const [op, path, errno, ...opts] = text.trim().split(/\s+/)
  if (op === undefined || path === undefined || errno === undefined) fail('EINVAL', 'fault: expected "OP PATHGLOB ERRNO [times=N] [probability=P] [seed=S] [match=VALUE] [delay=MS]"')
  const spec: FaultSpec = { op: op as FaultSpec['op'], path, errno: errno === '-' ? undefined : errno as Errno }
  for (const o of opts) {
    const eq = o.indexOf('=')
    const [k, v] = eq < 0 ? [o, ''] : [o.slice(0, eq), o.slice(eq + 1)]
    const num = (): number => { const n = Number(v); if (v === '' || !Number.isFinite(n)) fail('EINVAL', `fault: ${k} needs a number, got ${JSON.stringify(v)}`); return n }
    switch (k) {
      case 'times': spec.times = num(); break
      case 'probability': spec.probability = num(); break
      case 'seed': spec.seed = num(); break
      case 'match': spec.match = v; break
      case 'delay': spec.delayMs = num(); break
      default: fail('EINVAL', `fault: unknown option ${JSON.stringify(k)}`)
    }
  }
  return spec
}
