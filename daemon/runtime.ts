/**
 * What the CLI knows about mounts outside one process: the mount table, whether a mount is
 * live or stale, and a runtime record per mountpoint under /run/apsim (pid, topology, log).
 * Every access to a mountpoint here is asynchronous: the daemon may call these on its own
 * mount, and a synchronous access would deadlock it (fuse.md §0.7).
 */
import { createHash } from 'node:crypto'
import { execFile, execFileSync } from 'node:child_process'
import { promises as fsp, readFileSync, readdirSync, readlinkSync, mkdirSync, writeFileSync, unlinkSync } from 'node:fs'
import path from 'node:path'

export const FSTYPE = 'fuse.apsim'
/** Runtime records and udev feeds: /run/apsim for root, the user's runtime dir for others. */
export const RUN_DIR = process.env.APSIM_RUN_DIR ?? (process.getuid?.() === 0
  ? '/run/apsim'
  : process.env.XDG_RUNTIME_DIR !== undefined ? path.join(process.env.XDG_RUNTIME_DIR, 'apsim') : `/tmp/apsim-${String(process.getuid?.())}`)

/** A user-facing failure: printed as `apsim: <message>`, exit status 1, no stack. */
export class UserError extends Error {
  constructor (message: string, readonly exitCode = 1) {
    super(message)
    this.name = 'UserError'
  }
}

export interface MountEntry { id: number, mountPoint: string, fstype: string, source: string, options: string, /** `major:minor` of its st_dev. */ dev: string }

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))

export async function readMounts (): Promise<MountEntry[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8')
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const [pre, post] = line.split(' - ')
    if (post === undefined) continue
    const f = pre.split(' ')
    const g = post.split(' ')
    out.push({ id: Number(f[0]), dev: f[2], mountPoint: unescape(f[4]), options: f[5], fstype: g[0], source: unescape(g[1] ?? '') })
  }
  return out
}

/** The topmost mount whose mount point is exactly `dir` (already canonical). */
export async function mountAt (dir: string): Promise<MountEntry | undefined> {
  const all = await readMounts()
  return all.filter(m => m.mountPoint === dir).pop()
}

export const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code

/**
 * The absolute, symlink-free path of `dir`. A mount point (as the mount table names it under
 * the parent's real path) is returned without being touched: a stopped daemon would never
 * answer a stat of its root. The last component is not resolved either when it cannot be (a
 * stale FUSE mount answers ENOTCONN), which is right for a mount point.
 */
export async function canonicalDir (dir: string): Promise<string> {
  const abs = path.resolve(dir)
  const parent = path.dirname(abs)
  let real = parent
  try { real = await fsp.realpath(parent) } catch { /* keep it as given */ }
  const named = path.join(real, path.basename(abs))
  if ((await readMounts()).some(m => m.mountPoint === named)) return named
  try {
    return await fsp.realpath(abs)
  } catch {
    return named
  }
}

export type Probe =
  | { state: 'absent' }
  | { state: 'live' | 'stale' | 'hung', mount: MountEntry }

/**
 * Whether something is mounted at `dir`, and whether it answers. Never blocks for long, and
 * never leaves this process waiting on the mount: the look runs in a child (`ls`), killed
 * after `timeoutMs` (a thread of this process stuck in a FUSE request would keep it from
 * exiting).
 */
export async function probeMount (dir: string, timeoutMs = 3000): Promise<Probe> {
  const mount = await mountAt(dir)
  if (mount === undefined) return { state: 'absent' }
  // readdir, not stat: for a second after the daemon died (attr_timeout) the kernel answers a
  // stat of the root from its cache; a readdir always asks the daemon.
  const state = await new Promise<'live' | 'stale' | 'hung'>(resolve => execFile('ls', ['-f', '--', dir],
    { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, LC_ALL: 'C' } }, (err, _out, stderr) => {
      if (err === null) resolve('live')
      else if (err.killed === true) resolve('hung')
      else resolve(/Transport endpoint is not connected|Software caused connection abort|No such device or address/.test(stderr) ? 'stale' : 'live')
    }))
  return { state, mount }
}

