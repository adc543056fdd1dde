/**
 * `apsim mount` in the foreground: build the Host, mount it, report readiness, and unmount
 * on every way out (signals, crash, external unmount, parent gone).
 */
import { closeSync, constants as fsConstants, fsyncSync, openSync, promises as fsp, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { type Errno, fail, isSysfsError } from '../lib/errors.js'
import { Host, type HostState } from '../lib/host.js'
import { CONTROL_PATH } from '../lib/control.js'
import { stateText } from '../lib/state.js'
import { type Persist, Sysfs } from '../lib/sysfs.js'
import { PROFILE_NAMES, profile } from '../lib/profiles.js'
import { defaultTopology, loadTopology, TopologyError, type Topology } from '../lib/topology.js'
import { mountSysfs, unmountSysfs, whyNoFuse, type SysfsFuse } from './fuse.js'
import { ttyProgress } from './progress.js'
import { feedSocket, serveUdevFeed, type UdevFeed } from './udev-feed.js'
import { createLogger, logFaults, logKernel, storeLogger, type LogFormat, type Logger } from './log.js'
import {
  canonicalDir, errCode, findDaemon, fusermount, fusermountSync, probeMount, readMounts,
  removeRecord, UserError, writeRecord, FSTYPE, type RuntimeRecord
} from './runtime.js'

export interface ServeOptions {
  topology?: string
  /** A kernel profile overriding the topology's. */
  kernel?: string
  allowOther?: boolean
  logLevel?: string
  logFormat?: LogFormat
  /** --daemon's log file (the daemon's stderr): removed when the daemon ends cleanly. */
  logFile?: string
  /** The state file: boot from it if it exists, keep it up to date after every store. */
  state?: string
  /** Written with the daemon's pid once the mount is ready (systemd's PIDFile=); removed on exit. */
  pidFile?: string
}

export const DEFAULT_TOPOLOGY_SOURCE = '(default topology)'

/**
 * Reads and validates the topology, with `kernel` (a profile name) overriding its kernel; a
 * bad file or profile is a UserError carrying the reason.
 */
export async function readTopology (file: string | undefined, kernel?: string): Promise<Topology> {
  const t = await readTopologyFile(file)
  if (kernel === undefined) return t
  if (profile(kernel) === undefined) throw new UserError(`--kernel ${kernel}: no such profile (${PROFILE_NAMES.join(', ')}); see 'apsim profiles'`)
  return { ...t, kernel }
}

async function readTopologyFile (file: string | undefined): Promise<Topology> {
  if (file === undefined) return defaultTopology()
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (e) {
    throw new UserError(`cannot read topology ${file}: ${(e as Error).message}`)
  }
  try {
    return loadTopology(text, file)
  } catch (e) {
    if (e instanceof TopologyError) throw new UserError(e.message)
    throw e
  }
}

const queueCount = (host: Host): number => { let n = 0; for (const c of host.bus.cards.values()) n += c.queues.size; return n }

/** The largest snapshot `restore` reads (a 256 x 256 host with 65,536 mdevs is far below). */
const MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024

/**
 * Reads the snapshot file a `restore` write names, without ever doing I/O on this mount: the
 * daemon serves its own mount on one thread, so a synchronous open of a file inside it (through
 * a symlink, a bind mount of the tree, /proc/self/root...) would wait for itself for good. The
 * path is resolved, and a file on this mount's device is refused with ELOOP (the host would
 * read itself) before it is opened; the reads run on libuv's pool, never on the serving thread,
 * so even a file swapped in between the checks is served meanwhile. Only a regular file is
 * read (opened non-blocking: a FIFO would wait for a writer), and its device checked again.
 */
async function readSnapshotFile (file: string, mount: { dir: string, dev: () => string | undefined }): Promise<string> {
  const itself = (): never => fail('ELOOP', `${file}: this is the mount ${mount.dir} itself; a host cannot restore from its own tree`)
  if (mount.dev() === undefined) fail('EAGAIN', 'the mount is not ready yet')
  const real = await fsp.realpath(file)
  if (inside(real, mount.dir) || devName((await fsp.stat(real, { bigint: true })).dev) === mount.dev()) itself()
  const fh = await fsp.open(real, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
  try {
    const st = await fh.stat({ bigint: true })
    if (devName(st.dev) === mount.dev()) itself()
    if (!st.isFile()) throw new Error('not a regular file')
    if (st.size > BigInt(MAX_SNAPSHOT_BYTES)) throw new Error(`larger than ${MAX_SNAPSHOT_BYTES} bytes`)
    return await fh.readFile('utf8')
  } finally {
    await fh.close()
  }
}

/** `major:minor` of a st_dev, as /proc/self/mountinfo writes it (glibc's major()/minor()). */
const devName = (dev: bigint): string =>
  `${((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)}:${(dev & 0xffn) | ((dev >> 12n) & ~0xffn)}`

/** Whether `file` is `dir` or below it. */
const inside = (file: string, dir: string): boolean => {
  const rel = path.relative(dir, file)
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
}

/**
 * Reads a state file: undefined when it does not exist; a UserError when it cannot be read or
 * is not an apsim state (the file is left alone).
 */
export function readStateFile (file: string): HostState | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined
    throw new UserError(`cannot read state file ${file}: ${(e as Error).message}`)
  }
  let state: unknown
  try {
    state = JSON.parse(text)
  } catch (e) {
    throw new UserError(`state file ${file} is corrupt (not JSON: ${(e as Error).message}); not touching it`)
  }
  const s = state as Partial<HostState> | null
  if (s === null || typeof s !== 'object' || s.format !== 'apsim-state') {
    throw new UserError(`state file ${file} is not an apsim state (format apsim-state); not touching it`)
  }
  return state as HostState
}

