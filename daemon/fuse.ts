/**
 * The FUSE adapter: maps fuse-native operations onto `Sysfs` and errnos, nothing else
 * (design and every trap: /work/shared/spec/fuse.md §12). The model decides; this module
 * only translates paths, buffers, stats and `SysfsError.code` into what libfuse expects.
 */
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs'
import { constants } from 'node:os'
import Fuse from 'fuse-native'
import { isSysfsError } from '../lib/errors.js'
import type { Kind, Stat, Sysfs } from '../lib/sysfs.js'
import type { Logger } from './log.js'

const ERRNO = constants.errno as Record<string, number>
const EIO = ERRNO.EIO
const EACCES = ERRNO.EACCES
const EPERM = ERRNO.EPERM

/** `-errno` for an errno name; EIO for a name this platform does not know. */
export function errnoOf (code: string): number {
  const n = ERRNO[code]
  return -(n ?? EIO)
}

/** Options fuse-native cannot express (direct_io, negative_timeout, 0 values): injected. */
export function mountOptions (o: { allowOther?: boolean, autoUnmount?: boolean } = {}): string[] {
  const opts = ['direct_io', 'entry_timeout=0', 'attr_timeout=1', 'negative_timeout=0', 'default_permissions', 'fsname=sysfs', 'subtype=apsim']
  if (o.allowOther === true) opts.push('allow_other')
  if (o.autoUnmount !== false) opts.push('auto_unmount')
  return opts
}

export class SysfsFuse extends Fuse {
  constructor (mnt: string, ops: Fuse.Operations, private readonly extra: string[], opts: Fuse.Options) {
    super(mnt, ops, opts)
  }

  override _fuseOptions (): string {
    const base = super._fuseOptions()
    return (base !== '' ? base + ',' : '-o') + this.extra.join(',')
  }
}

/** Entry stats for readdir: only the type bits matter (they become d_type). */
const ENTRY_MODE: Record<Kind, number> = { dir: 0o40755, attr: 0o100444, link: 0o120777 }

type Reply = (...r: any[]) => void

/** The -errno a thrown value stands for; anything but a SysfsError is a bug: EIO, logged. */
function errnoFor (log: Logger, op: string, path: unknown, e: unknown): number {
  if (isSysfsError(e)) {
    if (log.isLevelEnabled('debug')) log.debug({ op, path, errno: e.code, why: e.why }, `fuse ${op} ${String(path)}: ${e.code}`)
    return errnoOf(e.code)
  }
  log.error({ op, path, err: e }, `fuse ${op} ${String(path)}: unexpected exception`)
  return -EIO
}

/**
 * Every handler: one callback exactly; a SysfsError becomes its -errno, anything else -EIO
 * and an error line (an uncaught throw would hang the op until the timeout). A handler may
 * return a promise (a blocking store): its outcome is the reply.
 */
function wrap (log: Logger, op: string, fn: (...args: any[]) => void | Promise<void>): (...args: any[]) => void {
  return (...args: any[]) => {
    const cb = args.pop() as Reply
    let done = false
    const reply: Reply = (...r) => {
      if (done) { log.error({ op, path: args[0] }, `fuse ${op}: second reply ignored`); return }
      done = true
      cb(...r)
    }
    try {
      const p = fn(...args, reply)
      if (p !== undefined) p.catch((e: unknown) => { if (!done) reply(errnoFor(log, op, args[0], e)) })
    } catch (e) {
      if (!done) reply(errnoFor(log, op, args[0], e))
      else log.error({ op, path: args[0], err: e }, `fuse ${op}: exception after the reply`)
    }
  }
}

export interface AdapterOptions {
  log: Logger
  /** Every inode's atime/mtime/ctime (sysfs shows stable times); default: now. */
  time?: Date
  /**
   * After a store: undefined, or a promise that settles once the uevents it caused reached
   * their listeners (the kernel sends them before the write(2) returns).
   */
  delivered?: () => Promise<void> | undefined
}

