/**
 * Secure Execution guests (lib/ap/se.ts, lib/guest.ts) in the model: the guest's own kernel,
 * se_bind/se_associate and their state machine, the BS bits of the queue's ap_functions,
 * what reset and unbind do, writes that stay in the guest, hot plug, snapshots.
 */
import test from 'ava'
import { SysfsError } from '../../lib/errors.js'
import { Host } from '../../lib/host.js'
import { type DirNode, resolve } from '../../lib/sysfs.js'
import { loadTopology } from '../../lib/topology.js'

const U = '0b5a0b46-93c0-4d2a-8b1e-4d5c6e7f8a9b'
const M = `devices/vfio_ap/matrix/${U}`
const G = 'kernel/debug/apsim/guest/g/sys'
const Q = (card: string, q: string): string => `${G}/devices/ap/card${card}/${card}.${q}`

/** Adapters 4 (EP11), 5 (accelerator), 6 (CCA), domains 4 and 5, all given to mdev U. */
function setup (se = true): Host {
  const h = new Host(loadTopology(`
qci: { features: [APSC, APXA, QACT, RC8A], max_adapter_id: 63, max_domain_id: 255 }
adapters: [{ id: 4, type: CEX8, mode: ep11 }, { id: 5, type: CEX8, mode: accel }, { id: 6, type: CEX8, mode: cca }]
usage_domains: [4, 5]
`))
  h.write('bus/ap/apmask', '-4-6')
  h.write('devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create', U)
  for (const a of ['4', '5', '6']) h.write(`${M}/assign_adapter`, a)
  for (const d of ['4', '5']) h.write(`${M}/assign_domain`, d)
  h.startGuest('g', U, se)
  return h
}

const errno = (fn: () => unknown): string | undefined => {
  try { fn() } catch (e) { return e instanceof SysfsError ? e.code : String(e) }
  return undefined
}
const ls = (h: Host, dir: string): string[] => (resolve(h.root, dir) as DirNode).entries().map(e => e.name)

test('an SE guest: APSB in its features, se_bind/se_associate on every queue, none on the host or in a plain guest', t => {
  const h = setup()
  t.is(h.read(`${G}/bus/ap/features`), 'APSC APXA QACT RC8A APSB\n')
  for (const q of [Q('04', '0004'), Q('05', '0005'), Q('06', '0004')]) {
    t.true(ls(h, q).includes('se_bind'), q)
    t.true(ls(h, q).includes('se_associate'), q)
  }
  t.false(ls(h, 'devices/ap/card04/04.0004').includes('se_bind'), 'not on the host')
  t.deepEqual(h.guests().map(g => [g.name, g.se]), [['g', true]])
  const plain = setup(false)
  t.is(plain.read(`${G}/bus/ap/features`), 'APSC APXA QACT RC8A\n')
  t.false(ls(plain, Q('04', '0004')).includes('se_bind'))
})

test('show texts: EP11 unbound/unassociated, accelerator unbound/-, CCA -/-; the BS bits of ap_functions say unbound', t => {
  const h = setup()
  t.is(h.read(`${Q('04', '0004')}/se_bind`), 'unbound\n')
  t.is(h.read(`${Q('04', '0004')}/se_associate`), 'unassociated\n')
  t.is(h.read(`${Q('05', '0004')}/se_bind`), 'unbound\n')
  t.is(h.read(`${Q('05', '0004')}/se_associate`), '-\n')
  t.is(h.read(`${Q('06', '0004')}/se_bind`), '-\n')
  t.is(h.read(`${Q('06', '0004')}/se_associate`), '-\n')
  t.is(h.read(`${Q('04', '0004')}/ap_functions`), '0x86008000\n')
  t.is(h.read('devices/ap/card04/04.0004/ap_functions'), '0x86000000\n', 'the host queue has no BS bits')
})

test('bind and associate an EP11 queue (pvapconfig): bound, then associated N; BS bits 1 then 0', t => {
  const h = setup()
  const q = Q('04', '0004')
  h.write(`${q}/se_bind`, '1\n')
  t.is(h.read(`${q}/se_bind`), 'bound\n')
  t.is(h.read(`${q}/se_associate`), 'unassociated\n')
  t.is(h.read(`${q}/ap_functions`), '0x86004000\n')
  h.write(`${q}/se_associate`, '0x1f\n')
  t.is(h.read(`${q}/se_associate`), 'associated 31\n')
  t.is(h.read(`${q}/se_bind`), 'bound\n')
  t.is(h.read(`${q}/ap_functions`), '0x86000000\n')
  // an accelerator queue is usable once bound
  h.write(`${Q('05', '0005')}/se_bind`, 'y')
  t.is(h.read(`${Q('05', '0005')}/ap_functions`), '0xEA000000\n')
})