const SAVE_ERRNOS: readonly Errno[] = ['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG', 'EACCES', 'EPERM', 'ENOENT']

/**
 * Writes a snapshot atomically and durably: FILE.tmp, fsync, rename over FILE, fsync the
 * directory. Synchronous: the store that triggered it returns only afterwards. A failure
 * (a full disk...) removes FILE.tmp and throws a SysfsError with the errno it met.
 */
export function saveState (file: string, state: HostState): void {
  const tmp = `${file}.tmp`
  try {
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeFileSync(fd, stateText(state))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, file)
    const dfd = openSync(path.dirname(file), 'r')
    try { fsyncSync(dfd) } finally { closeSync(dfd) }
  } catch (e) {
    try { unlinkSync(tmp) } catch { /* not created, or renamed already */ }
    const code = SAVE_ERRNOS.find(c => c === errCode(e)) ?? 'EIO'
    fail(code, `cannot save the state file: ${(e as Error).message}`)
  }
}

/** Refuses a live mount, cleans a stale one, refuses a non-empty directory. */
async function prepareMountpoint (dir: string, shown: string, log: Logger): Promise<void> {
  const p = await probeMount(dir)
  if (p.state === 'live' || p.state === 'hung') {
    if (p.mount.fstype === FSTYPE) {
      const pid = findDaemon(dir)
      const who = pid !== undefined ? ` (pid ${pid})` : ''
      throw new UserError(`${shown} is already an apsim mount${who}; run 'apsim umount ${shown}' first`)
    }
    throw new UserError(`${shown} is already a mount point (${p.mount.fstype}); refusing to mount over it`)
  }
  if (p.state === 'stale') {
    log.warn({ dir, fstype: p.mount.fstype }, 'cleaning a stale mount left by a crashed daemon')
    await fusermount(dir)
    removeRecord(dir)
  }
  try {
    const entries = await fsp.readdir(dir)
    if (entries.length > 0) throw new UserError(`${shown} is not empty; apsim mounts only on an empty directory`)
  } catch (e) {
    if (e instanceof UserError) throw e
    if (errCode(e) === 'ENOTDIR') throw new UserError(`${shown} is not a directory`)
    if (errCode(e) !== 'ENOENT') throw new UserError(`${shown}: ${(e as Error).message}`)
  }
}

