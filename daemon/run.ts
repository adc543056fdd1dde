/**
 * `apsim run -- CMD`: an unmodified tool against a simulated host, in the spirit of
 * umockdev-run. A fresh host is mounted at a private tmp dir (or `--root` names a running
 * one), CMD runs in a private mount namespace with the tree bound over /sys
 * (mount-scripts/apsim-ns.sh, so the shell entry point and this one are one thing), and
 * everything is undone afterwards, whatever way CMD or this process ends: what CMD left
 * running in the namespace, the daemon, the mount, the tmp dir. The host's mount table only
 * ever sees the daemon's own mount; the bind over /sys exists inside the namespace alone.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs'
import os from 'node:os'
import type { Duplex } from 'node:stream'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { canonicalDir, fusermount, mountAt, probeMount, sleep, UserError, waitFor, FSTYPE } from './runtime.js'
import { feedSocket } from './udev-feed.js'

export const NS_SCRIPT = fileURLToPath(new URL('../../mount-scripts/apsim-ns.sh', import.meta.url))
/** The exit status when apsim itself failed (as env(1) and timeout(1) use it). */
export const EXIT_FAILED = 125
const READY_TIMEOUT_MS = 30000
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
type RelayedSignal = typeof SIGNALS[number]

export interface RunOptions {
  topology?: string
  kernel?: string
  state?: string
  /** A running host's mount (DIR of `apsim mount DIR`) instead of a fresh one. */
  root?: string
  /** No namespace: only the environment variables (and no udev events). */
  envOnly?: boolean
  /** Keep the host's network namespace (then udev listeners get no events). */
  shareNet?: boolean
  /** Bound over /etc/mdevctl.d instead of a fresh, empty one. */
  mdevctlDir?: string
  /** Append the daemon's log (JSON lines) to this file. */
  log?: string
  /** Info lines on stderr even when it is not a terminal. */
  verbose?: boolean
}

const fail = (message: string): UserError => new UserError(message, EXIT_FAILED)

/** A host for the run: its mount, and how to get rid of it. */
interface Host {
  dir: string
  stop: () => Promise<void>
}

/**
 * Starts `apsim mount` on `dir` as a child (in its own process group: a Ctrl-C for CMD is not
 * one for the daemon, which must outlive CMD to serve its last reads). It exits by itself if
 * this process dies (APSIM_EXIT_WITH_PARENT).
 */
async function startHost (cli: string, dir: string, o: RunOptions, logFile: string): Promise<Host> {
  const args = [cli, 'mount', dir, '--log-format', 'json']
  if (o.topology !== undefined) args.push('--topology', path.resolve(o.topology))
  if (o.kernel !== undefined) args.push('--kernel', o.kernel)
  if (o.state !== undefined) args.push('--state', path.resolve(o.state))
  const fd = openSync(logFile, 'a')
  let daemon: ChildProcess
  try {
    daemon = spawn(process.execPath, args, {
      cwd: '/',
      detached: true,
      stdio: ['ignore', 'pipe', fd],
      env: { ...process.env, APSIM_EXIT_WITH_PARENT: '1', APSIM_DAEMON_CHILD: '' }
    })
  } finally {
    closeSync(fd)
  }
  const exited = new Promise<void>(resolve => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) resolve()
    else daemon.once('exit', () => resolve())
  })
  const stop = async (): Promise<void> => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGTERM')
      if (!await Promise.race([exited.then(() => true), sleep(10000).then(() => false)])) {
        daemon.kill('SIGKILL')
        await exited
      }
    }
    // auto_unmount detaches after a crash; a mount that outlived both is detached here.
    if (!await waitFor(async () => (await mountAt(dir))?.fstype !== FSTYPE, 2000)) {
      try { await fusermount(dir) } catch { /* reported below */ }
      if (!await waitFor(async () => (await mountAt(dir)) === undefined, 3000)) throw new Error(`${dir} is still mounted`)
    }
  }
  try {
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(fail(`the simulated host did not come up within ${READY_TIMEOUT_MS / 1000} s${logTail(logFile)}`)), READY_TIMEOUT_MS)
      daemon.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d
        if (out.includes(`apsim: mounted ${dir}\n`)) { clearTimeout(timer); resolve() }
      })
      daemon.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(fail(`the simulated host did not come up (${signal ?? `status ${String(code)}`})${logTail(logFile)}`))
      })
      daemon.once('error', e => { clearTimeout(timer); reject(fail(`cannot start the daemon: ${e.message}`)) })
    })
  } catch (e) {
    await stop().catch(() => {})
    throw e
  }
  daemon.stdout!.resume()
  return { dir, stop }
}

/** The daemon's last words, for a start that failed: its errors, else the end of its log. */
function logTail (file: string): string {
  let lines: string[]
  try { lines = readFileSync(file, 'utf8').split('\n').filter(l => l !== '') } catch { return '' }
  const said = lines.map(l => {
    try { return (JSON.parse(l) as { msg?: string }).msg ?? l } catch { return l }
  })
  return said.length === 0 ? '' : ':\n' + said.slice(-5).map(l => `  ${l}`).join('\n')
}

