/**
 * zcrypt device nodes (lib/ap/zcdn.ts) in the model: naming, limits, masks, uevents, snapshots.
 */
import test from 'ava'
import { SysfsError } from '../../lib/errors.js'
import { Host } from '../../lib/host.js'
import { type DirNode, resolve } from '../../lib/sysfs.js'
import { defaultTopology } from '../../lib/topology.js'

const C = 'class/zcrypt'
const V = 'devices/virtual/zcrypt'

const host = (kernel = 'newest'): Host => new Host({ ...defaultTopology(), kernel })
const errno = (fn: () => unknown): string | undefined => {
  try { fn() } catch (e) { return e instanceof SysfsError ? e.code : String(e) }
  return undefined
}
const ls = (h: Host, dir: string): string[] => (resolve(h.root, dir) as DirNode).entries().map(e => e.name)
const ZERO = '0x' + '0'.repeat(64) + '\n'

test('a named node: class link, device directory, zeroed masks, dev and uevent, an add uevent', t => {
  const h = host()
  const seq = h.uevents.records().at(-1)?.seq ?? 0
  h.write(`${C}/create`, '  kube_pod1 \n')
  t.deepEqual(ls(h, C), ['create', 'destroy', 'kube_pod1'])
  t.deepEqual(ls(h, `${V}/kube_pod1`), ['ioctlmask', 'apmask', 'aqmask', 'admask', 'dev', 'uevent', 'subsystem', 'power'])
  for (const m of ['ioctlmask', 'apmask', 'aqmask', 'admask']) t.is(h.read(`${V}/kube_pod1/${m}`), ZERO, m)
  t.is(h.read(`${V}/kube_pod1/dev`), '245:0\n')
  t.is(h.read(`${V}/kube_pod1/uevent`), 'MAJOR=245\nMINOR=0\nDEVNAME=kube_pod1\n')
  const ev = h.uevents.records(seq)
  t.deepEqual(ev.map(e => [e.action, e.devpath, e.subsystem, e.env]), [['add', `/${V}/kube_pod1`, 'zcrypt', [['MAJOR', '245'], ['MINOR', '0'], ['DEVNAME', 'kube_pod1']]]])
})

test('an empty name makes zcrypt_MINOR with the lowest free minor; names keep 31 characters; / becomes !', t => {
  const h = host()
  h.write(`${C}/create`, 'a\n')
  h.write(`${C}/create`, '\n')
  h.write(`${C}/create`, 'x'.repeat(40))
  h.write(`${C}/create`, 'pods/one')
  t.deepEqual(ls(h, C).slice(2), ['a', 'zcrypt_1', 'x'.repeat(31), 'pods!one'])
  t.is(h.read(`${V}/pods!one/uevent`), 'MAJOR=245\nMINOR=3\nDEVNAME=pods/one\n')
  h.write(`${C}/destroy`, 'a')
  h.write(`${C}/create`, ' ')
  t.is(h.read(`${V}/zcrypt_0/dev`), '245:0\n', 'the freed minor 0 is reused')
  t.is(h.write(`${C}/create`, ''), 0, 'an empty write(2) never reaches the store')
  t.false(ls(h, C).includes('zcrypt_4'))
})

test('refusals: EEXIST for a taken name, ENOENT to destroy a missing one, ENOSPC after 256 nodes; nothing changes', t => {
  const h = host()
  h.write(`${C}/create`, 'n1')
  t.is(errno(() => h.write(`${C}/create`, 'n1\n')), 'EEXIST')
  t.is(errno(() => h.write(`${C}/create`, 'create')), 'EEXIST')
  t.is(errno(() => h.write(`${C}/destroy`, 'n2')), 'ENOENT')
  t.is(errno(() => h.write(`${C}/destroy`, '\n')), 'ENOENT')
  for (let i = 1; i < 256; i++) h.write(`${C}/create`, '\n')
  t.is(errno(() => h.write(`${C}/create`, 'one-more')), 'ENOSPC')
  t.is(errno(() => h.write(`${C}/create`, 'n1')), 'EEXIST', 'the name is checked before the minors')
  t.is(ls(h, C).length, 2 + 256)
})

