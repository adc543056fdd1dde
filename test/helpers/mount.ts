/**
 * The harness of every through-the-mount test: runs `apsim mount` as a child process (the
 * test runner must never be the daemon: a synchronous access to its own mount deadlocks),
 * waits for its `apsim: mounted` line, and gives the test a shell and a reader on the mount.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, promises as fsp, rmSync, writeFileSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { readAll } from '../../daemon/runtime.js'
import type { ExecutionContext, TestFn } from 'ava'
import { parse as parseYaml } from 'yaml'

/** build/daemon/cli.js, seen from build/test/helpers/mount.js. */
export const CLI = fileURLToPath(new URL('../../daemon/cli.js', import.meta.url))
export const READY_TIMEOUT_MS = 20000
/**
 * The runtime records (pid, log) of the daemons tests start, and of the `apsim` commands they
 * run, live in a directory of their own instead of /run/apsim.
 */
export const RUN_DIR = path.join(os.tmpdir(), 'apsim-test-run')
const ENV: NodeJS.ProcessEnv = { ...process.env, APSIM_RUN_DIR: RUN_DIR }

export interface ShResult { code: number, stdout: string, stderr: string }

export interface Mounted {
  /** The mountpoint (plays /sys). */
  dir: string
  /** `bash -c script`, cwd = dir, env S=dir and LC_ALL=C (stable messages); never rejects on a non-zero exit. */
  sh: (script: string) => Promise<ShResult>
  /** fs.promises.readFile(dir/rel, 'latin1'). */
  read: (rel: string) => Promise<string>
  /** The kernel log text (kernel/debug/apsim/dmesg, read to EOF: it may exceed a page). */
  dmesg: () => Promise<string>
  /** SIGTERM the daemon, wait for its exit and the unmount, remove the tmp dir. */
  stop: () => Promise<void>
  /** The daemon process (for lifecycle tests: pid, signals). */
  daemon: ChildProcess
  /** Everything the daemon wrote to stderr so far (its log, JSON lines). */
  log: () => string
}

export interface MountHostOptions {
  /** A topology file path, passed as --topology. */
  topology?: string
  /** Topology text, written to a file in the tmp dir and passed as --topology. */
  topologyYaml?: string
  /** More `apsim mount` arguments. */
  args?: string[]
  /** Mount at this directory instead of a fresh tmp dir (which `stop` then leaves in place). */
  dir?: string
  /** `--log-level` (default info, or $APSIM_TEST_LOG_LEVEL); false: none, the CLI's own default. */
  logLevel?: string | false
}

/** Throws unless the tests can mount: root, /dev/fuse, fusermount. Tests must fail, not skip. */
export function requireFuse (): void {
  const missing: string[] = []
  if (process.getuid?.() !== 0) missing.push(`root (running as uid ${String(process.getuid?.())})`)
  if (!existsSync('/dev/fuse')) missing.push('/dev/fuse')
  if (spawnSync('fusermount', ['-V'], { stdio: 'ignore' }).error !== undefined) missing.push('fusermount (apt-get install fuse3)')
  if (missing.length > 0) {
    throw new Error(`apsim FUSE tests need ${missing.join(', ')}; run them as root where /dev/fuse works ` +
      '(in a container: --device /dev/fuse --cap-add SYS_ADMIN)')
  }
}

export function run (cmd: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, input?: string } = {}): Promise<ShResult> {
  return new Promise(resolve => {
    let stdout = ''
    let stderr = ''
    let child: ChildProcess
    try {
      child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? ENV, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    } catch (e) { // e.g. a cwd on a dead mount: ENOTCONN
      resolve({ code: 127, stdout, stderr: `${cmd}: ${(e as Error).message}\n` })
      return
    }
    child.stdout!.setEncoding('latin1').on('data', (d: string) => { stdout += d })
    child.stderr!.setEncoding('latin1').on('data', (d: string) => { stderr += d })
    child.on('error', e => resolve({ code: 127, stdout, stderr: stderr + `${cmd}: ${e.message}\n` }))
    child.on('close', (code, signal) => resolve({ code: code ?? 128 + (signal !== null ? os.constants.signals[signal] : 0), stdout, stderr }))
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {}) // the child may exit without reading it
      child.stdin!.end(opts.input)
    }
  })
}

/** `node build/daemon/cli.js ...args`, from outside any mount. */
export async function apsim (...args: string[]): Promise<ShResult> {
  return await run(process.execPath, [CLI, ...args], { cwd: '/', env: ENV })
}

// Leftovers: a test process that dies must not leave daemons or mounts behind.
const live = new Map<ChildProcess, { dir: string, tmp: string }>()
process.on('exit', () => {
  for (const [child, { dir, tmp }] of live) {
    try { child.kill('SIGTERM') } catch { /* gone */ }
    spawnSync('fusermount', ['-uz', dir], { stdio: 'ignore' })
    try { rmSync(tmp, { recursive: true, force: true }) } catch { /* still busy */ }
  }
})

/** Whether something is mounted exactly at `dir`. */
export const isMounted = (dir: string): boolean =>
  readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === dir)

