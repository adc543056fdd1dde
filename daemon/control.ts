/**
 * The CLI's side of the control plane: every command reads or writes the mount's control
 * files (`DIR/kernel/debug/apsim/`), so the CLI, the control tree and the library API stay one
 * thing. Also the record formats (udevadm-like uevents, dmesg) and the follow loop.
 */
import { constants, fstatSync, promises as fsp, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import path from 'node:path'
import { CONTROL_PATH, type GuestInfo } from '../lib/control.js'
import { formatKlog, type KlogRecord, type Uevent } from '../lib/events.js'
import { O_ACCMODE, O_WRONLY } from '../lib/sysfs.js'
import { canonicalDir, errCode, mountAt, readAll, sleep, UserError, FSTYPE } from './runtime.js'

/** One control write is one store: at most a page. */
export const CONTROL_WRITE_MAX = 4096
export const FOLLOW_INTERVAL_MS = 100

export interface Control {
  /** The canonical mount point. */
  dir: string
  /** DIR as the user wrote it, for messages. */
  shown: string
  mountId: number
  /** The absolute path of a control file. */
  file: (name: string) => string
}

const why = (e: unknown): string => {
  const code = errCode(e)
  if (code === 'EACCES') return 'permission denied (the control files are root\'s)'
  if (code === 'ENOENT') return 'no such file'
  return (e as Error).message
}

/** The apsim mount at `dirArg`; a UserError when there is none. */
export async function openControl (dirArg: string): Promise<Control> {
  const dir = await canonicalDir(dirArg)
  const m = await mountAt(dir)
  if (m === undefined) throw new UserError(`${dirArg} is not mounted`)
  if (m.fstype !== FSTYPE) throw new UserError(`${dirArg} is not an apsim mount (${m.fstype})`)
  return { dir, shown: dirArg, mountId: m.id, file: name => path.join(dir, CONTROL_PATH, name) }
}

/** Whether the mount `c` was opened on is still there. */
async function stillMounted (c: Control): Promise<boolean> {
  return (await mountAt(c.dir))?.id === c.mountId
}

export async function controlRead (c: Control, name: string): Promise<string> {
  try {
    return await readAll(c.file(name))
  } catch (e) {
    throw new UserError(`cannot read ${path.join(c.shown, CONTROL_PATH, name)}: ${why(e)}`)
  }
}

/**
 * One write(2) of `text` to a control file: one store, applied whole or refused. A refusal
 * is a UserError carrying the reason the control tree left in `last_error`.
 */
export async function controlWrite (c: Control, name: string, text: string): Promise<void> {
  const data = Buffer.from(text, 'utf8')
  if (data.length > CONTROL_WRITE_MAX) {
    throw new UserError(`${data.length} bytes for ${path.join(CONTROL_PATH, name)}; one control write takes at most ${CONTROL_WRITE_MAX} bytes`)
  }
  let fh: fsp.FileHandle
  try {
    fh = await fsp.open(c.file(name), constants.O_WRONLY)
  } catch (e) {
    throw new UserError(`cannot open ${path.join(c.shown, CONTROL_PATH, name)}: ${why(e)}`)
  }
  try {
    const { bytesWritten } = await fh.write(data, 0, data.length, null)
    if (bytesWritten !== data.length) throw new UserError(`${name}: short write (${bytesWritten} of ${data.length} bytes)`)
  } catch (e) {
    if (e instanceof UserError) throw e
    const code = errCode(e) ?? 'EIO'
    let reason = ''
    try { reason = (await readAll(c.file('last_error'))).trim() } catch { /* the reason is lost, the errno is not */ }
    throw new UserError(reason.startsWith(`${code}:`) ? reason : `${code}: ${(e as Error).message}`)
  } finally {
    await fh.close()
  }
}

// ---------------------------------------------------------------------------------------
// Formats

/** `KERNEL[12.345678] add      /devices/ap/card04 (ap)`, as `udevadm monitor --kernel` prints. */
export function formatUevent (u: Uevent, properties: boolean): string {
  const sec = Math.floor(u.usec / 1e6)
  const frac = String(u.usec % 1e6).padStart(6, '0')
  // An injected fault is the simulator's own record, labelled APSIM, never KERNEL.
  let s = `${u.action === 'fault' ? 'APSIM' : 'KERNEL'}[${sec}.${frac}] ${u.action.padEnd(8)} ${u.devpath} (${u.subsystem})\n`
  if (properties) {
    // The kernel's order: ACTION, DEVPATH, SUBSYSTEM, the device's variables, SEQNUM. Values
    // are printed as they are (the mask-change variables end in a newline in the kernel too).
    s += `ACTION=${u.action}\nDEVPATH=${u.devpath}\nSUBSYSTEM=${u.subsystem}\n`
    for (const [k, v] of u.env) s += `${k}=${v}\n`
    s += `SEQNUM=${u.seq}\n\n`
  }
  return s
}

export { formatKlog }

/** Parses JSON-lines records (`kmsg`, `uevents`). */
export function parseRecords<T> (text: string, what: string): T[] {
  const out: T[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    try {
      out.push(JSON.parse(line) as T)
    } catch {
      throw new UserError(`${what}: not a JSON record: ${line.slice(0, 80)}`)
    }
  }
  return out
}

/**
 * Whether standard output is a pipe nobody reads any more. A write would say so (EPIPE), but
 * a follower may have nothing to write for a long time, and a zero-byte write always succeeds:
 * so look for a process holding the pipe's read end (in /proc/PID/fd and fdinfo's access mode).
 * The reader found is remembered, and /proc is searched again only once it is gone. Another
 * user's process in this process group (`| sudo tee`) cannot be looked into: it counts as a
 * reader while it lives.
 */
function pipeReaderWatch (fd = 1): () => boolean {
  let pipe: string
  try {
    if (!fstatSync(fd).isFIFO()) return () => false
    pipe = readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return () => false
  }
  const pgrp = (pid: string): string | undefined => /\) \S+ \d+ (\d+) /.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1]
  const ownGroup = pgrp('self')
  const reads = (link: string): boolean => {
    if (readlinkSync(link) !== pipe) return false
    const flags = /^flags:\s+([0-7]+)/m.exec(readFileSync(link.replace('/fd/', '/fdinfo/'), 'utf8'))
    return flags !== null && (parseInt(flags[1], 8) & O_ACCMODE) !== O_WRONLY
  }
  /** The reader found last time: whether it still is one. */
  let known: (() => boolean) | undefined
  const search = (): (() => boolean) | undefined => {
    for (const pid of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(pid)) continue
      let fds: string[]
      try {
        fds = readdirSync(`/proc/${pid}/fd`)
      } catch (e) {
        try { if (errCode(e) === 'EACCES' && pgrp(pid) === ownGroup) return () => pgrp(pid) === ownGroup } catch { /* gone */ }
        continue
      }
      for (const n of fds) {
        const link = `/proc/${pid}/fd/${n}`
        try { if (reads(link)) return () => reads(link) } catch { /* closed meanwhile */ }
      }
    }
    return undefined
  }
  return () => {
    try { if (known?.() === true) return false } catch { /* it went away */ }
    known = search()
    return known === undefined
  }
}