/** An apsim mount that answers at `root`. */
async function useRunningHost (root: string): Promise<Host> {
  const dir = await canonicalDir(root)
  const p = await probeMount(dir)
  if (p.state === 'absent') throw fail(`--root ${root}: nothing is mounted there; start a host with 'apsim mount ${root} --daemon'`)
  if (p.mount.fstype !== FSTYPE) throw fail(`--root ${root}: a ${p.mount.fstype} mount, not apsim's`)
  if (p.state !== 'live') throw fail(`--root ${root}: the apsim mount is ${p.state}`)
  return { dir, stop: async () => {} }
}

/** The mdevctl layout of a fresh root: etc/mdevctl.d and the usr/lib callout dirs. */
function mdevctlLayout (root: string, mdevctlDir: string | undefined): string {
  const etc = path.join(root, 'etc/mdevctl.d')
  if (mdevctlDir !== undefined) {
    mkdirSync(path.dirname(etc), { recursive: true })
    symlinkSync(mdevctlDir, etc)
  } else {
    for (const d of ['callouts', 'notifiers']) mkdirSync(path.join(etc, 'scripts.d', d), { recursive: true })
  }
  for (const d of ['callouts', 'notifiers']) mkdirSync(path.join(root, 'usr/lib/mdevctl/scripts.d', d), { recursive: true })
  return mdevctlDir ?? etc
}

/** Every process whose mount namespace is `ns.id` (as /proc/PID/ns/mnt reads), but this one and the relay. */
function namespaceMembers (ns: Namespace): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid || Number(p) === ns.relay) continue
    try { if (readlinkSync(`/proc/${p}/ns/mnt`) === ns.id) out.push(Number(p)) } catch { /* gone */ }
  }
  return out
}

/** Ends what CMD left running in its namespace: SIGTERM, then SIGKILL after 5 s; the udev relay quietly. */
async function endNamespace (ns: Namespace, say: boolean): Promise<void> {
  if (ns.relay !== undefined) { try { process.kill(ns.relay, 'SIGTERM') } catch { /* gone */ } }
  const left = namespaceMembers(ns)
  if (left.length === 0) return
  if (say) process.stderr.write(`apsim: ending what the command left running: ${left.join(' ')}\n`)
  const signal = (pids: number[], sig: NodeJS.Signals): void => {
    for (const pid of pids) { try { process.kill(pid, sig) } catch { /* gone */ } }
  }
  signal(left, 'SIGTERM')
  if (await waitFor(() => namespaceMembers(ns).length === 0, 5000, 100)) return
  signal(namespaceMembers(ns), 'SIGKILL')
  await waitFor(() => namespaceMembers(ns).length === 0, 2000, 50)
}

/**
 * Whether a SIGINT most likely came from this process's terminal: then the terminal sent it
 * to CMD too (same foreground process group), and passing it on would deliver it twice.
 */
function fromTerminal (): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // state ppid pgrp session tty_nr tpgid
    return Number(f[4]) !== 0 && Number(f[5]) === Number(f[2])
  } catch { return false }
}

/**
 * A mount namespace, as /proc/PID/ns/mnt reads, a descriptor that keeps it alive, and the pid
 * of the udev relay apsim-ns.sh started in it (not something CMD left running).
 */
interface Namespace { id: string, fd: number, relay?: number }

interface Child {
  /** CMD's exit status, 128+N for signal N. */
  status: Promise<number>
  /** The namespace CMD runs in, held open (undefined in --env-only mode). */
  ns: Promise<Namespace | undefined>
  kill: (sig: NodeJS.Signals) => void
  running: () => boolean
}

function startChild (file: string, args: string[], env: NodeJS.ProcessEnv, reportsNamespace: boolean): Child {
  const child = spawn(file, args, { stdio: reportsNamespace ? ['inherit', 'inherit', 'inherit', 'pipe'] : 'inherit', env })
  const status = new Promise<number>(resolve => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      process.stderr.write(`apsim: ${args[0] ?? file}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`)
      resolve(e.code === 'ENOENT' ? 127 : 126)
    })
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal !== null ? os.constants.signals[signal] : 0)))
  })
  // The script reports its namespace, then waits for the answer: by then the namespace is held
  // open here, so its inode number (what identifies it in /proc) stays its own until the
  // clean-up; a freed namespace's number is soon another's.
  const ns = new Promise<Namespace | undefined>(resolve => {
    const pipe = reportsNamespace ? child.stdio[3] as Duplex | null : null
    if (pipe === null) { resolve(undefined); return }
    let text = ''
    let held: Namespace | undefined
    pipe.setEncoding('utf8')
    pipe.on('data', (d: string) => {
      text += d
      const m = /^(mnt:\[\d+\])(?: relay=(\d+))?\n/.exec(text)
      if (m === null || held !== undefined || child.pid === undefined) return
      try {
        const fd = openSync(`/proc/${child.pid}/ns/mnt`, 'r')
        held = { id: m[1], fd, relay: m[2] === undefined ? undefined : Number(m[2]) }
        if (readlinkSync(`/proc/self/fd/${fd}`) !== m[1]) { closeSync(fd); held = undefined }
      } catch { /* CMD is gone already, and so is what it started: nothing to end */ }
      pipe.write('\n')
    })
    pipe.on('error', () => {})
    pipe.on('close', () => resolve(held))
  })
  return {
    status,
    ns,
    kill: sig => { try { child.kill(sig) } catch { /* gone */ } },
    running: () => child.exitCode === null && child.signalCode === null && child.pid !== undefined
  }
}