/** A tmp dir (for state files, snapshots), removed after the test. */
export function tmpDir (t: { teardown: (fn: () => void) => void }, prefix = 'apsim-state-'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

/** `apsim snapshot` of the mount: the `state` file's bytes. */
export async function snapshotOf (m: Mounted): Promise<string> {
  const r = await apsim('snapshot', m.dir)
  if (r.code !== 0) throw new Error(`apsim snapshot: ${r.stderr}`)
  return r.stdout
}


const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/**
 * APSIM_KERNEL=<profile> (test/helpers/kernel.ts) boots every mount with that kernel profile
 * (`--kernel`), unless the topology names its own kernel or the host comes from a state file.
 */
function withKernel (opts: MountHostOptions): MountHostOptions {
  const kernel = process.env.APSIM_KERNEL
  const args = opts.args ?? []
  if (kernel === undefined || kernel === '' || args.includes('--kernel')) return opts
  const state = args.indexOf('--state')
  if (state >= 0 && existsSync(args[state + 1])) return opts
  const text = opts.topologyYaml ?? (opts.topology !== undefined ? readFileSync(path.resolve(opts.topology), 'utf8') : undefined)
  let own: unknown
  try { own = (parseYaml(text ?? '') as { kernel?: unknown } | null)?.kernel } catch { /* the daemon reports it */ }
  return own !== undefined ? opts : { ...opts, args: [...args, '--kernel', kernel] }
}

/** Mounts a fresh apsim at a new tmp dir and resolves once it is ready. */
export async function mountHost (opts: MountHostOptions = {}): Promise<Mounted> {
  requireFuse()
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-test-'))
  const dir = opts.dir !== undefined ? path.resolve(opts.dir) : path.join(tmp, 'sys')
  const level = opts.logLevel ?? process.env.APSIM_TEST_LOG_LEVEL ?? 'info'
  const args = ['mount', dir, '--log-format', 'json', ...(level === false ? [] : ['--log-level', level])]
  opts = withKernel(opts)
  if (opts.topologyYaml !== undefined) {
    const file = path.join(tmp, 'topology.yaml')
    writeFileSync(file, opts.topologyYaml)
    args.push('--topology', file)
  } else if (opts.topology !== undefined) {
    args.push('--topology', path.resolve(opts.topology))
  }
  args.push(...(opts.args ?? []))

  const daemon = spawn(process.execPath, [CLI, ...args], {
    cwd: '/',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...ENV, APSIM_EXIT_WITH_PARENT: '1' }
  })
  live.set(daemon, { dir, tmp })
  let stderr = ''
  let stdout = ''
  daemon.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  daemon.stdout!.setEncoding('utf8')
  const exited = new Promise<void>(resolve => daemon.once('exit', () => { live.delete(daemon); resolve() }))

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`apsim mount did not report ready within ${READY_TIMEOUT_MS} ms\n${stderr}`)), READY_TIMEOUT_MS)
      daemon.stdout!.on('data', (d: string) => {
        stdout += d
        if (stdout.includes(`apsim: mounted ${dir}\n`)) { clearTimeout(timer); resolve() }
      })
      daemon.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`apsim mount exited (${signal ?? `status ${String(code)}`}) before it was ready:\n${stderr}`))
      })
    })
  } catch (e) {
    daemon.kill('SIGKILL')
    await exited
    spawnSync('fusermount', ['-uz', dir], { stdio: 'ignore' })
    rmSync(tmp, { recursive: true, force: true })
    throw e
  }

  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGTERM')
      const timedOut = await Promise.race([exited.then(() => false), sleep(10000).then(() => true)])
      if (timedOut) { daemon.kill('SIGKILL'); await exited }
    }
    for (let i = 0; isMounted(dir) && i < 100; i++) {
      if (i === 20) spawnSync('fusermount', ['-uz', dir], { stdio: 'ignore' })
      await sleep(50)
    }
    if (isMounted(dir)) throw new Error(`${dir} is still mounted after stop()`)
    rmSync(tmp, { recursive: true, force: true })
  }

  return {
    dir,
    daemon,
    log: () => stderr,
    sh: async script => await run('bash', ['-c', script], { cwd: dir, env: { ...ENV, LC_ALL: 'C', S: dir } }),
    read: async rel => await fsp.readFile(path.join(dir, rel), 'latin1'),
    dmesg: async () => await readAll(path.join(dir, 'kernel/debug/apsim/dmesg')),
    stop: async () => { stopped ??= stop(); await stopped }
  }
}

type HostFn = (t: ExecutionContext, m: Mounted) => Promise<void> | void

/**
 * An implementation for `test(title, withHost(async (t, m) => ...))`: a fresh mount per
 * test, always stopped, with the daemon's log attached when the test fails.
 */
export function withHost (fn: HostFn): (t: ExecutionContext) => Promise<void>
export function withHost (opts: MountHostOptions, fn: HostFn): (t: ExecutionContext) => Promise<void>
export function withHost (a: MountHostOptions | HostFn, b?: HostFn): (t: ExecutionContext) => Promise<void> {
  const [opts, fn] = typeof a === 'function' ? [{}, a] : [a, b as HostFn]
  return async t => {
    const m = await mountHost(opts)
    let failed = true
    try {
      await fn(t, m)
      failed = !t.passed
    } finally {
      const tail = m.log().split('\n').slice(-40).join('\n')
      await m.stop()
      if (failed) t.log(`daemon log (tail):\n${tail}`)
    }
  }
}

/**
 * One mount shared by the tests of a file (mounted in `before`, stopped in `after.always`).
 * Returns a getter; use it with `test.serial` when tests change state.
 */
export function useHost (test: TestFn, opts: MountHostOptions = {}): () => Mounted {
  let m: Mounted | undefined
  test.before(async () => { m = await mountHost(opts) })
  test.after.always(async () => { await m?.stop() })
  return () => {
    if (m === undefined) throw new Error('useHost: the mount is not ready (mountHost failed in test.before)')
    return m
  }
}