/** The fuse-native operation table for a Sysfs. */
export function sysfsOperations (sysfs: Sysfs, opts: AdapterOptions): Fuse.Operations {
  const { log, delivered } = opts
  const time = opts.time ?? new Date()
  // Root's, as in sysfs; a daemon that is not root owns its tree, so its user (root of the
  // user namespace `apsim run` makes for it) may write what root may on a real host.
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  const toStat = (s: Pick<Stat, 'mode' | 'size' | 'nlink'>): Fuse.Stat => ({
    mode: s.mode, size: s.size, nlink: s.nlink, uid, gid, blksize: 4096, blocks: 0, atime: time, mtime: time, ctime: time
  })
  // getattr runs for every path component of every syscall: one stat object per distinct
  // (mode, size, nlink), shared (fuse-native only reads it).
  const stats = new Map<number, Fuse.Stat>()
  const statOf = (s: Stat): Fuse.Stat => {
    if ((s.size !== 0 && s.size !== 4096) || s.nlink > 3) return toStat(s)
    const key = s.mode * 8 + (s.size > 0 ? 4 : 0) + s.nlink
    let st = stats.get(key)
    if (st === undefined) stats.set(key, st = toStat(s))
    return st
  }
  const entryStat = (kind: Kind): Fuse.Stat => toStat({ mode: ENTRY_MODE[kind], size: kind === 'attr' ? 4096 : 0, nlink: kind === 'dir' ? 2 : 1 })
  const dirStat = entryStat('dir')

  const ops: Fuse.Operations = {
    init: cb => cb(0),
    statfs: (_path, cb) => cb(0, { bsize: 4096, frsize: 4096, namemax: 255 }),
    getattr: (path, cb) => cb(0, statOf(sysfs.stat(path))),
    readdir: (path, cb) => {
      const entries = sysfs.readdir(path)
      const names = ['.', '..']
      const stats = [dirStat, dirStat]
      for (const e of entries) {
        names.push(e.name)
        stats.push(entryStat(e.kind))
      }
      cb(0, names, stats)
    },
    readlink: (path, cb) => cb(0, sysfs.readlink(path)),
    open: (path, flags, cb) => cb(0, sysfs.open(path, flags)),
    read: (_path, fd, buf, len, pos, cb) => {
      const data = sysfs.read(fd, pos, len)
      const n = data.copy(buf, 0, 0, Math.min(len, data.length)) // into libfuse memory before cb
      cb(n)
    },
    write: (_path, fd, buf, len, _pos, cb) => {
      // The buffer is detached after cb: copy it out. The offset is meaningless for a store.
      const r = sysfs.write(fd, Buffer.from(buf.subarray(0, len)))
      const reply = (n: number): void => cb(len > 0 && n === 0 ? -EIO : n) // never 0 for len > 0: callers would spin
      if (typeof r === 'number') {
        const sent = delivered?.()
        if (sent === undefined) { reply(r); return }
        return sent.then(() => reply(r))
      }
      // A store that blocks in the kernel: the writer waits, other ops go on meanwhile.
      return r.then(async n => { await delivered?.(); reply(n) })
    },
    fsync: (_path, _datasync, _fd, cb) => cb(0),
    release: (_path, fd, cb) => { sysfs.release(fd); cb(0) },
    // No flush: it would only answer 0, one more round trip to this thread per close(2). The
    // kernel takes libfuse's ENOSYS as "no flush needed", stops sending it, and close returns 0.
    // O_TRUNC arrives as truncate(path, 0); kernfs ignores sizes, so does this. The kernel
    // has looked every path up before any of the ops below reaches the daemon.
    truncate: (_path, _size, cb) => cb(0),
    ftruncate: (_path, _fd, _size, cb) => cb(0),
    utimens: (_path, _atime, _mtime, cb) => cb(0),
    // What kernfs answers (fuse.md §7): no new files, no namespace changes, no chmod.
    create: (_path, _mode, cb) => cb(-EACCES),
    mknod: (_path, _mode, _dev, cb) => cb(-EACCES),
    mkdir: (_path, _mode, cb) => cb(-EPERM),
    rmdir: (_path, cb) => cb(-EPERM),
    unlink: (_path, cb) => cb(-EPERM),
    rename: (_src, _dest, cb) => cb(-EPERM),
    link: (_src, _dest, cb) => cb(-EPERM),
    symlink: (_target, _path, cb) => cb(-EPERM),
    chmod: (_path, _mode, cb) => cb(-EPERM),
    chown: (_path, _uid, _gid, cb) => cb(-EPERM)
  }
  const wrapped: Record<string, (...args: any[]) => void> = {}
  for (const [name, fn] of Object.entries(ops)) wrapped[name] = wrap(log, name, fn as (...args: any[]) => void | Promise<void>)
  return wrapped as Fuse.Operations
}

