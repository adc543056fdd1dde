/**
 * Concurrency through the mount: 8 client processes (test/helpers/hammer.py) each run a
 * fixed number of assign/unassign/apmask/aqmask/create/remove writes and `matrix` reads on
 * three shared mdevs at once. The daemon serialises stores in its one JS thread and logs
 * every store (path, data, result) in that order, so:
 *
 *   - no lost or phantom update: the stores the clients made and the stores the daemon
 *     logged are the same multiset of (path, data, result) — but for writes to an fd of an
 *     mdev another client removed after the open, which fail with ENODEV before any store;
 *   - the final state is the model's: replaying the logged stores in their order on a fresh
 *     in-process Host of the same topology gives every store the same result and ends in the
 *     same state as `kernel/debug/apsim/state` (logs compared without their timestamps);
 *   - no torn read: every `matrix` a client read is a text that mdev had at some point of
 *     the replay (or ENOENT while it did not exist).
 */
import test from 'ava'
import { fileURLToPath } from 'node:url'
import { isSysfsError } from '../../lib/errors.js'
import { Host, type HostState } from '../../lib/host.js'
import { defaultTopology } from '../../lib/topology.js'
import { mountHost, run } from '../helpers/mount.js'

const HAMMER = fileURLToPath(new URL('../../../test/helpers/hammer.py', import.meta.url))
const PROCS = 8
const OPS = Number(process.env.APSIM_HAMMER_OPS ?? 400)
const SEED = process.env.APSIM_HAMMER_SEED !== undefined ? Number(process.env.APSIM_HAMMER_SEED) : Date.now() % 100000
const UUIDS = ['1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f', '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b', '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b']
const M = 'devices/vfio_ap/matrix'

interface Op { p: number, k: number, path?: string, data?: string, res?: number | string, read?: string, text?: string | null, err?: string }
interface Logged { store: string, data: string, result: string }

/** The state without what depends on the clock (timestamps of log records and uevents). */
function timeless (s: HostState): unknown {
  return {
    ...s,
    klog: s.klog.map(r => `${r.seq} ${r.level} ${r.text}`),
    uevents: s.uevents.map(u => `${u.seq} ${u.action} ${u.devpath} ${u.subsystem} ${JSON.stringify(u.env)}`)
  }
}

const totals = { operations: 0, stores: 0, reads: 0, crashes: 0, violations: 0 }

