/**
 * Uevents through the mount: `kernel/debug/apsim/uevents` lists every uevent the simulated
 * kernel sent, one JSON object a line: `{seq, usec, action, devpath, subsystem, env}` with
 * `env` the extra variables as `[key, value]` pairs in emission order.
 *
 * What each scenario must send is /work/shared/spec/ap-bus.md §7 (the table and §7.5) applied
 * to the §10 scenarios (fixture F1): first boot, 8 (apmask change), 22 (no-op mask write),
 * 30 (card offline), 31 (card deconfigured), 32 (adapter leaves the configuration),
 * 33 (usage domain joins); and the mdev core's add/remove for `create`/`remove`.
 *
 * Every test takes the events after a marker (the last seq before the command), so each
 * scenario is judged on exactly what its command caused.
 */
import { test, type ExecutionContext } from '../helpers/kernel.js'
import { fileURLToPath } from 'node:url'
import { mountHost, requireFuse, type Mounted, type ShResult } from '../helpers/mount.js'
import { mountSlot } from '../helpers/shell.js'

const F1 = fileURLToPath(new URL('../../../test/fixtures/f1.yaml', import.meta.url))
const TG = fileURLToPath(new URL('../../../test/fixtures/tg.yaml', import.meta.url))

interface Uevent {
  seq: number
  usec: number
  action: string
  devpath: string
  subsystem: string
  env: Array<[string, string]>
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i)
function mask (ids: Iterable<number>): string {
  const set = new Set(ids)
  let s = '0x'
  for (let k = 0; k < 64; k++) s += range(0, 3).reduce((v, b) => v | (set.has(4 * k + b) ? 8 >> b : 0), 0).toString(16)
  return s
}
const hex2 = (n: number): string => n.toString(16).padStart(2, '0')
const qn = (a: number, d: number): string => `${hex2(a)}.${d.toString(16).padStart(4, '0')}`
const cardPath = (a: number): string => `/devices/ap/card${hex2(a)}`
const queuePath = (a: number, d: number): string => `${cardPath(a)}/${qn(a, d)}`

/** Fixture F1: adapters 3 (CEX8 CCA), 5 (CEX8 EP11), 6 (CEX8 accelerator); domains 4, 11, 0x47. */
const F1_ADAPTERS = [3, 5, 6]
const F1_DOMAINS = [4, 0x0b, 0x47]
const MODE: Record<number, string> = { 3: 'cca', 5: 'ep11', 6: 'accel' }

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const MDEV_PATH = `/devices/vfio_ap/matrix/${U1}`

const show = (script: string, r: ShResult): string =>
  `$ ${script.trim()}\n  exit ${r.code}\n  stdout ${JSON.stringify(r.stdout)}\n  stderr ${JSON.stringify(r.stderr)}`

/** `action devpath K=V …` — how a failing comparison shows an event. */
const brief = (e: Uevent): string => `${e.action} ${e.devpath}${e.env.map(([k, v]) => ` ${k}=${JSON.stringify(v)}`).join('')}`

const has = (e: Uevent, key: string, value: string): boolean => e.env.some(([k, v]) => k === key && v === value)

class H {
  constructor (readonly t: ExecutionContext, readonly m: Mounted) {}

  async ok (script: string): Promise<string> {
    const r = await this.m.sh(script)
    this.t.true(r.code === 0 && r.stderr === '', `expected success\n${show(script, r)}`)
    return r.stdout
  }

