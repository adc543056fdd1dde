#!/usr/bin/env node
/**
 * The `apsim` command: mount (foreground or --daemon), umount, status, dmesg.
 * Thin: the model is lib/, the FUSE mapping daemon/fuse.ts, mount bookkeeping daemon/runtime.ts.
 */
import { spawn } from 'node:child_process'
import { closeSync, openSync, promises as fsp } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, Option } from 'commander'
import type { ServeOptions } from './serve.js'
import {
  canonicalDir, ensureRunDir, errCode, findDaemon, fusermount, isDaemon, logFileFor, mountAt, probeMount, readAll, readRecord,
  removeRecord, UserError, waitFor, FSTYPE
} from './runtime.js'
import type { LogFormat } from './log.js'

const CLI = fileURLToPath(import.meta.url)
const DMESG = 'kernel/debug/apsim/dmesg'

interface MountFlags {
  topology?: string
  state?: string
  allowOther?: boolean
  daemon?: boolean
  logLevel?: string
  logFormat?: LogFormat
}

async function mountCommand (dirArg: string, f: MountFlags): Promise<void> {
  const opts: ServeOptions = {
    topology: f.topology === undefined ? undefined : path.resolve(f.topology),
    state: f.state === undefined ? undefined : path.resolve(f.state),
    allowOther: f.allowOther,
    logLevel: f.logLevel,
    logFormat: f.logFormat
  }
  const dir = path.resolve(dirArg)
  if (f.daemon === true) return await daemonize(dir, opts)
  const { serve } = await import('./serve.js') // the FUSE binding and the model: only to mount
  const child = process.send !== undefined && process.env.APSIM_DAEMON_CHILD === '1'
  if (child) opts.logFile = process.env.APSIM_LOG_FILE
  try {
    await serve(dir, opts, () => {
      process.stdout.write(`apsim: mounted ${dir}\n`)
      if (child) { process.send?.({ ready: true }); process.disconnect?.() }
    })
  } catch (e) {
    const error = e instanceof UserError ? e.message : String((e as Error)?.stack ?? e)
    if (child) await new Promise<void>(resolve => process.send?.({ error }, undefined, {}, () => resolve()))
    throw e
  }
}

/** Re-spawns `apsim mount` detached; returns once it reported the mount ready or failed. */
async function daemonize (dir: string, o: ServeOptions): Promise<void> {
  const { readTopology, readStateFile } = await import('./serve.js')
  await readTopology(o.topology) // a bad file fails here, with its message, before any fork
  const canon = await canonicalDir(dir)
  ensureRunDir()
  const logFile = logFileFor(canon)
  const args = [CLI, 'mount', dir]
  if (o.topology !== undefined) args.push('--topology', o.topology)
  if (o.state !== undefined) {
    readStateFile(o.state) // a corrupt state fails here, before any fork
    args.push('--state', o.state)
  }
  if (o.allowOther === true) args.push('--allow-other')
  if (o.logLevel !== undefined) args.push('--log-level', o.logLevel)
  args.push('--log-format', o.logFormat ?? 'json')
  const fd = openSync(logFile, 'a')
  const child = spawn(process.execPath, args, {
    detached: true,
    cwd: '/',
    stdio: ['ignore', 'ignore', fd, 'ipc'],
    env: { ...process.env, APSIM_DAEMON_CHILD: '1', APSIM_LOG_FILE: logFile, APSIM_EXIT_WITH_PARENT: '' }
  })
  closeSync(fd)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGTERM'); reject(new UserError(`the daemon did not report the mount within 30 s; see ${logFile}`)) }, 30000)
    child.on('message', (m: { ready?: boolean, error?: string }) => {
      clearTimeout(timer)
      if (m.ready === true) resolve()
      else reject(new UserError(m.error ?? 'the daemon failed'))
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new UserError(`the daemon exited (${signal ?? `status ${String(code)}`}) before the mount was ready; see ${logFile}`))
    })
    child.on('error', e => { clearTimeout(timer); reject(e) })
  })
  child.removeAllListeners()
  if (child.connected) child.disconnect()
  child.unref()
  process.stdout.write(`apsim: mounted ${dir}\n`)
}

async function umountCommand (dirArg: string): Promise<void> {
  const dir = await canonicalDir(dirArg)
  const m = await mountAt(dir)
  if (m === undefined) {
    removeRecord(dir)
    throw new UserError(`${dirArg} is not mounted`)
  }
  if (m.fstype !== FSTYPE) throw new UserError(`${dirArg} is not an apsim mount (${m.fstype})`)
  const gone = async (): Promise<boolean> => (await mountAt(dir))?.id !== m.id
  const pid = findDaemon(dir)
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM')
    await waitFor(async () => await gone() && !isDaemon(pid), 10000)
  }
  if (!await gone()) await fusermount(dir) // no daemon known, or it did not answer
  if (!await waitFor(gone, 5000)) throw new UserError(`${dirArg} is still mounted`)
  if (pid !== undefined && !await waitFor(() => !isDaemon(pid), 5000)) {
    process.kill(pid, 'SIGKILL')
  }
  removeRecord(dir)
  process.stdout.write(`apsim: unmounted ${dirArg}\n`)
}

