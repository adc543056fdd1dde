/**
 * `npm run bench`: apsim against its baselines, measured in the same run and interleaved
 * (each round runs every target once, in a rotating order), since FUSE latency on a small VM
 * is bimodal and only same-run ratios mean anything (fuse.md §8). Prints Markdown tables of
 * medians over the rounds; `--out FILE` also writes them to FILE. Mounts everything under a
 * fresh /tmp directory and unmounts it all on the way out, whatever happens.
 *
 *   node build/bench/run.js [--rounds N] [--quick] [--out FILE] [--skip-find]
 *
 * Baselines: the trivial fuse-native server (bench/trivial-server.ts, apsim's mount options),
 * the same files on tmpfs (/dev/shm), and a real sysfs attribute of this machine.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { machine, median, ms, ratio, us, type Latency } from './stats.js'
import { ALL_ONES, ALL_ZEROS, fullSizeTopology, uuidOf } from './topologies.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const CLI = path.join(HERE, '../daemon/cli.js')
const CLIENT = path.join(HERE, 'client.js')
const TRIVIAL = path.join(HERE, 'trivial-server.js')
const INPROC = path.join(HERE, 'inproc.js')

const argv = process.argv.slice(2)
const flag = (name: string): boolean => argv.includes(name)
const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i < 0 ? undefined : argv[i + 1] }
const quick = flag('--quick')
const ROUNDS = Number(opt('--rounds') ?? (quick ? 2 : 5))
const OUT = opt('--out')
const N_READ = quick ? 500 : 2000
const N_CAT = quick ? 50 : 200
const N_STORE = quick ? 300 : 1000

const started = Date.now()
const log = (s: string): void => { process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`) }

// ---------------------------------------------------------------------------------------
// Mounts and their cleanup

const ROOT = mkdtempSync('/tmp/apsim-bench-')
const SHM = mkdtempSync('/dev/shm/apsim-bench-')
const RUN_DIR = path.join(ROOT, 'run')
mkdirSync(RUN_DIR)
const ENV = { ...process.env, APSIM_RUN_DIR: RUN_DIR, APSIM_EXIT_WITH_PARENT: '1' }

interface Server { name: string, dir: string, proc: ChildProcess, readyMs: number, exited: Promise<void> }
const live = new Set<Server>()

function cleanup (): void {
  for (const s of live) {
    try { s.proc.kill('SIGKILL') } catch { /* gone */ }
    spawnSync('fusermount', ['-uz', s.dir], { stdio: 'ignore' })
  }
  live.clear()
  rmSync(SHM, { recursive: true, force: true })
  if (!isMountedUnder(ROOT)) rmSync(ROOT, { recursive: true, force: true })
}
function isMountedUnder (dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => (l.split(' ')[4] ?? '').startsWith(dir + '/'))
}
process.on('exit', cleanup)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { log(`${sig}: cleaning up`); process.exit(130) })

