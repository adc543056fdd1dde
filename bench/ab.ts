/**
 * Before/after of an optimisation, measured the only way that means something on a small VM:
 * both builds in the same run, interleaved. A and B are two checkouts, each built (its
 * `build/`), e.g. `git worktree add /tmp/before COMMIT && ln -s $PWD/node_modules /tmp/before/
 * && (cd /tmp/before && npx tsc -p .)`.
 *
 *   node build/bench/ab.js A B [--rounds N]           the model in process: both builds loaded
 *                                                     into this process, rounds alternating
 *   node build/bench/ab.js A B --mount [--rounds N]   through FUSE: a daemon of each build and
 *                                                     the trivial server, one client alternating
 *                                                     between the three op by op
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, type Latency } from './stats.js'
import { ALL_ONES, ALL_ZEROS, fullSizeTopology, uuidOf } from './topologies.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const [A, B] = args.filter(a => !a.startsWith('--') && !/^\d+$/.test(a)).map(d => path.resolve(d))
const rounds = Number(args[args.indexOf('--rounds') + 1] ?? 5) || 5
if (A === undefined || B === undefined) { process.stderr.write('usage: ab.js A B [--mount] [--rounds N]\n'); process.exit(2) }

type Row = Record<string, number[]>
const report = (a: Row, b: Row, unit: string): void => {
  process.stdout.write(`| metric | A (${A}) | B (${B}) | B ÷ A |\n|---|---:|---:|---:|\n`)
  for (const k of Object.keys(a)) {
    const [x, y] = [median(a[k]), median(b[k])]
    const f = (v: number): string => unit === '' ? `${v.toFixed(2)}×` : `${v.toFixed(1)} ${unit}`
    process.stdout.write(`| ${k} | ${f(x)} | ${f(y)} | ${(y / x).toFixed(2)} |\n`)
  }
}

async function inProcess (): Promise<void> {
  const load = async (dir: string): Promise<{ Host: any, Sysfs: any, topologyFrom: any }> => ({
    Host: (await import(path.join(dir, 'build/lib/host.js'))).Host,
    Sysfs: (await import(path.join(dir, 'build/lib/sysfs.js'))).Sysfs,
    topologyFrom: (await import(path.join(dir, 'build/lib/topology.js'))).topologyFrom
  })
  const libs = { A: await load(A), B: await load(B) }
  const res: Record<'A' | 'B', Row> = { A: {}, B: {} }
  const time = (fn: () => void): number => { const t = performance.now(); fn(); return performance.now() - t }
  for (let r = 0; r < rounds; r++) {
    for (const k of (r % 2 === 0 ? ['A', 'B'] : ['B', 'A']) as Array<'A' | 'B'>) {
      const L = libs[k]
      const put = (n: string, v: number): void => { (res[k][n] ??= []).push(v) }
      let h: any
      put('boot (new Host), 256 x 256', time(() => { h = new L.Host(L.topologyFrom(fullSizeTopology())) }))
      put('apmask -> all zeros', time(() => h.write('bus/ap/apmask', ALL_ZEROS + '\n')))
      put('apmask -> all ones', time(() => h.write('bus/ap/apmask', ALL_ONES + '\n')))
      const fs = new L.Sysfs(h.root)
      put('readdir bus/ap/devices', time(() => fs.readdir('bus/ap/devices')))
      put('readdir bus/ap/drivers/cex4queue', time(() => fs.readdir('bus/ap/drivers/cex4queue')))
      put('readdir 256 queue dirs of cardff', time(() => { for (let d = 0; d < 256; d++) fs.readdir(`devices/ap/cardff/ff.${d.toString(16).padStart(4, '0')}`) }))
      put('10,000 stats of a queue attribute', time(() => { for (let i = 0; i < 10000; i++) fs.stat('devices/ap/cardff/ff.00ff/online') }))
      h.write('bus/ap/apmask', '-1\n')
      const create = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create'
      for (let i = 1; i <= 256; i++) { h.write(create, uuidOf(i)); h.write(`devices/vfio_ap/matrix/${uuidOf(i)}/assign_adapter`, '1\n') }
      h.write(`devices/vfio_ap/matrix/${uuidOf(256)}/assign_domain`, '255\n')
      put('10,000 reads of 01.00ff/status (256 mdevs on adapter 1)', time(() => { for (let i = 0; i < 10000; i++) h.read('devices/ap/card01/01.00ff/status') }))
    }
  }
  report(res.A, res.B, 'ms')
}

async function throughMount (): Promise<void> {
  const root = mkdtempSync('/tmp/apsim-ab-')
  const env = { ...process.env, APSIM_RUN_DIR: path.join(root, 'run'), APSIM_EXIT_WITH_PARENT: '1' }
  mkdirSync(env.APSIM_RUN_DIR)
  const procs: Array<{ p: ChildProcess, dir: string }> = []
  const cleanup = (): void => {
    for (const { p, dir } of procs) { p.kill('SIGTERM'); spawnSync('fusermount', ['-uz', dir], { stdio: 'ignore' }) }
    procs.length = 0
  }
  process.on('exit', cleanup)
  const start = async (name: string, argv: string[], ready: string): Promise<void> => {
    const dir = path.join(root, name)
    const p = spawn(process.execPath, argv.map(a => a.replace('$DIR', dir)), { env, stdio: ['ignore', 'pipe', 'ignore'] })
    procs.push({ p, dir })
    await new Promise<void>((resolve, reject) => {
      let out = ''
      p.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; if (out.includes(ready)) resolve() })
      p.once('exit', () => reject(new Error(`${name} exited`)))
    })
  }
  const Q = 'devices/ap/card04/04.0004'
  writeFileSync(path.join(root, 't.json'), JSON.stringify({ files: { [`/${Q}/online`]: '1\n', [`/${Q}/reset`]: '' } }))
  await start('a', [path.join(A, 'build/daemon/cli.js'), 'mount', '$DIR', '--log-format', 'json'], 'apsim: mounted')
  await start('b', [path.join(B, 'build/daemon/cli.js'), 'mount', '$DIR', '--log-format', 'json'], 'apsim: mounted')
  await start('t', [path.join(HERE, 'trivial-server.js'), '$DIR', path.join(root, 't.json')], 'mounted')
  const client = async (...argv: string[]): Promise<Latency[]> => await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(HERE, 'client.js'), ...argv], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    p.on('exit', code => code === 0 ? resolve(JSON.parse(out) as Latency[]) : reject(new Error('client failed')))
  })
  const res: Record<'A' | 'B', Row> = { A: {}, B: {} }
  const put = (k: 'A' | 'B', n: string, v: number): void => { (res[k][n] ??= []).push(v) }
  const at = (d: string, f: string): string => path.join(root, d, Q, f)
  for (let r = 0; r < rounds; r++) {
    const [ra, rb, rt] = await client('read', '3000', at('a', 'online'), at('b', 'online'), at('t', 'online'))
    put('A', 'readFileSync p50 ÷ trivial', ra.p50 / rt.p50); put('B', 'readFileSync p50 ÷ trivial', rb.p50 / rt.p50)
    const [sa, sb, st] = await client('store', '1000', at('a', 'reset'), '1\n', '--', at('b', 'reset'), '1\n', '--', at('t', 'reset'), '1\n')
    put('A', 'store p50 ÷ trivial', sa.p50 / st.p50); put('B', 'store p50 ÷ trivial', sb.p50 / st.p50)
  }
  report(res.A, res.B, '')
  cleanup()
  rmSync(root, { recursive: true, force: true })
}

await (args.includes('--mount') ? throughMount() : inProcess())
process.exit(0)