  /** Every event in the log, parsed and checked for shape. */
  async events (): Promise<Uevent[]> {
    const text = await this.ok('cat kernel/debug/apsim/uevents')
    const out: Uevent[] = []
    for (const line of text.split('\n')) {
      if (line === '') continue
      let e: Uevent
      try {
        e = JSON.parse(line) as Uevent
      } catch {
        this.t.fail(`uevents: not JSON: ${line}`)
        continue
      }
      const shaped = Number.isInteger(e.seq) && Number.isInteger(e.usec) && typeof e.action === 'string' &&
        typeof e.devpath === 'string' && e.devpath.startsWith('/') && typeof e.subsystem === 'string' &&
        Array.isArray(e.env) && e.env.every(p => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string')
      this.t.true(shaped, `uevents: bad shape: ${line}`)
      out.push(e)
    }
    for (let i = 1; i < out.length; i++) {
      if (out[i].seq <= out[i - 1].seq) this.t.fail(`uevents: seq not increasing at ${brief(out[i])}`)
      if (out[i].usec < out[i - 1].usec) this.t.fail(`uevents: usec goes back at ${brief(out[i])}`)
    }
    return out
  }

  /** Runs `script` and returns the events it caused. */
  async during (script: string): Promise<Uevent[]> {
    const before = await this.events()
    const mark = before.at(-1)?.seq ?? 0
    await this.ok(script)
    return (await this.events()).filter(e => e.seq > mark)
  }
}


async function boot (t: ExecutionContext, fixture: string, body: (h: H) => Promise<void>): Promise<void> {
  await mountSlot(async () => {
    const m = await mountHost({ topology: fixture })
    try {
      await body(new H(t, m))
      if (!t.passed) t.log(`daemon log (tail):\n${m.log().split('\n').slice(-40).join('\n')}`)
    } finally {
      await m.stop()
    }
  })
}

/** The events on `devpath`, as `action` lists. */
const actionsOn = (events: Uevent[], devpath: string): string[] => events.filter(e => e.devpath === devpath).map(e => e.action)

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })

// ---------------------------------------------------------------------------------------

test('first boot: add + bind for every card and queue, then INITSCAN=done, then BINDINGS=complete COMPLETECOUNT=1', async t => {
  await boot(t, F1, async h => {
    const all = await h.events()
    const ap = all.filter(e => e.subsystem === 'ap')
    for (const a of F1_ADAPTERS) {
      const c = ap.filter(e => e.devpath === cardPath(a))
      t.deepEqual(c.map(e => e.action), ['add', 'bind'], `card${hex2(a)}: add then bind`)
      t.deepEqual(c[0]?.env, [['DEVTYPE', 'ap_card'], ['DEV_TYPE', '000E'], ['MODALIAS', 'ap:t0E'], ['MODE', MODE[a]]], `card${hex2(a)} add env`)
      t.true(c[1] !== undefined && has(c[1], 'DRIVER', 'cex4card'), `card${hex2(a)} bind DRIVER=cex4card: ${c[1] === undefined ? 'none' : brief(c[1])}`)
      for (const d of F1_DOMAINS) {
        const q = ap.filter(e => e.devpath === queuePath(a, d))
        t.deepEqual(q.map(e => e.action), ['add', 'bind'], `${qn(a, d)}: add then bind`)
        t.deepEqual(q[0]?.env, [['DEVTYPE', 'ap_queue'], ['MODE', MODE[a]]], `${qn(a, d)} add env`)
        t.true(q[1] !== undefined && has(q[1], 'DRIVER', 'cex4queue'), `${qn(a, d)} bind DRIVER=cex4queue: ${q[1] === undefined ? 'none' : brief(q[1])}`)
        // a queue is added after its card
        t.true(ap.indexOf(q[0]) > ap.indexOf(c[0]), `${qn(a, d)} added after its card`)
      }
    }
    const root = ap.filter(e => e.devpath === '/devices/ap')
    t.deepEqual(root.map(e => e.env), [[['INITSCAN', 'done']], [['BINDINGS', 'complete'], ['COMPLETECOUNT', '1']]],
      'on /devices/ap: exactly INITSCAN=done, then BINDINGS=complete COMPLETECOUNT=1')
    t.true(root.every(e => e.action === 'change'), 'both are change events')
    const lastDevice = Math.max(...ap.filter(e => e.devpath !== '/devices/ap').map(e => ap.indexOf(e)))
    t.true(root.length === 2 && ap.indexOf(root[0]) > lastDevice, 'INITSCAN=done comes after the scan created and bound everything')
    t.is(ap.length, 2 * 12 + 2, 'nothing else on the AP bus: 12 devices × (add, bind) + 2')
    t.is(await h.ok('cat bus/ap/bindings_complete_count'), '1\n')
  })
})