export interface MountOptions extends AdapterOptions {
  allowOther?: boolean
  /** libfuse's auto_unmount watchdog removes the mount if the daemon dies; default on. */
  autoUnmount?: boolean
  /** Per-op timeout in ms (ETIMEDOUT after); default 10000. Writes have none: a store may block, as in the kernel. */
  timeoutMs?: number
}

/** Mounts `sysfs` at `mnt`; resolves once the kernel sent INIT (the mount is usable). */
export async function mountSysfs (mnt: string, sysfs: Sysfs, opts: MountOptions): Promise<SysfsFuse> {
  const fuse = new SysfsFuse(mnt, sysfsOperations(sysfs, opts), mountOptions(opts),
    { mkdir: true, force: true, timeout: { default: opts.timeoutMs ?? 10000, write: false } })
  opts.log.info({ mnt: fuse.mnt, options: fuse._fuseOptions() }, 'mounting')
  await new Promise<void>((resolve, reject) => fuse.mount(err => err !== null && err !== undefined ? reject(err) : resolve()))
  return fuse
}

/** `fusermount -uz` (lazy) and stop the FUSE thread. */
export async function unmountSysfs (fuse: SysfsFuse): Promise<void> {
  await new Promise<void>((resolve, reject) => fuse.unmount(err => err !== null && err !== undefined ? reject(err) : resolve()))
}

const CAP_SYS_ADMIN = 21n

/** Whether this process's effective capabilities hold CAP_SYS_ADMIN. */
function hasSysAdmin (): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
  return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n
}

/**
 * Why FUSE cannot mount here, with the fix, or undefined when nothing obvious is missing:
 * no /dev/fuse (a container without the device), no CAP_SYS_ADMIN for root (a container
 * without it), /dev/fuse closed to a user who is not root, no set-uid fusermount for one.
 */
export function whyNoFuse (): string | undefined {
  const container = 'e.g. docker run --device /dev/fuse --cap-add SYS_ADMIN (podman run: the same flags)'
  if (!existsSync('/dev/fuse')) return `there is no /dev/fuse (no fuse module, or a container started without the device): modprobe fuse, or give the container the device and the right to mount, ${container}`
  const root = process.getuid?.() === 0
  if (root && !hasSysAdmin()) return `this process lacks CAP_SYS_ADMIN, which mounting needs (a container without it): ${container}, or run apsim as a user who is not root (rootless mode: fusermount mounts for it)`
  try {
    closeSync(openSync('/dev/fuse', 'r+'))
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (root) return `/dev/fuse cannot be opened (${code ?? 'error'}: the device cgroup of a container refuses it): ${container}`
    return `/dev/fuse cannot be opened by this user (${code ?? 'error'}); non-root FUSE needs it mode 0666, as the fuse package's udev rule makes it: chmod 0666 /dev/fuse (as root; containers without udevd keep the kernel's 0600), or run as root`
  }
  if (!root) {
    const fm = ['/usr/bin/fusermount3', '/bin/fusermount3', '/usr/bin/fusermount', '/bin/fusermount'].find(f => existsSync(f))
    if (fm === undefined) return 'there is no fusermount, which mounts for users who are not root: apt-get install fuse3'
    const st = statSync(fm)
    if (st.uid !== 0 || (st.mode & 0o4000) === 0) return `${fm} is not set-uid root, so it cannot mount for users who are not root: chmod u+s ${fm} (as root)`
  }
  return undefined
}
