#!/usr/bin/env node
/**
 * The `apsim` command: mount (foreground or --daemon), umount, status, and the control
 * plane (guest, lpar, events, dmesg, snapshot, restore) through the mount's control files;
 * record builds a topology from a real host's /sys.
 * Thin: the model is lib/, the FUSE mapping daemon/fuse.ts, mount bookkeeping daemon/runtime.ts,
 * the control-file client daemon/control.ts.
 */
import { spawn } from 'node:child_process'
import { closeSync, existsSync, fstatSync, openSync, promises as fsp, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError, Option } from 'commander'
import type { ServeOptions } from './serve.js'
import type { RunOptions } from './run.js'
import {
  canonicalDir, ensureRunDir, errCode, findDaemon, fusermount, isDaemon, logFileFor, mountAt, probeMount, readRecord,
  removeRecord, UserError, waitFor, FSTYPE
} from './runtime.js'
import type { LogFormat } from './log.js'
import { GUEST_NAME } from '../lib/control.js'
import type { FaultRule, Injection } from '../lib/faults.js'
import {
  controlRead, controlWrite, formatKlog, formatUevent, openControl, parseLparText, parseRecords, readGuests, showRecords,
  type Control, type KlogRecord, type Uevent
} from './control.js'

const CLI = fileURLToPath(import.meta.url)
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** Info lines go to stderr on a terminal, elsewhere only when asked (--verbose). */
const chatty = (f: { verbose?: boolean }): boolean => f.verbose === true || process.stderr.isTTY
/** Whether stderr is a regular file: a log file someone keeps (`2>>log`, `apsim run --log F`). */
const stderrIsLogFile = (): boolean => { try { return fstatSync(2).isFile() } catch { return false } }

interface MountFlags {
  topology?: string
  topologyIfExists?: string
  pidFile?: string
  kernel?: string
  state?: string
  allowOther?: boolean
  daemon?: boolean
  logLevel?: string
  logFormat?: LogFormat
  verbose?: boolean
}