/**
 * Prints the records of a JSON-lines control file; with `follow`, then polls it and prints
 * each newer record (by seq) until a signal, a closed stdout (even while nothing new comes)
 * or the mount going away.
 */
export async function showRecords<T extends { seq: number }> (
  c: Control, name: string, follow: boolean, print: (records: T[]) => void
): Promise<void> {
  let last = 0
  const take = async (): Promise<T[] | undefined> => {
    let text: string
    try {
      text = await readAll(c.file(name))
    } catch (e) {
      if (follow && !await stillMounted(c)) return undefined
      throw new UserError(`cannot read ${path.join(c.shown, CONTROL_PATH, name)}: ${why(e)}`)
    }
    const records = parseRecords<T>(text, name)
    const top = records.at(-1)?.seq ?? 0
    const fresh = records.filter(r => r.seq > last)
    // A restore may take the sequence back: go on from the restored records.
    last = top < last ? top : Math.max(last, top)
    return fresh
  }
  const first = await take()
  if (first !== undefined) print(first)
  if (!follow) return
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(0))
  const readerGone = pipeReaderWatch()
  for (;;) {
    await sleep(FOLLOW_INTERVAL_MS)
    if (readerGone()) process.exit(0)
    if (!await stillMounted(c)) break
    const fresh = await take()
    if (fresh === undefined) break
    if (fresh.length > 0) print(fresh)
  }
  process.stderr.write(`apsim: ${c.shown} is no longer mounted\n`)
}

export type { GuestInfo, KlogRecord, Uevent }

// ---------------------------------------------------------------------------------------
// Reading the control files into the library's shapes

/** The running guests as `host.guests()` returns them. */
export async function readGuests (c: Control): Promise<GuestInfo[]> {
  const out: GuestInfo[] = []
  for (const line of (await controlRead(c, 'guests')).split('\n')) {
    const [name, mdev, kind] = line.split(' ')
    if (name === undefined || name === '' || mdev === undefined) continue
    try {
      const [apm, aqm, adm] = (await readAll(c.file(`guest/${name}/apcb`))).trim().split(',')
      const updates = Number((await readAll(c.file(`guest/${name}/updates`))).trim())
      out.push({ name, mdev, se: kind === 'se', apcb: { apm, aqm, adm }, updates })
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw new UserError(`cannot read guest ${name}: ${why(e)}`)
      // stopped meanwhile
    }
  }
  return out
}

export interface LparAdapterInfo { id: number, type?: string, raw_type?: number, mode: string, configured: boolean, checkstopped: boolean }
export interface LparInfo { adapters: LparAdapterInfo[], usage_domains: number[], control_domains: number[] }

/** The `lpar` text (`adapter 0x04 CEX5 cca configured`, `usage-domains ...`) as data. */
export function parseLparText (text: string): LparInfo {
  const info: LparInfo = { adapters: [], usage_domains: [], control_domains: [] }
  for (const line of text.split('\n')) {
    const [what, ...words] = line.split(' ').filter(w => w !== '')
    if (what === 'adapter') {
      const [id, type, mode, ...flags] = words
      const a: LparAdapterInfo = { id: parseInt(id, 16), mode, configured: flags.includes('configured'), checkstopped: flags.includes('checkstopped') }
      if (/^CEX\d+$/.test(type)) a.type = type
      else a.raw_type = Number(type)
      info.adapters.push({ id: a.id, ...(a.type !== undefined ? { type: a.type } : { raw_type: a.raw_type }), mode: a.mode, configured: a.configured, checkstopped: a.checkstopped })
    } else if (what === 'usage-domains') {
      info.usage_domains = words.map(w => parseInt(w, 16))
    } else if (what === 'control-domains') {
      info.control_domains = words.map(w => parseInt(w, 16))
    }
  }
  return info
}