test('§10.8 echo -5,-6 > apmask: one APMASK change on /devices/ap, unbind/bind of the six moved queues', async t => {
  await boot(t, F1, async h => {
    const ev = await h.during('echo -5,-6 > bus/ap/apmask')
    const root = ev.filter(e => e.devpath === '/devices/ap')
    t.deepEqual(root.map(brief), [brief({ seq: 0, usec: 0, action: 'change', devpath: '/devices/ap', subsystem: 'ap', env: [['APMASK', `${mask(range(0, 255).filter(i => i !== 5 && i !== 6))}\n`]] })],
      'exactly one change on /devices/ap, APMASK=0xf9ff…ff with its newline')
    t.is(root[0]?.subsystem, 'ap')
    for (const a of [5, 6]) {
      for (const d of F1_DOMAINS) {
        const q = ev.filter(e => e.devpath === queuePath(a, d))
        t.deepEqual(q.map(e => e.action), ['unbind', 'bind'], `${qn(a, d)}: unbind then bind`)
        t.true(q[1] !== undefined && has(q[1], 'DRIVER', 'vfio_ap'), `${qn(a, d)} bind DRIVER=vfio_ap: ${q[1] === undefined ? 'none' : brief(q[1])}`)
        t.true(q.every(e => e.subsystem === 'ap'))
      }
    }
    t.is(ev.length, 1 + 6 * 2, `nothing else (03.*, cards untouched):\n${ev.map(brief).join('\n')}`)
  })
})

test('§10.22 the second identical mask write sends no uevent', async t => {
  await boot(t, F1, async h => {
    const first = await h.during('echo -5 > bus/ap/apmask')
    t.deepEqual(first.filter(e => e.devpath === '/devices/ap').map(e => e.env), [[['APMASK', `${mask(range(0, 255).filter(i => i !== 5))}\n`]]], 'the first write: one APMASK change')
    const second = await h.during('echo -5 > bus/ap/apmask')
    t.deepEqual(second.map(brief), [], 'the second write: no uevent at all')
  })
})

test('§10.30 echo 0 > card05/online: ONLINE=0 on the card, then on each of its queues', async t => {
  await boot(t, F1, async h => {
    const ev = await h.during('echo 0 > devices/ap/card05/online')
    t.deepEqual(ev.map(e => `${e.action} ${e.devpath}`), [cardPath(5), ...F1_DOMAINS.map(d => queuePath(5, d))].map(p => `change ${p}`),
      `change events on card05, 05.0004, 05.000b, 05.0047 and nothing else:\n${ev.map(brief).join('\n')}`)
    for (const e of ev) t.true(has(e, 'ONLINE', '0') && !e.env.some(([k]) => k === 'CONFIG'), `ONLINE=0: ${brief(e)}`)
    // and back
    const on = await h.during('echo 1 > devices/ap/card05/online')
    t.deepEqual(on.map(e => `${e.action} ${e.devpath}`), [cardPath(5), ...F1_DOMAINS.map(d => queuePath(5, d))].map(p => `change ${p}`), 'ONLINE=1 the same way')
    for (const e of on) t.true(has(e, 'ONLINE', '1'), `ONLINE=1: ${brief(e)}`)
  })
})

test('§10.31 echo 0 > card03/config: CONFIG=0 on the card; after the scan CONFIG=0 on each queue', async t => {
  await boot(t, F1, async h => {
    const ev = await h.during('echo 0 > devices/ap/card03/config')
    t.deepEqual(ev.map(e => `${e.action} ${e.devpath}`), [cardPath(3), ...F1_DOMAINS.map(d => queuePath(3, d))].map(p => `change ${p}`),
      `the card first, then its queues, nothing else:\n${ev.map(brief).join('\n')}`)
    for (const e of ev) t.true(has(e, 'CONFIG', '0') && !e.env.some(([k]) => k === 'ONLINE'), `CONFIG=0: ${brief(e)}`)
    t.is(await h.ok('cat devices/ap/card03/03.0004/config devices/ap/card03/online'), '0\n0\n')
    // §5.1 reconfigure: CONFIG=1 on the card at once, on each queue at the scan
    const on = await h.during('echo 1 > devices/ap/card03/config')
    t.deepEqual(on.map(e => `${e.action} ${e.devpath}`), [cardPath(3), ...F1_DOMAINS.map(d => queuePath(3, d))].map(p => `change ${p}`),
      `reconfigure:\n${on.map(brief).join('\n')}`)
    for (const e of on) t.true(has(e, 'CONFIG', '1'), `CONFIG=1: ${brief(e)}`)
  })
})