async function mountCommand (dirArg: string, f: MountFlags): Promise<void> {
  if (f.topology !== undefined && f.topologyIfExists !== undefined) throw new UserError('give either --topology or --topology-if-exists, not both')
  let topology = f.topology
  if (f.topologyIfExists !== undefined && existsSync(f.topologyIfExists)) topology = f.topologyIfExists
  const opts: ServeOptions = {
    topology: topology === undefined ? undefined : path.resolve(topology),
    kernel: f.kernel,
    state: f.state === undefined ? undefined : path.resolve(f.state),
    allowOther: f.allowOther,
    // A log file (--daemon's, or stderr sent to one) gets info lines; a pipe only when asked.
    logLevel: f.logLevel ?? (f.daemon === true || chatty(f) || stderrIsLogFile() ? 'info' : 'warn'),
    logFormat: f.logFormat,
    pidFile: f.pidFile === undefined ? undefined : path.resolve(f.pidFile)
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

async function profilesCommand (f: { json?: boolean }): Promise<void> {
  const { PROFILES, changesFrom } = await import('../lib/profiles.js')
  const list = PROFILES.map(p => ({ name: p.name, summary: p.summary, changes: changesFrom(p) }))
  if (f.json === true) { process.stdout.write(JSON.stringify(list, null, 2) + '\n'); return }
  for (const p of list) {
    process.stdout.write(`${p.name}: ${p.summary}\n`)
    for (const c of p.changes) process.stdout.write(`  ${c.switch} ${String(c.from)} -> ${String(c.to)}: ${c.means}\n`)
  }
}

/** Re-spawns `apsim mount` detached; returns once it reported the mount ready or failed. */
async function daemonize (dir: string, o: ServeOptions): Promise<void> {
  const { readTopology, readStateFile } = await import('./serve.js')
  await readTopology(o.topology, o.kernel) // a bad file or profile fails here, with its message, before any fork
  const canon = await canonicalDir(dir)
  ensureRunDir()
  const logFile = logFileFor(canon)
  const args = [CLI, 'mount', dir]
  if (o.topology !== undefined) args.push('--topology', o.topology)
  if (o.kernel !== undefined) args.push('--kernel', o.kernel)
  if (o.state !== undefined) {
    readStateFile(o.state) // a corrupt state fails here, before any fork
    args.push('--state', o.state)
  }
  if (o.allowOther === true) args.push('--allow-other')
  if (o.pidFile !== undefined) args.push('--pid-file', o.pidFile)
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

/** How long `status` waits for the daemon to answer a readdir: longer, and it reports `hung` (exit 1). */
const STATUS_TIMEOUT_MS = 3000

async function statusCommand (dirArg: string, f: { json?: boolean }): Promise<void> {
  const dir = await canonicalDir(dirArg)
  const p = await probeMount(dir, STATUS_TIMEOUT_MS)
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
  if (p.state === 'hung') {
    process.stderr.write(`apsim: the daemon does not answer within ${STATUS_TIMEOUT_MS} ms (stopped or stuck); mount-scripts/apsim-clean.sh ${dirArg} detaches the mount\n`)
  }
  if (!apsim || p.state !== 'live') process.exitCode = 1
}

const json = (v: unknown): void => { process.stdout.write(JSON.stringify(v, null, 2) + '\n') }

async function dmesgCommand (dirArg: string, f: { json?: boolean, follow?: boolean }): Promise<void> {
  const c = await openControl(dirArg)
  if (f.follow !== true && f.json !== true) { process.stdout.write(await controlRead(c, 'dmesg')); return }
  await showRecords<KlogRecord>(c, 'kmsg', f.follow === true, rs => {
    if (f.json !== true) process.stdout.write(rs.map(r => formatKlog(r) + '\n').join(''))
    else if (f.follow === true) process.stdout.write(rs.map(r => JSON.stringify(r) + '\n').join(''))
    else json(rs)
  })
}

async function eventsCommand (dirArg: string, f: { json?: boolean, follow?: boolean, property?: boolean }): Promise<void> {
  const c = await openControl(dirArg)
  await showRecords<Uevent>(c, 'uevents', f.follow === true, rs => {
    if (f.json !== true) process.stdout.write(rs.map(r => formatUevent(r, f.property === true)).join(''))
    else if (f.follow === true) process.stdout.write(rs.map(r => JSON.stringify(r) + '\n').join(''))
    else json(rs)
  })
}

// ---------------------------------------------------------------------------------------
// Guests

async function guestStart (dirArg: string, name: string, uuid: string, f: { se?: boolean }): Promise<void> {
  await controlWrite(await openControl(dirArg), 'guests', `start ${name} ${uuid}${f.se === true ? ' se' : ''}\n`)
}

async function guestStop (dirArg: string, name: string): Promise<void> {
  await controlWrite(await openControl(dirArg), 'guests', `stop ${name}\n`)
}

interface FaultFlags { times?: string, probability?: string, seed?: string, match?: string, delay?: string }

async function faultAdd (dirArg: string, op: string, glob: string, errno: string, f: FaultFlags): Promise<void> {
  const words = [op, glob, errno]
  if (f.times !== undefined) words.push(`times=${f.times}`)
  if (f.probability !== undefined) words.push(`probability=${f.probability}`)
  if (f.seed !== undefined) words.push(`seed=${f.seed}`)
  if (f.match !== undefined) words.push(`match=${f.match}`)
  if (f.delay !== undefined) words.push(`delay=${f.delay}`)
  const c = await openControl(dirArg)
  await controlWrite(c, 'faults', `add ${words.join(' ')}\n`)
  const rules = await readFaults(c)
  process.stdout.write(`${rules.at(-1)?.id ?? ''}\n`)
}

async function readFaults (c: Control): Promise<FaultRule[]> {
  const { parseFaultSpec } = await import('../lib/faults.js')
  return (await controlRead(c, 'faults')).split('\n').filter(l => l !== '').map(line => {
    const words = line.split(' ')
    return { ...parseFaultSpec(words.slice(1, -1).join(' ')), id: Number(words[0]), hits: Number(words.at(-1)?.slice('hits='.length)) }
  })
}

async function faultList (dirArg: string, f: { json?: boolean, pending?: boolean }): Promise<void> {
  const c = await openControl(dirArg)
  let rules = await readFaults(c)
  if (f.pending === true) rules = rules.filter(r => r.times !== undefined && r.hits < r.times)
  if (f.json === true) json(rules)
  else process.stdout.write(rules.map(r => `${r.id} ${r.op} ${r.path} ${r.errno ?? '-'}${r.times === undefined ? '' : ` times=${r.times}`}${r.probability === undefined ? '' : ` probability=${r.probability} seed=${r.seed ?? 0}`}${r.match === undefined ? '' : ` match=${r.match}`}${r.delayMs === undefined ? '' : ` delay=${r.delayMs}`} hits=${r.hits}\n`).join(''))
  if (f.pending === true && rules.length > 0) throw new UserError(`${rules.length} fault rule(s) did not fire as often as expected`)
}

async function faultClear (dirArg: string, id: string | undefined): Promise<void> {
  const c = await openControl(dirArg)
  await controlWrite(c, 'faults', id === undefined ? 'clear\n' : `clear ${id}\n`)
}

async function faultHistory (dirArg: string, f: { json?: boolean }): Promise<void> {
  const c = await openControl(dirArg)
  const records = parseRecords<Injection>(await controlRead(c, 'fault_history'), 'fault_history')
  if (f.json === true) { json(records); return }
  process.stdout.write(records.map(i => `${i.seq} rule ${i.rule}: ${i.op} ${i.path} -> ${i.errno ?? 'delayed'}${i.delayMs === undefined ? '' : ` after ${i.delayMs} ms`}\n`).join(''))
}

async function guestList (dirArg: string, f: { json?: boolean }): Promise<void> {
  const c = await openControl(dirArg)
  if (f.json === true) { json(await readGuests(c)); return }
  process.stdout.write(await controlRead(c, 'guests'))
}

async function guestView (dirArg: string, name: string, f: { json?: boolean }): Promise<void> {
  const c = await openControl(dirArg)
  if (!GUEST_NAME.test(name)) throw new UserError(`no running guest ${JSON.stringify(name)} on ${dirArg}`)
  const root = c.file(`guest/${name}/sys`)
  try {
    if (!(await fsp.stat(root)).isDirectory()) throw new Error('not a directory')
  } catch (e) {
    if (errCode(e) === 'ENOENT') throw new UserError(`no running guest ${JSON.stringify(name)} on ${dirArg}`)
    throw new UserError(`cannot look at guest ${name}: ${(e as Error).message}`)
  }
  if (f.json === true) json({ name, sysfsRoot: root })
  else process.stdout.write(root + '\n')
}

// ---------------------------------------------------------------------------------------
// The machine's AP configuration

async function lparCommand (dirArg: string, words: string[], f: { json?: boolean, file?: string }): Promise<void> {
  const c = await openControl(dirArg)
  let batch: string | undefined
  if (f.file !== undefined) {
    if (words.length > 0) throw new UserError('give either a command or -f FILE, not both')
    batch = await readBatch(f.file)
  } else if (words.length === 1 && words[0] === '-') {
    batch = await readBatch('-')
  } else if (words.length > 0) {
    batch = words.join(' ') + '\n'
  }
  if (batch === undefined) {
    const text = await controlRead(c, 'lpar')
    if (f.json === true) json(parseLparText(text))
    else process.stdout.write(text)
    return
  }
  if (f.json === true) throw new UserError('--json is for showing the configuration; a change prints nothing')
  if (batch.trim() === '') throw new UserError('no commands to apply')
  await controlWrite(c, 'lpar', batch)
}

async function readBatch (file: string): Promise<string> {
  try {
    if (file !== '-') return await fsp.readFile(file, 'utf8')
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  } catch (e) {
    throw new UserError(`cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`)
  }
}

// ---------------------------------------------------------------------------------------
// Snapshots and recording

async function snapshotCommand (dirArg: string): Promise<void> {
  process.stdout.write(await controlRead(await openControl(dirArg), 'state'))
}

/** The absolute path of a snapshot file the daemon is to read, checked readable first. */
async function snapshotPath (file: string): Promise<string> {
  const abs = path.resolve(file)
  try {
    await fsp.access(abs, fsp.constants.R_OK)
  } catch (e) {
    throw new UserError(`cannot read ${file}: ${(e as Error).message}`)
  }
  return abs
}

async function restoreCommand (dirArg: string, file: string): Promise<void> {
  const c = await openControl(dirArg)
  await controlWrite(c, 'restore', await snapshotPath(file) + '\n')
}

async function resetCommand (dirArg: string, file: string | undefined): Promise<void> {
  const c = await openControl(dirArg)
  await controlWrite(c, 'reset', file === undefined ? '1\n' : await snapshotPath(file) + '\n')
}

async function recordCommand (rootArg: string, f: { json?: boolean, output?: string, verbose?: boolean }): Promise<void> {
  const { recordTopology, RecordError } = await import('../lib/record.js')
  const { TopologyError } = await import('../lib/topology.js')
  const root = path.resolve(rootArg)
  const read = (rel: string): string | undefined => { try { return readFileSync(path.join(root, rel), 'latin1') } catch { return undefined } }
  const list = (rel: string): string[] | undefined => { try { return readdirSync(path.join(root, rel)) } catch { return undefined } }
  const { ttyProgress } = await import('./progress.js')
  const { createLogger } = await import('./log.js')
  const progress = ttyProgress(`apsim: recording ${rootArg}`, 'cards')
  const t0 = Date.now()
  let recorded: ReturnType<typeof recordTopology>
  try {
    recorded = recordTopology(read, list, progress.update)
  } catch (e) {
    if (e instanceof RecordError || e instanceof TopologyError) throw new UserError(`${rootArg}: ${e.message}`)
    throw e
  } finally {
    progress.end()
  }
  const adapters = (recorded.topology.adapters as unknown[] | undefined)?.length ?? 0
  if (chatty(f)) createLogger().info({ root, ms: Date.now() - t0, adapters }, `recorded ${adapters} adapters from ${root} in ${Date.now() - t0} ms`)
  for (const n of recorded.notes) process.stderr.write(`apsim: note: ${n}\n`)
  const text = f.json === true ? JSON.stringify(recorded.topology, null, 2) + '\n' : await topologyYaml(recorded.topology, root)
  if (f.output === undefined) { process.stdout.write(text); return }
  try { await fsp.writeFile(f.output, text) } catch (e) { throw new UserError(`cannot write ${f.output}: ${(e as Error).message}`) }
}

/** The topology as YAML, facility words and domains in hex, one flow mapping per adapter. */
async function topologyYaml (topology: Record<string, unknown>, root: string): Promise<string> {
  const { Document, isScalar, isSeq, visit } = await import('yaml')
  const doc = new Document(topology)
  doc.commentBefore = ` recorded by apsim record from ${root}`
  visit(doc, {
    Pair (_, pair) {
      const key = isScalar(pair.key) ? pair.key.value : undefined
      if (key === 'functions' && isScalar(pair.value)) pair.value.format = 'HEX'
      if ((key === 'usage_domains' || key === 'control_domains' || key === 'features') && isSeq(pair.value)) {
        pair.value.flow = true
        for (const i of pair.value.items) if (isScalar(i) && typeof i.value === 'number') i.format = 'HEX'
      }
      if (key === 'adapters' && isSeq(pair.value)) for (const i of pair.value.items) (i as { flow?: boolean }).flow = true
    }
  })
  return doc.toString({ lineWidth: 0, flowCollectionPadding: true })
}

const verbose = (): Option => new Option('-v, --verbose', 'info lines on stderr even when it is not a terminal')

const program = new Command('apsim')
  .description('A FUSE simulation of the Linux s390 AP bus sysfs (bus/ap, devices/ap, vfio_ap)')
  .version(VERSION)
  .showHelpAfterError()
  .enablePositionalOptions() // `apsim run --topology F -- CMD --its-own-options`
  // Usage errors (unknown command or option, missing argument) exit 2, as coreutils do; the
  // subcommands defined below inherit this.
  .exitOverride((e: CommanderError) => { process.exit(e.exitCode === 0 ? 0 : 2) })

program.command('mount')
  .description('mount the simulated sysfs at DIR (DIR plays /sys); foreground unless --daemon')
  .argument('<dir>', 'mount point (created if missing, must be empty)')
  .option('--topology <file>', 'host topology (YAML or JSON); default: the kernel documentation example')
  .option('--kernel <profile>', "the kernel generation to simulate (see 'apsim profiles'); default: the topology's, else newest")
  .option('--state <file>', 'boot from FILE if it exists (else from the topology), and save the whole host there after every successful write')
  .option('--allow-other', 'let users other than root use the mount')
  .option('--topology-if-exists <file>', 'the topology FILE if it exists, else the default (for unit files)')
  .option('--daemon', 'run in the background; return once the mount is ready')
  .option('--pid-file <file>', "write the daemon's pid to FILE once the mount is ready (systemd's PIDFile=); removed on exit")
  .addOption(new Option('--log-level <level>', 'log level (default: info on a terminal, with --daemon or --verbose; else warn)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .addOption(verbose())
  .addOption(new Option('--log-format <format>', 'log format (default: pretty on a terminal, else json)').choices(['json', 'pretty']))
  .action(mountCommand)

program.command('umount')
  .alias('unmount')
  .description('unmount the apsim mount at DIR and stop its daemon')
  .argument('<dir>')
  .action(umountCommand)

program.command('status')
  .description('whether an apsim mount is live at DIR (exit 1 if not; `hung` if its daemon does not answer within 3 s)')
  .argument('<dir>')
  .option('--json', 'machine-readable output')
  .action(statusCommand)

program.command('dmesg')
  .description('print the simulated kernel log of the mount at DIR')
  .argument('<dir>')
  .option('-w, --follow', 'wait for new messages and print them as they come')
  .option('--json', 'the records ({seq, usec, level, text}): a JSON array; with -w one JSON object per line')
  .action(dmesgCommand)

program.command('events')
  .description('print the uevents the simulated kernel sent, as udevadm monitor --kernel does')
  .argument('<dir>')
  .option('-f, --follow', 'wait for new events and print them as they come')
  .option('-p, --property', 'also print the event properties (ACTION=, DEVPATH=, SUBSYSTEM=, ...)')
  .option('--json', 'the records ({seq, usec, action, devpath, subsystem, env}): a JSON array; with -f one JSON object per line')
  .action(eventsCommand)

const guest = program.command('guest')
  .description('start and stop guests on mdevs (what QEMU does), list them, show their view of the AP bus')
guest.command('start')
  .description('start guest NAME on the mdev UUID: the guest gets the mdev\'s shadow matrix')
  .argument('<dir>').argument('<name>').argument('<uuid>')
  .option('--se', 'a Secure Execution guest: its AP bus has APSB, its queues se_bind and se_associate')
  .action(guestStart)
guest.command('stop')
  .description('stop guest NAME: the mdev is released (a blocked remove of it completes)')
  .argument('<dir>').argument('<name>')
  .action(guestStop)
guest.command('list')
  .description('the running guests: NAME UUID [se]')
  .argument('<dir>')
  .option('--json', '[{name, mdev, se, apcb: {apm, aqm, adm}, updates}]')
  .action(guestList)
guest.command('view')
  .description('the absolute path of guest NAME\'s own sysfs root (for SYSFS_ROOT=... lszcrypt)')
  .argument('<dir>').argument('<name>')
  .option('--json', '{name, sysfsRoot}')
  .action(guestView)

const fault = program.command('fault')
  .description('make matching operations fail on purpose, to test a tool\'s error handling (each injection is logged and shown by apsim events as APSIM)')
fault.command('add')
  .description('add a rule: OP is open, read, write or any; GLOB a path under DIR with links resolved (* within a name, ** across); ERRNO e.g. EBUSY, or - for a delay only. Prints the rule id')
  .argument('<dir>').argument('<op>').argument('<glob>').argument('<errno>')
  .option('--times <n>', 'fire N times (default: every time)')
  .option('--probability <p>', 'fire with probability P (0..1)')
  .option('--seed <s>', 'seed of the probability draws (default 0)')
  .option('--match <value>', 'only writes of exactly VALUE (one trailing newline ignored)')
  .option('--delay <ms>', 'writes wait MS milliseconds first')
  .action(faultAdd)
fault.command('list')
  .description('the rules with their hit counts')
  .argument('<dir>')
  .option('--pending', 'only rules with --times that have not fired that often; exit 1 if there are any')
  .option('--json', '[{id, op, path, errno, times, probability, seed, match, delayMs, hits}]')
  .action(faultList)
fault.command('clear')
  .description('remove rule ID, or all rules')
  .argument('<dir>').argument('[id]')
  .action(faultClear)
fault.command('history')
  .description('every injected failure so far')
  .argument('<dir>')
  .option('--json', '[{seq, rule, op, path, errno, delayMs}]')
  .action(faultHistory)

program.command('lpar')
  .description('show the machine\'s AP configuration, or change it: add-adapter ID TYPE MODE, remove-adapter ID, ' +
    'configure ID on|off, checkstop ID on|off, add-usage-domain ID, remove-usage-domain ID, add-control-domain ID, ' +
    'remove-control-domain ID, scan (all or nothing, then one AP bus scan)')
  .argument('<dir>')
  .argument('[command...]', 'one command; `-` reads a batch of lines from standard input')
  .option('-f, --file <file>', 'a batch of commands, one per line (`-`: standard input), applied with one scan')
  .option('--json', 'show as {adapters: [{id, type, mode, configured, checkstopped}], usage_domains, control_domains}')
  .action(lparCommand)

program.command('snapshot')
  .description('print the whole simulated host as JSON (for apsim restore and mount --state)')
  .argument('<dir>')
  .option('--json', 'the same (the snapshot is JSON)')
  .action(snapshotCommand)

program.command('restore')
  .description('replace the whole simulated host by a snapshot file')
  .argument('<dir>').argument('<file>')
  .action(restoreCommand)

program.command('reset')
  .description('a test fixture\'s reset: the whole host back to the state it booted in (or to SNAPSHOT), no fault rules')
  .argument('<dir>').argument('[snapshot]', 'a snapshot file (apsim snapshot DIR > FILE)')
  .action(resetCommand)

program.command('record')
  .description('write a topology file (YAML) describing the AP bus of a real host\'s sysfs tree ROOT (e.g. /sys)')
  .argument('<root>')
  .option('--json', 'write JSON instead of YAML')
  .option('-o, --output <file>', 'write to FILE instead of standard output')
  .addOption(verbose())
  .action(recordCommand)

program.command('run')
  .description('run CMD against a fresh simulated host (or --root DIR): in private mount and network namespaces with the tree over /sys ' +
    '(a user namespace too when not root), udev events relayed there, SYSFS_ROOT=/sys and SYSTEMD_DEVICE_VERIFY_SYSFS=0 exported; ' +
    'exits with CMD\'s status (128+N for signal N, 125 if apsim failed)')
  .argument('<cmd...>', 'the command and its arguments (after --)')
  .option('--topology <file>', 'host topology (YAML or JSON) of the fresh host')
  .option('--kernel <profile>', "the kernel generation to simulate (see 'apsim profiles')")
  .option('--state <file>', 'boot the fresh host from FILE if it exists, and save it there after every write')
  .option('--root <dir>', 'use the running host mounted at DIR instead of a fresh one')
  .option('--env-only', 'no namespace, no udev events: only the variables (SYSFS_ROOT=<mount>, APSYSFS_BUSDIR, APSYSFS_DEVSDIR, APSIM_ROOT, MDEVCTL_ENV_ROOT)')
  .option('--share-net', "keep the host's network namespace (then udev listeners get no events)")
  .option('--mdevctl-dir <dir>', 'bind DIR over /etc/mdevctl.d (default: a fresh, empty one)')
  .addOption(verbose())
  .option('--log <file>', "append the daemon's log (JSON lines) to FILE")
  .passThroughOptions()
  .exitOverride(e => { process.exit(e.exitCode === 0 ? 0 : 125) }) // a usage error is apsim failing: 125, as documented
  .action(async (cmd: string[], f: RunOptions) => {
    const { runCommand } = await import('./run.js')
    process.exit(await runCommand(cmd, f, CLI))
  })

program.command('profiles')
  .description('list the kernel profiles and what each changes from the one before it')
  .option('--json', '[{name, summary, changes: [{switch, from, to, means}]}]')
  .action(profilesCommand)

// A closed pipe (| head) ends a command quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); throw e })

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`apsim: ${e instanceof UserError ? e.message : String((e as Error)?.stack ?? e)}\n`)
  process.exit(e instanceof UserError ? e.exitCode : 1)
})