/** Starts a server process and resolves once it printed `ready` on stdout. */
async function startServer (name: string, dir: string, args: string[], ready: string): Promise<Server> {
  mkdirSync(dir, { recursive: true })
  const logFd = openSync(path.join(ROOT, `${name}.log`), 'a')
  const t0 = performance.now()
  const proc = spawn(process.execPath, args, { cwd: '/', env: ENV, stdio: ['ignore', 'pipe', logFd] })
  closeSync(logFd)
  const exited = new Promise<void>(resolve => proc.once('exit', () => resolve()))
  const server: Server = { name, dir, proc, readyMs: 0, exited }
  live.add(server)
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${name} not ready after 60 s (log: ${ROOT}/${name}.log)`)), 60000)
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d
      if (out.includes(ready)) { clearTimeout(timer); server.readyMs = performance.now() - t0; resolve() }
    })
    proc.once('exit', code => { clearTimeout(timer); reject(new Error(`${name} exited (${String(code)}) before it was ready; log: ${ROOT}/${name}.log`)) })
  })
  return server
}

const apsim = async (name: string, topology?: string): Promise<Server> => {
  const dir = path.join(ROOT, name)
  return await startServer(name, dir, [CLI, 'mount', dir, '--log-format', 'json', ...(topology === undefined ? [] : ['--topology', topology])], `apsim: mounted ${dir}`)
}
const trivial = async (name: string, config: unknown): Promise<Server> => {
  const dir = path.join(ROOT, name)
  const file = path.join(ROOT, `${name}.json`)
  writeFileSync(file, JSON.stringify(config))
  return await startServer(name, dir, [TRIVIAL, dir, file], 'mounted')
}

async function stopServer (s: Server): Promise<void> {
  s.proc.kill('SIGTERM')
  const timeout = new Promise<boolean>(resolve => setTimeout(() => resolve(true), 10000).unref())
  if (await Promise.race([s.exited.then(() => false), timeout])) { s.proc.kill('SIGKILL'); await s.exited }
  for (let i = 0; i < 100 && isMountedUnder(path.dirname(s.dir)) && mountedAt(s.dir); i++) {
    if (i === 20) spawnSync('fusermount', ['-uz', s.dir], { stdio: 'ignore' })
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  live.delete(s)
}
const mountedAt = (dir: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === dir)

const rss = (pid: number, field: 'VmRSS' | 'VmHWM'): number => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

// ---------------------------------------------------------------------------------------
// Clients

async function client<T> (...args: string[]): Promise<T> {
  return await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    p.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
    p.on('exit', code => code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`client ${args.join(' ')}: ${err}`)))
  })
}

/** Wall time of one command, its stdout line count. */
function timed (cmd: string, args: string[]): { ms: number, lines: number } {
  const t0 = performance.now()
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 })
  const t = performance.now() - t0
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.toString().slice(0, 500)}`)
  return { ms: t, lines: r.stdout.toString().split('\n').length - 1 }
}

/**
 * Runs `measure(target)` for every target in every round, rotating the order each round;
 * returns the per-target lists of results.
 */
async function interleave<T> (targets: string[], rounds: number, measure: (target: string, round: number) => Promise<T> | T): Promise<Record<string, T[]>> {
  const res: Record<string, T[]> = Object.fromEntries(targets.map(t => [t, []]))
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + r) % targets.length]
      res[t].push(await measure(t, r))
    }
  }
  return res
}

/**
 * `client MODE N PATH...` once per round with the targets side by side (the client alternates
 * between them op by op; the order rotates each round); per-target results.
 */
async function sideBySide (mode: 'read' | 'cat', n: number, targets: Record<string, string>, rounds: number): Promise<Record<string, Latency[]>> {
  const names = Object.keys(targets)
  const res: Record<string, Latency[]> = Object.fromEntries(names.map(t => [t, []]))
  for (let r = 0; r < rounds; r++) {
    const order = names.map((_, k) => names[(k + r) % names.length])
    const out = await client<Latency[]>(mode, String(n), ...order.map(t => targets[t]))
    order.forEach((t, k) => res[t].push(out[k]))
  }
  return res
}

/** Median per round of a/b: the same-run ratio. */
const roundRatio = (a: number[], b: number[]): number => median(a.map((x, i) => x / b[i]))

// ---------------------------------------------------------------------------------------
// Report

const lines: string[] = []
const emit = (s = ''): void => { lines.push(s); process.stdout.write(s + '\n') }
const table = (head: string[], rows: string[][]): void => {
  emit(`| ${head.join(' | ')} |`)
  emit(`|${head.map((_, i) => i === 0 ? '---' : '---:').join('|')}|`)
  for (const r of rows) emit(`| ${r.join(' | ')} |`)
  emit()
}

// ---------------------------------------------------------------------------------------

