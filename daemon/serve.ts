/**
 * `apsim mount` in the foreground: build the Host, mount it, report readiness, and unmount
 * on every way out (signals, crash, external unmount, parent gone).
 */
import { promises as fsp } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { Host } from '../lib/host.js'
import { Sysfs } from '../lib/sysfs.js'
import { defaultTopology, loadTopology, TopologyError, type Topology } from '../lib/topology.js'
import { mountSysfs, unmountSysfs, type SysfsFuse } from './fuse.js'
import { createLogger, logKernel, storeLogger, type LogFormat, type Logger } from './log.js'
import {
  canonicalDir, errCode, findDaemon, fusermount, fusermountSync, probeMount, readMounts,
  removeRecord, UserError, writeRecord, FSTYPE, type RuntimeRecord
} from './runtime.js'

export interface ServeOptions {
  topology?: string
  allowOther?: boolean
  logLevel?: string
  logFormat?: LogFormat
  logFile?: string
}

export const DEFAULT_TOPOLOGY_SOURCE = '(default topology)'

/** Reads and validates the topology; a bad file is a UserError carrying TopologyError's text. */
export async function readTopology (file: string | undefined): Promise<Topology> {
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
  const topology = await readTopology(o.topology)
  const dir = await canonicalDir(dirArg)
  await prepareMountpoint(dir, dirArg, log)

  const t0 = performance.now()
  const host = new Host(topology, { clockUsec: () => Math.round((performance.now() - t0) * 1000) })
  logKernel(log, host.klog)
  const sysfs = new Sysfs(host.root, storeLogger(log))

  let mounted = false
  let stopping = false
  const record: RuntimeRecord = {
    pid: process.pid,
    dir,
    topology: o.topology ?? DEFAULT_TOPOLOGY_SOURCE,
    startedAt: new Date().toISOString(),
    logFile: o.logFile,
    options: ''
  }
  // Last resorts: never leave a dead mount behind (fusermount -uz does not need this process).
  process.on('exit', () => {
    if (mounted) fusermountSync(dir)
    removeRecord(dir, process.pid)
  })
  const crash = (what: string) => (err: unknown) => {
    try { log.fatal({ err }, `${what}: unmounting and exiting`) } catch { /* stderr may be what broke */ }
    if (mounted) fusermountSync(dir)
    mounted = false
    process.exit(1)
  }
  process.on('uncaughtException', crash('uncaught exception'))
  process.on('unhandledRejection', crash('unhandled rejection'))
  // A signal while mounting is served once the mount is up.
  let stop: ((reason: string) => Promise<void>) | undefined
  let pending: string | undefined
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { if (stop !== undefined) void stop(sig); else pending = sig })

  let fuse: SysfsFuse
  try {
    fuse = await mountSysfs(dir, sysfs, { log, allowOther: o.allowOther, time: new Date() })
  } catch (e) {
    throw new UserError(`cannot mount ${dirArg}: ${(e as Error).message}`)
  }
  mounted = true
  record.options = fuse._fuseOptions()
  const self = (await readMounts()).filter(m => m.mountPoint === dir && m.fstype === FSTYPE).pop()
  try { writeRecord(record) } catch (e) { log.warn({ err: e }, 'cannot write the runtime record') }
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
    removeRecord(dir, process.pid)
    log.info('unmounted')
    process.exit(0)
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
        removeRecord(dir, process.pid)
        process.exit(0)
      }
    }, () => {})
  }, 500).unref()

  ready(dir)
  return { dir, fuse, host }
}