test('§10.32 adapter 6 leaves the configuration: remove events for its queues, then for the card', async t => {
  await boot(t, F1, async h => {
    const ev = await h.during('echo "remove-adapter 6" > kernel/debug/apsim/lpar')
    const removes = ev.filter(e => e.action === 'remove')
    t.deepEqual(removes.map(e => e.devpath), [...F1_DOMAINS.map(d => queuePath(6, d)), cardPath(6)], 'remove: 06.0004, 06.000b, 06.0047, then card06')
    for (const e of removes) {
      t.is(e.subsystem, 'ap')
      const card = e.devpath === cardPath(6)
      t.true(has(e, 'DEVTYPE', card ? 'ap_card' : 'ap_queue') && has(e, 'MODE', 'accel'), `remove env: ${brief(e)}`)
      if (card) t.true(has(e, 'DEV_TYPE', '000E') && has(e, 'MODALIAS', 'ap:t0E'), `card06 remove env: ${brief(e)}`)
    }
    // a bound device is unbound before it goes
    for (const p of [...F1_DOMAINS.map(d => queuePath(6, d)), cardPath(6)]) {
      t.deepEqual(actionsOn(ev, p), ['unbind', 'remove'], `${p}: unbind, then remove`)
    }
    t.deepEqual(ev.filter(e => !e.devpath.startsWith(cardPath(6))).map(brief), [], 'nothing for other devices, no BINDINGS event')
  })
})

test('§10.33 usage domain 0x20 joins: add + bind of 03/05/06.0020, then BINDINGS=complete COMPLETECOUNT=2', async t => {
  await boot(t, F1, async h => {
    const ev = await h.during('echo "add-usage-domain 0x20" > kernel/debug/apsim/lpar')
    const news = F1_ADAPTERS.map(a => queuePath(a, 0x20))
    t.deepEqual(ev.filter(e => e.action === 'add').map(e => e.devpath), news, 'add for 03.0020, 05.0020, 06.0020')
    for (const a of F1_ADAPTERS) {
      const q = ev.filter(e => e.devpath === queuePath(a, 0x20))
      t.deepEqual(q.map(e => e.action), ['add', 'bind'], `${qn(a, 0x20)}: add then bind`)
      t.deepEqual(q[0]?.env, [['DEVTYPE', 'ap_queue'], ['MODE', MODE[a]]], `${qn(a, 0x20)} add env`)
      t.true(q[1] !== undefined && has(q[1], 'DRIVER', 'cex4queue'), `${qn(a, 0x20)} bind DRIVER=cex4queue`)
    }
    const root = ev.filter(e => e.devpath === '/devices/ap')
    t.deepEqual(root.map(e => [e.action, e.env]), [['change', [['BINDINGS', 'complete'], ['COMPLETECOUNT', '2']]]], 'one BINDINGS=complete with the new count, no INITSCAN')
    t.true(root.length === 1 && ev.indexOf(root[0]) === ev.length - 1, 'BINDINGS=complete after the new queues are bound')
    t.is(ev.length, 3 * 2 + 1, `nothing else:\n${ev.map(brief).join('\n')}`)
    t.is(await h.ok('cat bus/ap/bindings_complete_count'), '2\n', 'the counter agrees with COMPLETECOUNT')
  })
})

test('mdev create and remove send add and remove on the mdev (subsystem mdev)', async t => {
  await boot(t, TG, async h => {
    const created = await h.during(`echo ${U1} > devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create`)
    const adds = created.filter(e => e.action === 'add')
    t.deepEqual(adds.map(e => `${e.subsystem} ${e.devpath}`), [`mdev ${MDEV_PATH}`], `one add on the mdev:\n${created.map(brief).join('\n')}`)
    t.true(created.filter(e => e.action === 'remove').length === 0)
    const bind = created.filter(e => e.action === 'bind')
    if (bind.length > 0) t.true(created.indexOf(adds[0]) < created.indexOf(bind[0]), 'add before bind')

    const removed = await h.during(`echo 1 > devices/vfio_ap/matrix/${U1}/remove`)
    const rms = removed.filter(e => e.action === 'remove')
    t.deepEqual(rms.map(e => `${e.subsystem} ${e.devpath}`), [`mdev ${MDEV_PATH}`], `one remove on the mdev:\n${removed.map(brief).join('\n')}`)
    t.true(removed.filter(e => e.action === 'add').length === 0)
    t.true(removed.every(e => e.devpath === MDEV_PATH), 'nothing else')
  })
})