export interface Served {
  dir: string
  fuse: SysfsFuse
  host: Host
}

/**
 * Mounts and returns once the mount is usable; `ready` runs then (print the line, tell the
 * parent). The process then lives until a signal, an external unmount or a crash.
 */
export async function serve (dirArg: string, o: ServeOptions, ready: (dir: string) => void): Promise<Served> {
  const log = createLogger({ level: o.logLevel, format: o.logFormat })
  const dir = await canonicalDir(dirArg)
  const stateFile = o.state === undefined ? undefined : path.resolve(o.state)
  if (stateFile !== undefined && inside(stateFile, dir)) throw new UserError(`the state file ${o.state} is inside the mount ${dirArg}; put it elsewhere`)
  const state = stateFile === undefined ? undefined : readStateFile(stateFile)
  if (state !== undefined && o.kernel !== undefined) throw new UserError(`--kernel applies to a new host; ${o.state} already has one (kernel ${String(state.topology.kernel ?? 'newest')})`)
  const topology = state === undefined ? await readTopology(o.topology, o.kernel) : undefined
  await prepareMountpoint(dir, dirArg, log)

  // This mount's device (from the mount table, once mounted): `restore` refuses files on it.
  let mountDev: string | undefined
  const t0 = performance.now()
  const booting = ttyProgress('apsim: booting the host', 'adapter ids scanned')
  const opts = {
    clockUsec: () => Math.round((performance.now() - t0) * 1000),
    readFile: async (p: string): Promise<string> => await readSnapshotFile(path.resolve(p), { dir, dev: () => mountDev }),
    sleep: async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms)),
    // A full-size host (256 x 256 queues) takes a second or more to boot: shown on a terminal.
    progress: booting.update
  }
  let host: Host
  try {
    if (state !== undefined) {
      try {
        host = Host.fromState(state, opts)
      } catch (e) {
        const why = isSysfsError(e) ? e.why : (e as Error).message
        throw new UserError(`state file ${o.state ?? ''} cannot be used (${why}); not touching it`)
      }
      log.info({ state: stateFile }, 'booted from the state file')
      if (o.topology !== undefined) log.warn({ topology: o.topology, state: stateFile }, 'the state file exists: the topology is not used')
    } else {
      host = new Host(topology!, opts)
    }
  } finally {
    booting.end()
  }
  const bootMs = Math.round(performance.now() - t0)
  log.info({ ms: bootMs, cards: host.bus.cards.size, queues: queueCount(host) }, `host booted in ${bootMs} ms`)
  logKernel(log, host.klog)
  logFaults(log, host.uevents)
  // The state file as last saved: what a store whose save fails is undone to.
  let committed = stateFile === undefined ? undefined : host.snapshot()
  if (stateFile !== undefined && state === undefined) {
    try { saveState(stateFile, committed!) } catch (e) { throw new UserError(`cannot write state file ${o.state ?? ''}: ${isSysfsError(e) ? e.why : (e as Error).message}`) }
  }
  const persist: Persist | undefined = stateFile === undefined
    ? undefined
    : {
        save: () => {
          const s = host.snapshot()
          saveState(stateFile, s)
          committed = s
        },
        rollback: () => {
          log.error({ state: stateFile }, 'the state file cannot be saved: the store is undone')
          host.restore(committed!)
        }
      }
  const logStore = storeLogger(log)
  const sysfs = new Sysfs(host.root, r => {
    // A control write undone because the save failed says so in last_error too.
    if (!r.ok && r.path.replace(/^\/+/, '').startsWith(`${CONTROL_PATH}/`)) host.lastError = `${r.errno ?? 'EIO'}: ${r.why ?? ''}\n`
    logStore(r)
  }, host.faults, persist)

  let mounted = false
  let stopping = false
  const record: RuntimeRecord = {
    pid: process.pid,
    dir,
    topology: state !== undefined ? `(state ${stateFile ?? ''})` : o.topology ?? DEFAULT_TOPOLOGY_SOURCE,
    state: stateFile,
    startedAt: new Date().toISOString(),
    logFile: o.logFile,
    options: ''
  }
  let feed: UdevFeed | undefined
  // Last resorts: never leave a dead mount behind (fusermount -uz does not need this process).
  process.on('exit', () => {
    feed?.close()
    if (mounted) fusermountSync(dir)
    removeRecord(dir, process.pid)
    if (o.pidFile !== undefined) removePidFile(o.pidFile)
  })
  const crash = (what: string) => (err: unknown) => {
    try { log.fatal({ err }, `${what}: unmounting and exiting`) } catch { /* stderr may be what broke */ }
    if (mounted) fusermountSync(dir)
    mounted = false
    process.exit(1)
  }
  // A clean end takes the runtime record and the --daemon log file along (a crash leaves the
  // log for its post-mortem): a test suite mounting 80 fixtures does not leave 80 files.
  const cleanExit = (): never => {
    removeRecord(dir, process.pid)
    if (o.logFile !== undefined) { try { unlinkSync(o.logFile) } catch { /* gone already */ } }
    process.exit(0)
  }
  process.on('uncaughtException', crash('uncaught exception'))
  process.on('unhandledRejection', crash('unhandled rejection'))
  // A signal while mounting is served once the mount is up.
  let stop: ((reason: string) => Promise<void>) | undefined
  let pending: string | undefined
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { if (stop !== undefined) void stop(sig); else pending = sig })

  let fuse: SysfsFuse
  try {
    fuse = await mountSysfs(dir, sysfs, { log, allowOther: o.allowOther, time: new Date(), delivered: () => feed?.delivered() })
  } catch (e) {
    throw new UserError(`cannot mount ${dirArg}: ${whyNoFuse() ?? (e as Error).message}`)
  }
  mounted = true
  record.options = fuse._fuseOptions()
  const self = (await readMounts()).filter(m => m.mountPoint === dir && m.fstype === FSTYPE).pop()
  mountDev = self?.dev
  try { writeRecord(record) } catch (e) { log.warn({ err: e }, 'cannot write the runtime record') }
  try {
    feed = await serveUdevFeed(host.uevents, feedSocket(dir), log)
  } catch (e) {
    log.warn({ err: e }, 'cannot serve the udev feed: udev listeners in apsim\'s namespaces get no events')
  }
  log.info({ dir, topology: record.topology, mountId: self?.id }, 'mounted')

  stop = async (reason: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.info({ reason }, 'unmounting')
    try {
      await unmountSysfs(fuse)
    } catch (e) {
      log.warn({ err: e }, 'unmount failed; detaching lazily')
      fusermountSync(dir)
    }
    mounted = false
    log.info('unmounted')
    cleanExit()
  }
  if (pending !== undefined) { void stop(pending); return { dir, fuse, host } }

  // fuse-native does not notice an external `fusermount -u`; the mount table does.
  const parent = process.ppid
  const exitWithParent = process.env.APSIM_EXIT_WITH_PARENT === '1'
  setInterval(() => {
    if (exitWithParent && process.ppid !== parent) { void stop?.('parent exited'); return }
    if (self === undefined) return
    readMounts().then(ms => {
      if (!ms.some(m => m.id === self.id) && !stopping) {
        log.info('the mount was removed from outside; exiting')
        mounted = false
        stopping = true
        cleanExit()
      }
    }, () => {})
  }, 500).unref()

  if (o.pidFile !== undefined) {
    try { writeFileSync(o.pidFile, `${process.pid}\n`) } catch (e) { throw new UserError(`cannot write the pid file ${o.pidFile}: ${(e as Error).message}`) }
  }
  ready(dir)
  return { dir, fuse, host }
}

/** Removes the pid file if it still names this process. */
function removePidFile (file: string): void {
  try {
    if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file)
  } catch { /* gone already */ }
}