async function main (): Promise<void> {
  const m = machine()
  const fnVersion = (JSON.parse(readFileSync(path.join(HERE, '../../node_modules/fuse-native/package.json'), 'utf8')) as { version: string }).version
  emit(`Machine: ${m.cpu}, ${m.nproc} CPUs, ${m.memory}, ${m.kernel}, Node ${m.node}, fuse-native ${fnVersion}.`)
  emit(`Command: \`npm run bench${argv.length > 0 ? ' -- ' + argv.join(' ') : ''}\` (${ROUNDS} rounds; latency loops alternate between their targets op by op; figures are medians over the rounds, ratios the median of the per-round ratios).`)
  emit()

  // -- Fixtures: the default host, the trivial server with the same files, tmpfs, sysfs
  const Q = 'devices/ap/card04/04.0004/online'
  const MDEV = '62177883-f1bb-47f0-914d-32a22e3a8804'
  const MD = `devices/vfio_ap/matrix/${MDEV}`
  log('mounting the default host and the trivial server')
  const a = await apsim('apsim')
  const trivialFiles: Record<string, string> = {
    [`/${Q}`]: '1\n',
    [`/${MD}/assign_domain`]: '',
    [`/${MD}/unassign_domain`]: '',
    '/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create': '',
    // the 512-APQN mdev's matrix, at the same depth as apsim's
    [`/devices/vfio_ap/matrix/${uuidOf(0)}/matrix`]: '00.0000\n'.repeat(512).slice(0, 4095)
  }
  const tv = await trivial('trivial', {
    files: trivialFiles,
    bigdir: { path: '/bus/ap/devices', count: 65792 },
    // devices/ap of the full-size host: see the find section for where the counts come from
    tree: { path: '/ap-tree', cards: 256, cardFiles: 19, queues: 256, queueFiles: 15, powerFiles: 4 }
  })
  mkdirSync(path.join(SHM, path.dirname(Q)), { recursive: true })
  writeFileSync(path.join(SHM, Q), '1\n')
  const SYS = ['/sys/devices/system/cpu/cpu1/online', '/sys/devices/system/cpu/cpu0/topology/core_id', '/sys/kernel/mm/transparent_hugepage/enabled'].find(p => { try { readFileSync(p); return true } catch { return false } })
  const readTargets: Record<string, string> = {
    apsim: path.join(a.dir, Q),
    trivial: path.join(tv.dir, Q),
    tmpfs: path.join(SHM, Q),
    ...(SYS === undefined ? {} : { sysfs: SYS })
  }
  emit(`Attribute read: \`${Q}\` (depth 5) on apsim (default host), on the trivial server and on tmpfs (/dev/shm); sysfs: \`${SYS ?? '(none readable)'}\`.`)
  emit()

  // -- 1. Read of one attribute
  log('1. attribute read: readFileSync loop and cat loop')
  const names = Object.keys(readTargets)
  const rd = await sideBySide('read', N_READ, readTargets, ROUNDS)
  const ct = await sideBySide('cat', N_CAT, readTargets, ROUNDS)
  emit('### Read of one attribute')
  emit()
  table(['target', `readFileSync p50`, 'p99', 'apsim ÷ target (p50)', `cat spawn p50`, 'p99', 'apsim ÷ target (p50)'],
    names.map(t => [t,
      us(median(rd[t].map(x => x.p50))), us(median(rd[t].map(x => x.p99))), t === 'apsim' ? '' : ratio(1, 1 / roundRatio(rd.apsim.map(x => x.p50), rd[t].map(x => x.p50))),
      us(median(ct[t].map(x => x.p50))), us(median(ct[t].map(x => x.p99))), t === 'apsim' ? '' : ratio(1, 1 / roundRatio(ct.apsim.map(x => x.p50), ct[t].map(x => x.p50)))]))

  // -- 2. Store of an assignment
  log('2. assignment store loop')
  writeFileSync(path.join(a.dir, 'bus/ap/apmask'), '-5\n')
  writeFileSync(path.join(a.dir, 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create'), MDEV)
  writeFileSync(path.join(a.dir, MD, 'assign_adapter'), '5\n')
  const storeArgs = (dir: string): string[] => [path.join(dir, MD, 'assign_domain'), '4\n', path.join(dir, MD, 'unassign_domain'), '4\n']
  const st: Record<string, Latency[]> = { apsim: [], trivial: [] }
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['apsim', 'trivial'] : ['trivial', 'apsim']
    const out = await client<Latency[]>('store', String(N_STORE), ...storeArgs(order[0] === 'apsim' ? a.dir : tv.dir), '--', ...storeArgs(order[1] === 'apsim' ? a.dir : tv.dir))
    order.forEach((t, k) => st[t].push(out[k]))
  }
  emit('### Store of an assignment (`echo 4 > assign_domain`, `echo 4 > unassign_domain`, alternating; open + write + close)')
  emit()
  table(['target', 'p50', 'p99', 'apsim ÷ trivial (p50)'], ['apsim', 'trivial'].map(t => [t,
    us(median(st[t].map(x => x.p50))), us(median(st[t].map(x => x.p99))), t === 'apsim' ? ratio(1, 1 / roundRatio(st.apsim.map(x => x.p50), st.trivial.map(x => x.p50))) : '']))

  // -- 3. Throughput with concurrent readers
  log('3. throughput with 1, 2, 4 readers')
  const DUR = quick ? 800 : 1500
  const tp: Record<string, Record<number, number[]>> = { apsim: {}, trivial: {} }
  for (const k of [1, 2, 4]) {
    const res = await interleave(['apsim', 'trivial'], quick ? 1 : 3, async t => {
      const startAt = Date.now() + 400
      const rs = await Promise.all(Array.from({ length: k }, async () => await client<{ count: number, seconds: number }>('readfor', readTargets[t], String(startAt), String(DUR))))
      return rs.reduce((s, r) => s + r.count / r.seconds, 0)
    })
    tp.apsim[k] = res.apsim
    tp.trivial[k] = res.trivial
  }
  emit('### Read throughput with concurrent reader processes (readFileSync loops, reads/s summed over the readers)')
  emit()
  table(['readers', 'apsim', 'trivial', 'apsim ÷ trivial'], [1, 2, 4].map(k => [String(k),
    median(tp.apsim[k]).toFixed(0), median(tp.trivial[k]).toFixed(0), ratio(1, 1 / roundRatio(tp.apsim[k], tp.trivial[k]))]))

  // -- 4. The full-size host
  emit('### A full-size host: 256 adapters × 256 domains (65,536 queues, QCI max ids 255)')
  emit()
  const topoFile = path.join(ROOT, 'full-size.json')
  writeFileSync(topoFile, JSON.stringify(fullSizeTopology()))
  log('4a. time to a ready mount (full-size, default host, trivial server)')
  const mountRounds = quick ? 1 : 3
  const ready = await interleave(['full', 'default', 'trivial'], mountRounds, async (t, r) => {
    const s = t === 'full' ? await apsim(`full${r}`, topoFile) : t === 'default' ? await apsim(`default${r}`) : await trivial(`trivial${r}`, { files: {} })
    const out = { ms: s.readyMs, rss: rss(s.proc.pid!, 'VmRSS') }
    await stopServer(s)
    return out
  })
  const f = await apsim('full', topoFile)
  const fullRssReady = rss(f.proc.pid!, 'VmRSS')
  const rows: string[][] = []
  rows.push(['mount → ready (spawn to `apsim: mounted`)', ms(median(ready.full.map(x => x.ms))),
    `default host ${ms(median(ready.default.map(x => x.ms)))}, trivial server ${ms(median(ready.trivial.map(x => x.ms)))}`])
  rows.push(['daemon RSS once ready', `${median(ready.full.map(x => x.rss)).toFixed(0)} MB`,
    `default host ${median(ready.default.map(x => x.rss)).toFixed(0)} MB, trivial server ${median(ready.trivial.map(x => x.rss)).toFixed(0)} MB`])

  log('4b. ls bus/ap/devices')
  const tmpDevices = path.join(SHM, 'devices-links')
  mkdirSync(tmpDevices)
  const names65792 = readdirNames(path.join(f.dir, 'bus/ap/devices'))
  for (const n of names65792) symlinkSync(readlinkSync(path.join(f.dir, 'bus/ap/devices', n)), path.join(tmpDevices, n))
  const lsTargets: Record<string, string> = { apsim: path.join(f.dir, 'bus/ap/devices'), trivial: path.join(tv.dir, 'bus/ap/devices'), tmpfs: tmpDevices }
  const ls = await interleave(Object.keys(lsTargets), ROUNDS, t => timed('ls', [lsTargets[t]]))
  if (ls.apsim[0].lines !== 65792) throw new Error(`ls bus/ap/devices listed ${ls.apsim[0].lines} entries`)
  rows.push(['`ls bus/ap/devices` (65,792 entries)', ms(median(ls.apsim.map(x => x.ms))),
    `trivial server ${ms(median(ls.trivial.map(x => x.ms)))} (${ratio(1, 1 / roundRatio(ls.apsim.map(x => x.ms), ls.trivial.map(x => x.ms)))}), tmpfs ${ms(median(ls.tmpfs.map(x => x.ms)))}`])

  if (!flag('--skip-find')) {
    log('4c. find devices/ap')
    const fd = await interleave(['apsim', 'trivial'], quick ? 1 : 2, t => timed('find', [t === 'apsim' ? path.join(f.dir, 'devices/ap') : path.join(tv.dir, 'ap-tree')]))
    rows.push([`\`find devices/ap\` (${fd.apsim[0].lines.toLocaleString('en')} entries)`, ms(median(fd.apsim.map(x => x.ms))),
      `trivial server, same shape (${fd.trivial[0].lines.toLocaleString('en')} entries): ${ms(median(fd.trivial.map(x => x.ms)))} (${ratio(1, 1 / roundRatio(fd.apsim.map(x => x.ms), fd.trivial.map(x => x.ms)))})`])
  }

  log('4d. apmask flip through the mount')
  const flipFile = path.join(ROOT, 'flip.json')
  const flipRounds = quick ? 1 : 3
  writeFileSync(flipFile, JSON.stringify(Array.from({ length: 2 * flipRounds }, (_, i) => [path.join(f.dir, 'bus/ap/apmask'), (i % 2 === 0 ? ALL_ZEROS : ALL_ONES) + '\n'])))
  const flip = await client<{ all: number[] }>('writes', flipFile)
  const bindings = readFileSync(path.join(f.dir, 'bus/ap/bindings'), 'latin1').trim()
  rows.push(['`echo 0x00…00 > apmask` (65,536 queues to vfio_ap)', us(median(flip.all.filter((_, i) => i % 2 === 0))), 'the write(2) through the mount; in-process figures below'])
  rows.push(['`echo 0xff…ff > apmask` (and back to cex4queue)', us(median(flip.all.filter((_, i) => i % 2 === 1))), `bindings afterwards: ${bindings}`])

  log('4e. an mdev with 512 APQNs')
  const U0 = uuidOf(0)
  const M0 = path.join(f.dir, 'devices/vfio_ap/matrix', U0)
  writeFileSync(path.join(f.dir, 'bus/ap/apmask'), '-0-1\n')
  writeFileSync(path.join(f.dir, 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create'), U0)
  const assignFile = path.join(ROOT, 'assign.json')
  writeFileSync(assignFile, JSON.stringify([[path.join(M0, 'assign_adapter'), '0\n'], [path.join(M0, 'assign_adapter'), '1\n'],
    ...Array.from({ length: 256 }, (_, d) => [path.join(M0, 'assign_domain'), `${d}\n`])]))
  const asg = await client<Latency>('writes', assignFile)
  const matrixLen = readFileSync(path.join(M0, 'matrix')).length
  if (matrixLen !== 4095) throw new Error(`matrix of the 512-APQN mdev is ${matrixLen} bytes`)
  const matrixTargets = { apsim: path.join(M0, 'matrix'), trivial: path.join(tv.dir, 'devices/vfio_ap/matrix', U0, 'matrix') }
  const mx = await sideBySide('read', N_READ / 2, matrixTargets, ROUNDS)
  const mxc = await sideBySide('cat', N_CAT / 2, matrixTargets, ROUNDS)
  rows.push(['assign 2 adapters + 256 domains (258 stores), per store', us(asg.p50), `p99 ${us(asg.p99)}`])
  rows.push(['read `matrix` of 512 APQNs (4,095 bytes), readFileSync p50', us(median(mx.apsim.map(x => x.p50))),
    `trivial 4,095-byte file ${us(median(mx.trivial.map(x => x.p50)))} (${ratio(1, 1 / roundRatio(mx.apsim.map(x => x.p50), mx.trivial.map(x => x.p50)))})`])
  rows.push(['`cat matrix` p50', us(median(mxc.apsim.map(x => x.p50))),
    `trivial ${us(median(mxc.trivial.map(x => x.p50)))} (${ratio(1, 1 / roundRatio(mxc.apsim.map(x => x.p50), mxc.trivial.map(x => x.p50)))})`])

  log('4f. 1,000 mdevs: create, list, read, remove')
  const CREATE = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create'
  const chunk = (i0: number, make: (i: number) => [string, string]): string => {
    const file = path.join(ROOT, `chunk-${i0}.json`)
    writeFileSync(file, JSON.stringify(Array.from({ length: 100 }, (_, k) => make(i0 + k))))
    return file
  }
  const createLat: number[] = []
  const trivialLat: number[] = []
  for (let c = 0; c < 10; c++) {
    createLat.push(...(await client<{ all: number[] }>('writes', chunk(1 + 100 * c, i => [path.join(f.dir, CREATE), uuidOf(i)]))).all)
    trivialLat.push(...(await client<{ all: number[] }>('writes', chunk(1 + 100 * c, i => [path.join(tv.dir, CREATE), uuidOf(i)]))).all)
  }
  const lsMatrix = timed('ls', [path.join(f.dir, 'devices/vfio_ap/matrix')])
  const lsGroups = timed('ls', [path.join(f.dir, 'kernel/iommu_groups')])
  if (lsGroups.lines !== 1001) throw new Error(`kernel/iommu_groups lists ${lsGroups.lines}`)
  const rd1000 = await sideBySide('read', N_READ / 2, { full: path.join(f.dir, 'devices/ap/card01/01.0080/status'), default: path.join(a.dir, 'devices/ap/card05/05.0004/status') }, ROUNDS)
  const removeLat: number[] = []
  for (let c = 0; c < 10; c++) {
    removeLat.push(...(await client<{ all: number[] }>('writes', chunk(1 + 100 * c, i => [path.join(f.dir, 'devices/vfio_ap/matrix', uuidOf(i), 'remove'), '1\n']))).all)
    trivialLat.push(...(await client<{ all: number[] }>('writes', chunk(1 + 100 * c, i => [path.join(tv.dir, CREATE), uuidOf(i)]))).all)
  }
  const sum = (xs: number[]): number => xs.reduce((s, x) => s + x, 0)
  const p50 = (xs: number[]): number => median(xs)
  rows.push(['create 1,000 mdevs (`echo UUID > create`), total / per store', `${ms(sum(createLat) / 1000)} / ${us(p50(createLat))}`, `trivial server store, chunks interleaved: ${us(p50(trivialLat))}`])
  rows.push(['`ls devices/vfio_ap/matrix`, `ls kernel/iommu_groups` with 1,001 mdevs', `${ms(lsMatrix.ms)}, ${ms(lsGroups.ms)}`, ''])
  rows.push(['read a queue\'s `status` with 1,001 mdevs on the full-size host', us(median(rd1000.full.map(x => x.p50))),
    `default host, 1 mdev: ${us(median(rd1000.default.map(x => x.p50)))} (${ratio(1, 1 / roundRatio(rd1000.full.map(x => x.p50), rd1000.default.map(x => x.p50)))})`])
  rows.push(['remove 1,000 mdevs (`echo 1 > remove`), total / per store', `${ms(sum(removeLat) / 1000)} / ${us(p50(removeLat))}`, ''])
  rows.push(['daemon peak RSS (VmHWM) after all of the above', `${rss(f.proc.pid!, 'VmHWM').toFixed(0)} MB`, `RSS when ready: ${fullRssReady.toFixed(0)} MB`])
  table(['full-size host', 'apsim', 'baseline (same run)'], rows)
  await stopServer(f)
  await stopServer(a)
  await stopServer(tv)

  // -- 5. In process
  log('5. the model in process')
  const ip = await new Promise<Record<string, any>>((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', INPROC, '--rounds', String(quick ? 2 : 3)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    p.on('exit', code => code === 0 ? resolve(JSON.parse(out)) : reject(new Error('inproc failed')))
  })
  emit('### The model in process (`new Host(...)`, `host.write`, `Sysfs`; no FUSE)')
  emit()
  table(['operation', 'full-size host', 'default host'], [
    ['boot (`new Host`)', ms(ip.bootFullMs), ms(ip.bootDefaultMs)],
    ['heap after boot (gc)', `${ip.heapMB.toFixed(0)} MB`, ''],
    ['apmask → all zeros (every queue to vfio_ap)', ms(ip.apmaskFlipMs.toVfio), ''],
    ['apmask → all ones (every queue back to cex4queue)', ms(ip.apmaskFlipMs.toHost), ''],
    ['readdir `bus/ap/devices`', ms(ip.readdirDevicesMs), ''],
    ['readdir `bus/ap/drivers/cex4queue`', ms(ip.readdirDriverMs), ''],
    ['readdir `devices/ap/cardff`', ms(ip.readdirCardMs), ''],
    ['stat of a queue attribute (5 components)', us(ip.statUs.full), us(ip.statUs.default)],
    ['stat of a driver link `bus/ap/drivers/cex4queue/QQ.DDDD`', us(ip.driverLinkStatUs.full), us(ip.driverLinkStatUs.default)],
    ['open + read + release of a queue attribute', us(ip.readUs.full), us(ip.readUs.default)],
    ['256 `assign_domain` stores (2 adapters)', ms(ip.assign256DomainsMs), ''],
    ['read `matrix` (512 APQNs)', us(ip.matrixReadUs), ''],
    ['create 1,000 mdevs', ms(ip.create1000Ms), ''],
    ['readdir `kernel/iommu_groups` (1,001 groups)', ms(ip.readdirIommuMs), ''],
    ['stat `kernel/iommu_groups/500/devices` (1,001 mdevs)', us(ip.iommuLookupUs), ''],
    ['stat an mdev attribute (1,001 mdevs)', us(ip.mdevStatUs), ''],
    ['read a queue `status` (1,001 mdevs)', us(ip.queueStatusReadUs), ''],
    ['remove 1,000 mdevs', ms(ip.remove1000Ms), '']
  ])
  emit(`Total bench time: ${((Date.now() - started) / 1000).toFixed(0)} s.`)
}

function readdirNames (dir: string): string[] {
  const r = spawnSync('ls', ['-f', dir], { maxBuffer: 1 << 30 })
  return r.stdout.toString().split('\n').filter(n => n !== '' && n !== '.' && n !== '..')
}

main().then(() => {
  if (OUT !== undefined) writeFileSync(OUT, lines.join('\n') + '\n')
  log('done')
  process.exit(0)
}, (e: unknown) => {
  log(`failed: ${(e as Error).stack ?? String(e)}`)
  process.exit(1)
})