async function countEntries (dir: string): Promise<{ cards: number, queues: number, mdevs: number }> {
  const list = async (p: string): Promise<string[]> => { try { return await fsp.readdir(path.join(dir, p)) } catch { return [] } }
  const cards = (await list('devices/ap')).filter(n => /^card[0-9a-f]{2}$/.test(n))
  let queues = 0
  for (const c of cards) queues += (await list(`devices/ap/${c}`)).filter(n => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(n)).length
  const mdevs = (await list('devices/vfio_ap/matrix')).filter(n => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(n)).length
  return { cards: cards.length, queues, mdevs }
}

async function statusCommand (dirArg: string, f: { json?: boolean }): Promise<void> {
  const dir = await canonicalDir(dirArg)
  const p = await probeMount(dir)
  const r = readRecord(dir)
  const apsim = p.state !== 'absent' && p.mount.fstype === FSTYPE
  const pid = apsim ? findDaemon(dir) : undefined
  const counts = apsim && p.state === 'live' ? await countEntries(dir) : undefined
  const status = {
    dir,
    mounted: apsim,
    state: apsim ? p.state : 'absent',
    pid: apsim ? pid : undefined,
    topology: apsim ? r?.topology : undefined,
    stateFile: apsim ? r?.state : undefined,
    startedAt: apsim ? r?.startedAt : undefined,
    logFile: apsim ? r?.logFile : undefined,
    options: apsim ? r?.options : undefined,
    ...counts
  }
  if (f.json === true) {
    process.stdout.write(JSON.stringify(status, null, 2) + '\n')
  } else if (!apsim) {
    const other = p.state !== 'absent' ? ` (a ${p.mount.fstype} mount is there)` : ''
    process.stdout.write(`apsim: ${dirArg} is not mounted${other}\n`)
  } else {
    const lines = [`apsim: ${dirArg} is mounted (${p.state}${pid !== undefined ? `, pid ${pid}` : ', daemon pid unknown'})`]
    if (r !== undefined) lines.push(`topology: ${r.topology}`, `started: ${r.startedAt}`)
    if (r?.state !== undefined) lines.push(`state: ${r.state}`)
    if (r?.logFile !== undefined) lines.push(`log: ${r.logFile}`)
    if (counts !== undefined) lines.push(`cards: ${counts.cards}, queues: ${counts.queues}, mdevs: ${counts.mdevs}`)
    process.stdout.write(lines.join('\n') + '\n')
  }
  if (!apsim || p.state !== 'live') process.exitCode = 1
}

async function dmesgCommand (dirArg: string, f: { json?: boolean }): Promise<void> {
  const dir = await canonicalDir(dirArg)
  const m = await mountAt(dir)
  if (m?.fstype !== FSTYPE) throw new UserError(`${dirArg} is not an apsim mount`)
  let text: string
  try {
    text = await readAll(path.join(dir, DMESG))
  } catch (e) {
    throw new UserError(`cannot read ${path.join(dirArg, DMESG)}: ${errCode(e) ?? (e as Error).message}`)
  }
  if (f.json !== true) { process.stdout.write(text); return }
  const records = text.split('\n').filter(l => l !== '').map(line => {
    const m = /^\[\s*(\d+)\.(\d{6})\] (.*)$/.exec(line)
    return m === null ? { text: line } : { time: Number(`${m[1]}.${m[2]}`), usec: Number(m[1]) * 1e6 + Number(m[2]), text: m[3] }
  })
  process.stdout.write(JSON.stringify(records, null, 2) + '\n')
}

const program = new Command('apsim')
  .description('A FUSE simulation of the Linux s390 AP bus sysfs (bus/ap, devices/ap, vfio_ap)')
  .showHelpAfterError()

program.command('mount')
  .description('mount the simulated sysfs at DIR (DIR plays /sys); foreground unless --daemon')
  .argument('<dir>', 'mount point (created if missing, must be empty)')
  .option('--topology <file>', 'host topology (YAML or JSON); default: the kernel documentation example')
  .option('--state <file>', 'boot from FILE if it exists (else from the topology), and save the whole host there after every successful write')
  .option('--allow-other', 'let users other than root use the mount')
  .option('--daemon', 'run in the background; return once the mount is ready')
  .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .addOption(new Option('--log-format <format>', 'log format (default: pretty on a terminal, else json)').choices(['json', 'pretty']))
  .action(mountCommand)

program.command('umount')
  .alias('unmount')
  .description('unmount the apsim mount at DIR and stop its daemon')
  .argument('<dir>')
  .action(umountCommand)

program.command('status')
  .description('whether an apsim mount is live at DIR (exit 1 if not)')
  .argument('<dir>')
  .option('--json', 'machine-readable output')
  .action(statusCommand)

program.command('dmesg')
  .description('print the simulated kernel log of the mount at DIR')
  .argument('<dir>')
  .option('--json', 'one JSON record per line of the log')
  .action(dmesgCommand)

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`apsim: ${e instanceof UserError ? e.message : String((e as Error)?.stack ?? e)}\n`)
  process.exit(e instanceof UserError ? e.exitCode : 1)
})