test('refusals, each changing nothing: CCA bind, accelerator associate, bind twice, associate unbound or twice, bad index', t => {
  const h = setup()
  const ep = Q('04', '0004')
  const cases: Array<[string, string, string]> = [
    [`${Q('06', '0004')}/se_bind`, '1', 'EINVAL'],
    [`${Q('05', '0004')}/se_associate`, '1', 'EINVAL'],
    [`${ep}/se_associate`, '1', 'EINVAL'],
    [`${ep}/se_bind`, 'maybe', 'EINVAL'],
    [`${ep}/se_associate`, 'x', 'EINVAL']
  ]
  for (const [f, v, e] of cases) t.is(errno(() => h.write(f, v)), e, `${f} ${v}`)
  h.write(`${ep}/se_bind`, '1')
  t.is(errno(() => h.write(`${ep}/se_bind`, '1')), 'EINVAL', 'already bound')
  t.is(errno(() => h.write(`${ep}/se_associate`, '65536')), 'EINVAL', 'ASSOC_IDX_INVALID')
  t.is(errno(() => h.write(`${ep}/se_associate`, '4294967296')), 'ERANGE')
  t.is(errno(() => h.write(`${ep}/se_associate`, '-1')), 'EINVAL')
  t.is(h.read(`${ep}/se_associate`), 'unassociated\n')
  h.write(`${ep}/se_associate`, '65535')
  t.is(errno(() => h.write(`${ep}/se_associate`, '7')), 'EINVAL', 'already associated')
  t.is(h.read(`${ep}/se_associate`), 'associated 65535\n')
})

test('reset and a driver unbind/rebind keep binding and association; se_bind 0 drops both', t => {
  const h = setup()
  const ep = Q('04', '0005')
  h.write(`${ep}/se_bind`, '1')
  h.write(`${ep}/se_associate`, '2')
  h.write(`${ep}/reset`, '1')
  t.is(h.read(`${ep}/se_associate`), 'associated 2\n')
  h.write(`${G}/bus/ap/drivers/cex4queue/unbind`, '04.0005')
  h.write(`${G}/bus/ap/drivers/cex4queue/bind`, '04.0005')
  t.is(h.read(`${ep}/se_associate`), 'associated 2\n')
  h.write(`${ep}/se_bind`, '0')
  t.is(h.read(`${ep}/se_bind`), 'unbound\n')
  t.is(h.read(`${ep}/se_associate`), 'unassociated\n')
  h.write(`${ep}/se_bind`, '1')
  t.is(h.read(`${ep}/se_associate`), 'unassociated\n', 'a new binding has no association')
})

test('a deconfigured queue cannot be bound (EIO); the host unplugging an adapter and plugging it back gives fresh queues', t => {
  const h = setup()
  h.write(`${Q('05', '0004')}/se_bind`, '1')
  h.changeLpar([{ op: 'configure', id: 4, on: false }])
  t.is(errno(() => h.write(`${Q('04', '0004')}/se_bind`, '1')), 'EIO')
  h.changeLpar([{ op: 'configure', id: 4, on: true }])
  h.write(`${M}/unassign_adapter`, '5')
  t.false(ls(h, `${G}/devices/ap`).includes('card05'))
  h.write(`${M}/assign_adapter`, '5')
  t.is(h.read(`${Q('05', '0004')}/se_bind`), 'unbound\n')
})

test('the guest\'s writes stay in the guest; its kernel and SE state survive a snapshot; stop and start boots afresh', t => {
  const h = setup()
  h.write(`${Q('04', '0004')}/se_bind`, '1')
  h.write(`${Q('04', '0004')}/se_associate`, '9')
  h.write(`${G}/bus/ap/aqmask`, '-5')
  t.is(h.read('bus/ap/aqmask'), `0x${'f'.repeat(64)}\n`)
  const st = JSON.parse(JSON.stringify(h.snapshot()))
  t.deepEqual(st.guests.map((g: { name: string, se: boolean }) => [g.name, g.se]), [['g', true]])
  const r = Host.fromState(st)
  t.is(r.read(`${Q('04', '0004')}/se_associate`), 'associated 9\n')
  t.is(r.read(`${G}/bus/ap/aqmask`), h.read(`${G}/bus/ap/aqmask`))
  t.deepEqual(r.guests().map(g => g.se), [true])
  r.stopGuest('g')
  r.startGuest('g', U, true)
  t.is(r.read(`${Q('04', '0004')}/se_associate`), 'unassociated\n')
  t.is(r.read(`${G}/bus/ap/aqmask`), `0x${'f'.repeat(64)}\n`)
})

test('topology: secure_execution needs host kvm; such a host is itself an SE guest', t => {
  t.throws(() => loadTopology('secure_execution: true'), { message: /secure_execution: a Secure Execution guest is a KVM guest/ })
  const h = new Host(loadTopology(`
host: kvm
secure_execution: true
qci: { features: [APSC, APXA, QACT, RC8A, APSB] }
adapters: [{ id: 1, type: CEX8, mode: ep11 }]
usage_domains: [2]
modules: [zcrypt_cex4]
`))
  h.write('devices/ap/card01/01.0002/se_bind', '1')
  t.is(h.read('devices/ap/card01/01.0002/se_bind'), 'bound\n')
  t.is(Host.fromState(h.snapshot()).read('devices/ap/card01/01.0002/se_bind'), 'bound\n')
  const old = new Host({ ...h.topology, kernel: '6.0' })
  t.false(ls(old, 'devices/ap/card01/01.0002').includes('se_bind'), 'before 6.4 there are no SE attributes')
})
