/**
 * Fault injection in-process: rule matching (globs, ops, values), how often rules fire, seeded
 * probabilities, delays, the control file, and the labels every injection leaves.
 */
import test from 'ava'
import { SysfsError } from '../../lib/errors.js'
import { Faults, faultText, parseFaultSpec } from '../../lib/faults.js'
import { Host } from '../../lib/host.js'
import { defaultTopology } from '../../lib/topology.js'

const T = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough'
const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const M = `devices/vfio_ap/matrix/${U}`

function host (sleep?: (ms: number) => Promise<void>): Host {
  const h = new Host(defaultTopology(), { sleep })
  h.write('bus/ap/apmask', '-5,-6\n')
  h.write(`${T}/create`, U)
  return h
}

const code = (fn: () => unknown): string => {
  try { fn(); return 'ok' } catch (e) { return e instanceof SysfsError ? e.code : String(e) }
}

test('a write rule fails the matching store with its errno, once, and changes nothing', t => {
  const h = host()
  h.faults.add({ op: 'write', path: 'devices/vfio_ap/matrix/*/assign_adapter', errno: 'EBUSY', times: 1 })
  t.is(code(() => h.write(`${M}/assign_adapter`, '5\n')), 'EBUSY')
  t.is(h.read(`${M}/matrix`), '')
  t.is(code(() => h.write(`${M}/assign_adapter`, '5\n')), 'ok')
  t.is(h.read(`${M}/matrix`), '05.\n')
  t.deepEqual(h.faults.pending(), [])
  t.is(h.faults.list()[0].hits, 1)
})

test('globs: * stays within a name, ** crosses names; ops and values must match', t => {
  const f = new Faults()
  f.add({ op: 'read', path: 'devices/ap/*/online', errno: 'EIO' })
  f.add({ op: 'write', path: 'bus/**', errno: 'EINVAL', match: '+5' })
  t.is(f.check('read', 'devices/ap/card05/online')?.rule, 1)
  t.is(f.check('read', 'devices/ap/card05/05.0004/online'), undefined)
  t.is(f.check('write', 'devices/ap/card05/online', '1'), undefined)
  t.is(f.check('write', 'bus/ap/apmask', '+5\n')?.rule, 2)
  t.is(f.check('write', 'bus/ap/apmask', '+6\n'), undefined)
  t.is(f.check('write', '/bus/ap/aqmask', '+5')?.rule, 2, 'a leading slash (as FUSE passes paths) is ignored')
})

test('the control tree is never matched, so rules stay clearable', t => {
  const h = host()
  h.write('kernel/debug/apsim/faults', 'add any ** EIO\n')
  t.is(code(() => h.read('bus/ap/apmask')), 'EIO')
  t.is(h.read('kernel/debug/apsim/faults'), '1 any ** EIO hits=1\n')
  h.write('kernel/debug/apsim/faults', 'clear\n')
  t.is(h.read('bus/ap/apmask'), `0xf9${'f'.repeat(62)}\n`)
})

test('a seeded probability fires the same way every run', t => {
  const draws = (): boolean[] => {
    const f = new Faults()
    f.add({ op: 'open', path: '**', errno: 'EAGAIN', probability: 0.5, seed: 42 })
    return Array.from({ length: 64 }, () => f.check('open', 'bus/ap/apmask') !== undefined)
  }
  const a = draws()
  t.deepEqual(a, draws())
  t.true(a.includes(true) && a.includes(false))
})

test('a delayed write waits for the host timer, then stores (or fails)', async t => {
  const waits: number[] = []
  const h = host(async ms => { waits.push(ms) })
  h.faults.add({ op: 'write', path: `${M}/assign_domain`, delayMs: 250 })
  h.faults.add({ op: 'write', path: `${M}/assign_adapter`, errno: 'ENODEV', delayMs: 10 })
  t.is(await h.writeAsync(`${M}/assign_domain`, '4\n'), 2)
  await t.throwsAsync(h.writeAsync(`${M}/assign_adapter`, '5\n'), { code: 'ENODEV' } as never)
  t.deepEqual(waits, [250, 10])
  t.is(h.read(`${M}/matrix`), '.0004\n')
})