/**
 * Runs `cmd` against a simulated host; resolves to CMD's exit status (128+N if signal N ended
 * it). Throws a UserError (status 125) when the host or the namespace cannot be set up.
 */
export async function runCommand (cmd: string[], o: RunOptions, cli: string): Promise<number> {
  if (cmd.length === 0) throw fail('no command given: apsim run [options] -- CMD [ARGS...]')
  if (o.root !== undefined && (o.topology !== undefined || o.kernel !== undefined || o.state !== undefined)) {
    throw fail('--root uses a running host: --topology, --kernel and --state belong to its apsim mount')
  }
  // Info lines (what was ended, the clean-up) on a terminal, elsewhere only when asked.
  const chatty = o.verbose === true || process.stderr.isTTY
  if (o.envOnly === true && o.shareNet === true) throw fail('--share-net applies to the namespace; --env-only makes none')
  if (o.mdevctlDir !== undefined && !existsSync(o.mdevctlDir)) throw fail(`--mdevctl-dir ${o.mdevctlDir}: no such directory`)

  // Signals from now on are CMD's business: remembered, passed on, and then the clean-up runs.
  let received: RelayedSignal | undefined
  let child: Child | undefined
  const relay = (sig: RelayedSignal) => () => {
    received ??= sig
    if (child?.running() === true && !(sig === 'SIGINT' && fromTerminal())) child.kill(sig)
  }
  const handlers = SIGNALS.map(sig => [sig, relay(sig)] as const)
  for (const [sig, h] of handlers) process.on(sig, h)

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-run-'))
  let host: Host | undefined
  let ns: Namespace | undefined
  try {
    const mdevctlDir = mdevctlLayout(tmp, o.mdevctlDir === undefined ? undefined : path.resolve(o.mdevctlDir))
    if (o.root !== undefined) {
      host = await useRunningHost(o.root)
    } else {
      const dir = path.join(tmp, 'sys')
      mkdirSync(dir)
      host = await startHost(cli, dir, o, o.log !== undefined ? path.resolve(o.log) : path.join(tmp, 'apsim.log'))
    }
    if (received !== undefined) return 128 + os.constants.signals[received]

    if (o.envOnly === true) {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        SYSFS_ROOT: host.dir, // s390-tools
        APSYSFS_BUSDIR: path.join(host.dir, 'bus/ap'), // the Kubernetes crypto device plugin
        APSYSFS_DEVSDIR: path.join(host.dir, 'devices/ap'),
        APSIM_ROOT: host.dir
      }
      // mdevctl >= 1.3 prefixes sys/, etc/mdevctl.d and usr/lib/mdevctl with it: the fresh root has all three.
      if (o.root === undefined) env.MDEVCTL_ENV_ROOT = tmp
      child = startChild(cmd[0], cmd.slice(1), env, false)
    } else {
      const net = o.shareNet === true ? ['--share-net'] : ['--udev-feed', feedSocket(host.dir)]
      const args = [NS_SCRIPT, '--exec', '--mdevctl-dir', mdevctlDir, ...net, host.dir, '--', ...cmd]
      child = startChild('bash', args, { ...process.env, APSIM_NS_FD: '3', ...(chatty ? { APSIM_VERBOSE: '1' } : {}) }, true)
    }
    const status = await child.status
    ns = await child.ns
    return status
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h)
    // A signal now must not stop the clean-up half-way; a second one does.
    const onSecond = (): void => { if (chatty) process.stderr.write('apsim: cleaning up (a second signal stops the clean-up)\n') }
    for (const sig of SIGNALS) process.once(sig, onSecond)
    let failed: unknown
    try {
      if (ns !== undefined) {
        try { await endNamespace(ns, chatty) } finally { closeSync(ns.fd) }
      }
      await host?.stop()
    } catch (e) {
      failed = e
    }
    if ((await mountAt(path.join(tmp, 'sys'))) === undefined) rmSync(tmp, { recursive: true, force: true })
    else process.stderr.write(`apsim: ${tmp}/sys is still mounted; left ${tmp} in place\n`)
    for (const sig of SIGNALS) process.removeListener(sig, onSecond)
    if (failed !== undefined) process.stderr.write(`apsim: clean-up: ${(failed as Error).message}\n`)
  }
}