/** Lazy unmount through fusermount; it never needs the daemon to answer. */
export async function fusermount (dir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => execFile('fusermount', ['-uz', dir], (err, _out, stderr) =>
    err !== null ? reject(new Error(`fusermount -uz ${dir}: ${stderr.trim() || err.message}`)) : resolve()))
}

/** The synchronous variant, for `exit` and `uncaughtException` handlers. Never throws. */
export function fusermountSync (dir: string): void {
  try { execFileSync('fusermount', ['-uz', dir], { stdio: 'ignore', timeout: 5000 }) } catch { /* nothing left to do */ }
}

// ---------------------------------------------------------------------------------------
// Runtime records

export interface RuntimeRecord {
  pid: number
  /** Canonical mount point. */
  dir: string
  /** The topology file, or `(default topology)`. */
  topology: string
  startedAt: string
  /** The daemon's log file when started with --daemon. */
  logFile?: string
  /** The state file (`--state`), if any. */
  state?: string
  options: string
}

const key = (dir: string): string =>
  `${path.basename(dir).replace(/[^\w.-]/g, '_') || 'root'}-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`

export const recordFile = (dir: string): string => path.join(RUN_DIR, key(dir) + '.json')
export const logFileFor = (dir: string): string => path.join(RUN_DIR, key(dir) + '.log')

export function ensureRunDir (): void { mkdirSync(RUN_DIR, { recursive: true, mode: process.getuid?.() === 0 ? 0o755 : 0o700 }) }

export function writeRecord (r: RuntimeRecord): void {
  ensureRunDir()
  writeFileSync(recordFile(r.dir), JSON.stringify(r, null, 2) + '\n')
}

export function readRecord (dir: string): RuntimeRecord | undefined {
  try { return JSON.parse(readFileSync(recordFile(dir), 'utf8')) as RuntimeRecord } catch { return undefined }
}

/** Removes the record if it is `pid`'s (or whoever's, without `pid`). */
export function removeRecord (dir: string, pid?: number): void {
  const r = readRecord(dir)
  if (r === undefined || (pid !== undefined && r.pid !== pid)) return
  try { unlinkSync(recordFile(dir)) } catch { /* already gone */ }
}

const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
const isMountCmd = (cmd: string[]): boolean =>
  cmd.some(a => /(^|\/)(cli\.js|apsim)$/.test(a)) && cmd.includes('mount') && !cmd.includes('--daemon')

/** Whether `pid` is alive and an apsim daemon (not a recycled pid). */
export function isDaemon (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return isMountCmd(cmdline(pid))
  } catch {
    return false
  }
}

/** The daemon serving `dir`: from its runtime record, else by its command line. */
export function findDaemon (dir: string): number | undefined {
  const r = readRecord(dir)
  if (r !== undefined && isDaemon(r.pid)) return r.pid
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue
    try {
      const cmd = cmdline(Number(p))
      if (!isMountCmd(cmd)) continue
      const arg = cmd[cmd.indexOf('mount') + 1]
      if (arg !== undefined && path.resolve(readlinkSync(`/proc/${p}/cwd`), arg) === dir) return Number(p)
    } catch { /* gone, or not ours to see */ }
  }
  return undefined
}

/**
 * The whole content of a file, read until EOF. fs.readFile stops at st_size, which is 4096 for
 * every attribute, and the control files (dmesg) may be longer.
 */
export async function readAll (file: string): Promise<string> {
  const fh = await fsp.open(file, 'r')
  try {
    const chunks: Buffer[] = []
    const buf = Buffer.alloc(65536)
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null)
      if (bytesRead === 0) break
      chunks.push(Buffer.from(buf.subarray(0, bytesRead)))
    }
    return Buffer.concat(chunks).toString('latin1')
  } finally {
    await fh.close()
  }
}

export const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** Polls `cond` every `stepMs` until it holds or `timeoutMs` passed; returns whether it held. */
export async function waitFor (cond: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return true
    if (Date.now() >= end) return false
    await sleep(stepMs)
  }
}