test('every injection is an APSIM-labelled event and in the history', t => {
  const h = host()
  h.faults.add({ op: 'write', path: 'bus/ap/apmask', errno: 'EBUSY' })
  code(() => h.write('bus/ap/apmask', '+5\n'))
  const e = h.uevents.records().at(-1)!
  t.is(e.action, 'fault')
  t.is(e.devpath, '/bus/ap/apmask')
  t.deepEqual(e.env, [['APSIM_INJECTED', 'rule 1'], ['OP', 'write'], ['ERRNO', 'EBUSY']])
  t.deepEqual(h.faults.history().map(i => [i.rule, i.op, i.path, i.errno]), [[1, 'write', 'bus/ap/apmask', 'EBUSY']])
})

test('rule syntax: text round-trips, and every refusal says why', t => {
  const spec = parseFaultSpec('write devices/** EADDRINUSE times=3 probability=0.25 seed=7 match=0x05 delay=5')
  const h = host(async () => {})
  const rule = h.faults.add(spec)
  t.is(faultText(rule), '1 write devices/** EADDRINUSE times=3 probability=0.25 seed=7 match=0x05 delay=5 hits=0')
  for (const [line, why] of [
    ['add write x EFOO', /unknown errno "EFOO"/],
    ['add jump x EIO', /op must be open, read, write or any/],
    ['add read x EIO delay=5', /a delay applies to writes only/],
    ['add write x - ', /give an errno, a delay, or both/],
    ['add write x EIO times=0', /times must be a positive integer/],
    ['add write x EIO bogus=1', /unknown option "bogus"/],
    ['clear 99', /no rule 99/],
    ['frobnicate', /expected "add OP PATHGLOB ERRNO/]
  ] as const) {
    t.not(code(() => h.write('kernel/debug/apsim/faults', line)), 'ok', line)
    t.regex(h.read('kernel/debug/apsim/last_error'), why, line)
  }
  t.is(h.faults.list().length, 1)
  t.is(code(() => new Host(defaultTopology()).faults.add({ op: 'write', path: 'x', delayMs: 1 })), 'EOPNOTSUPP')
})

// Reliability, attack 2: a glob of many `**` was a backtracking regex, exponential on a path
// that almost matches; one store froze the daemon for minutes.
test('glob matching is linear: twenty ** against a near miss, and a pathological big case', t => {
  const f = new Faults()
  f.add({ op: 'write', path: `${'**a'.repeat(20)}b`, errno: 'EIO' })
  t.is(f.check('write', `${M}/assign_adapter`, '5\n'), undefined)
  t.is(f.check('write', `${'a'.repeat(60)}/assign_adapter`, '5\n'), undefined)
  t.is(f.check('write', `${'a/'.repeat(30)}ab`, '5\n')?.rule, 1)
  // A 4 KiB pattern of stars (a whole control write) against a 4 KiB path, every operation.
  const big = new Faults()
  big.add({ op: 'any', path: `${'*?**/'.repeat(800)}x`, errno: 'EIO' })
  for (let i = 0; i < 20; i++) t.is(big.check('read', `${'ab/'.repeat(1365)}y`), undefined)
})

test('glob matching agrees with the glob grammar on a table of cases', t => {
  const f = new Faults()
  const cases: Array<[string, string, boolean]> = [
    ['devices/ap/*/online', 'devices/ap/card05/online', true],
    ['devices/ap/*/online', 'devices/ap/card05/05.0004/online', false],
    ['devices/ap/**/online', 'devices/ap/card05/05.0004/online', true],
    ['devices/ap/**/online', 'devices/ap/online', false],
    ['devices/ap/**online', 'devices/ap/online', true],
    ['**', 'bus/ap/apmask', true],
    ['*', 'bus/ap/apmask', false],
    ['bus/ap/a?mask', 'bus/ap/apmask', true],
    ['bus/ap/a?mask', 'bus/ap/a/mask', false],
    ['bus/ap/*mask*', 'bus/ap/apmask', true],
    ['bus/ap/***', 'bus/ap/x/y', true],
    ['bus/ap/apmask', 'bus/ap/apmask2', false],
    ['bus/.p/apmask', 'bus/ap/apmask', false],
    ['bus/(ap)/apmask', 'bus/(ap)/apmask', true]
  ]
  for (const [glob, path, expected] of cases) {
    const id = f.add({ op: 'read', path: glob, errno: 'EIO' }).id
    t.is(f.check('read', path)?.rule === id, expected, `${glob} ~ ${path}`)
    f.clear(id)
  }
})