test(`${PROCS} processes hammering one host: every store logged once, the replay in log order is the final state, reads never torn`, async t => {
  t.timeout(150000)
  const m = await mountHost()
  try {
    const setup = await m.sh(['echo -5,-6 > bus/ap/apmask', ...UUIDS.map(u => `echo ${u} > ${M}/mdev_supported_types/vfio_ap-passthrough/create`)].join(' && '))
    t.is(setup.code, 0, setup.stderr)
    t.log(`seed ${SEED} (APSIM_HAMMER_SEED=${SEED} reproduces the clients' choices; the interleaving is the scheduler's), ${PROCS} x ${OPS} operations`)

    const t0 = Date.now()
    const results = await Promise.all(Array.from({ length: PROCS }, async (_x, p) =>
      await run('python3', [HAMMER, m.dir, String(SEED), String(p), String(OPS), ...UUIDS], { cwd: '/' })))
    const ms = Date.now() - t0
    for (const r of results) t.is(r.code, 0, r.stderr)
    const ops = results.flatMap(r => r.stdout.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Op))
    t.is(ops.length, PROCS * OPS, 'every client ran all its operations')
    totals.operations += ops.length
    const alive = m.daemon.exitCode === null && m.daemon.signalCode === null
    if (!alive) totals.crashes++
    t.true(alive, 'the daemon is alive')

    // What the clients saw vs what the daemon logged: the same stores, with the same results.
    const writes = ops.filter(o => o.path !== undefined && !(typeof o.res === 'string' && o.res.startsWith('open:')))
    const opens = ops.filter(o => typeof o.res === 'string' && o.res.startsWith('open:'))
    t.true(opens.every(o => o.res === 'open:ENOENT' && /\/[0-9a-f-]{36}\//.test(o.path!)), 'an open fails only with ENOENT, on a removed mdev')
    const logged = m.log().split('\n').filter(l => l.includes('"store"')).map(l => JSON.parse(l) as Logged)
    const key = (path: string, data: string, result: string): string => `${path.replace(/^\//, '')} ${JSON.stringify(data)} ${result}`
    const seen = new Map<string, number>()
    for (const l of logged) seen.set(key(l.store, l.data, l.result), (seen.get(key(l.store, l.data, l.result)) ?? 0) + 1)
    const setupStores = 1 + UUIDS.length
    let stale = 0
    for (const w of writes) {
      const k = key(w.path!, w.data!, typeof w.res === 'number' ? 'ok' : String(w.res))
      if (typeof w.res === 'number') t.is(w.res, w.data!.length, `${k}: the full count`)
      const n = seen.get(k) ?? 0
      if (n > 0) { seen.set(k, n - 1); continue }
      // opened before another client removed the mdev: ENODEV without reaching a store (kernfs_get_active)
      if (w.res === 'ENODEV' && w.path!.startsWith(`${M}/`)) { stale++; continue }
      totals.violations++
      t.fail(`${k} (client ${w.p} op ${w.k}) is not in the daemon's store log`)
    }
    const extra = [...seen].filter(([, n]) => n > 0).reduce((a, [, n]) => a + n, 0)
    t.is(extra, setupStores, 'the log has exactly the clients\' stores (and the setup\'s)')
    totals.stores += writes.length

    // Replay the log in order on a fresh host of the same topology.
    let tick = 0
    const host = new Host(defaultTopology(), { clockUsec: () => ++tick })
    const states = new Map<string, Set<string>>(UUIDS.map(u => [u, new Set()]))
    const record = (): void => {
      for (const u of UUIDS) {
        let text: string
        try { text = host.read(`${M}/${u}/matrix`) } catch (e) { text = `(${isSysfsError(e) ? e.code : String(e)})` }
        states.get(u)!.add(text)
      }
    }
    record()
    let mismatches = 0
    for (const l of logged) {
      let result = 'ok'
      try { host.write(l.store.replace(/^\//, ''), l.data) } catch (e) { result = isSysfsError(e) ? e.code : String(e) }
      if (result !== l.result) { mismatches++; t.fail(`replay: ${l.store} ${JSON.stringify(l.data)} gave ${result}, the daemon ${l.result}`) }
      record()
    }
    totals.violations += mismatches
    t.is(mismatches, 0, 'every replayed store has the daemon\'s result')

    const state = await m.sh('cat kernel/debug/apsim/state')
    t.is(state.code, 0, state.stderr)
    t.deepEqual(timeless(JSON.parse(state.stdout) as HostState), timeless(host.snapshot()), 'the mount\'s final state = the replay\'s')

    // Reads: each matrix text existed at some point.
    const reads = ops.filter(o => o.read !== undefined)
    totals.reads += reads.length
    for (const r of reads) {
      const u = r.read!.split('/')[3]
      // ENODEV: opened before another client removed the mdev, read after (kernfs_seq_start); it was absent then
      const text = r.text ?? `(${r.err === 'ENODEV' ? 'ENOENT' : r.err ?? '?'})`
      if (!states.get(u)!.has(text)) { totals.violations++; t.fail(`client ${r.p} op ${r.k} read ${JSON.stringify(text)} from ${u}/matrix, a state that never existed`) }
    }
    const ok = writes.filter(w => typeof w.res === 'number').length
    t.log(`${ops.length} operations in ${ms} ms: ${writes.length} stores (${ok} ok, ${writes.length - ok} refused, ${stale} of them ENODEV on an fd of a removed mdev), ${opens.length} opens of a removed mdev, ${reads.length} matrix reads over ${[...states.values()].reduce((a, s) => a + s.size, 0)} distinct states; ${logged.length} logged stores replayed`)
  } finally {
    await m.stop()
  }
})

test.after.always(() => {
  console.log(`concurrency: seed ${SEED}: ${totals.operations} operations tried (${totals.stores} stores, ${totals.reads} reads), ${totals.crashes} crashes, ${totals.violations} lost, phantom or torn updates`)
})