test('masks take the bus/ap/apmask grammar, relative and absolute; a bad write changes nothing', t => {
  const h = host()
  h.write(`${C}/create`, 'p')
  h.write(`${V}/p/apmask`, '+4,+5')
  t.is(h.read(`${V}/p/apmask`), '0x0c' + '0'.repeat(62) + '\n')
  h.write(`${V}/p/aqmask`, '0x8')
  t.is(h.read(`${V}/p/aqmask`), '0x8' + '0'.repeat(63) + '\n')
  h.write(`${V}/p/ioctlmask`, '0xffff')
  t.is(h.read(`${V}/p/ioctlmask`), '0xffff' + '0'.repeat(60) + '\n')
  h.write(`${V}/p/apmask`, '-5')
  t.is(h.read(`${V}/p/apmask`), '0x08' + '0'.repeat(62) + '\n')
  t.is(errno(() => h.write(`${V}/p/apmask`, '+256')), 'EINVAL')
  t.is(errno(() => h.write(`${V}/p/admask`, '0xg')), 'EINVAL')
  t.is(h.read(`${V}/p/apmask`), '0x08' + '0'.repeat(62) + '\n')
})

test('destroy sends remove with the same variables; the power setting goes with the node', t => {
  const h = host()
  h.write(`${C}/create`, 'p')
  h.write(`${V}/p/power/control`, 'on')
  const seq = h.uevents.records().at(-1)?.seq ?? 0
  h.write(`${C}/destroy`, ' p\n')
  t.deepEqual(h.uevents.records(seq).map(e => [e.action, e.devpath, e.env]), [['remove', `/${V}/p`, [['MAJOR', '245'], ['MINOR', '0'], ['DEVNAME', 'p']]]])
  h.write(`${C}/create`, 'p')
  t.is(h.read(`${V}/p/power/control`), 'auto\n')
})

test('z90crypt is the misc device 10:63; admask is absent before the 6.8 profile', t => {
  const h = host()
  t.is(h.read('class/misc/z90crypt/dev'), '10:63\n')
  t.is(h.read('devices/virtual/misc/z90crypt/uevent'), 'MAJOR=10\nMINOR=63\nDEVNAME=z90crypt\n')
  const old = host('6.0')
  old.write(`${C}/create`, 'p')
  t.deepEqual(ls(old, `${V}/p`), ['ioctlmask', 'apmask', 'aqmask', 'dev', 'uevent', 'subsystem', 'power'])
})

test('without zcrypt_cex4 there is no zcrypt class', t => {
  const h = new Host({ ...defaultTopology(), modules: ['vfio_ap'] })
  t.false(ls(h, 'class').includes('zcrypt'))
  t.false(ls(h, 'devices').includes('virtual'))
})

test('snapshots keep the nodes and their masks; a state without zcdn loads with none', t => {
  const h = host()
  h.write(`${C}/create`, 'a')
  h.write(`${C}/create`, 'b')
  h.write(`${C}/destroy`, 'a')
  h.write(`${V}/b/apmask`, '+7')
  const st = h.snapshot()
  t.deepEqual(st.zcdn?.nodes.map(n => [n.name, n.minor]), [['b', 1]])
  const r = Host.fromState(JSON.parse(JSON.stringify(st)))
  t.is(r.read(`${V}/b/apmask`), '0x01' + '0'.repeat(62) + '\n')
  t.is(r.read(`${V}/b/dev`), '245:1\n')
  r.write(`${C}/create`, '\n')
  t.is(r.read(`${V}/zcrypt_0/dev`), '245:0\n')
  const old = { ...st }
  delete old.zcdn
  t.deepEqual(ls(Host.fromState(old), C), ['create', 'destroy'])
})
