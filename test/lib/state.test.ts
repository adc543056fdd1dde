/**
 * Snapshots are untrusted input (lib/state.ts): every field is checked, a refusal is EINVAL
 * naming the field, and a refused restore leaves the host byte for byte as it was (attacks 4,
 * 5 and 6 of the reliability list in the README). And the bytes of a snapshot are ASCII, so a
 * host that stored non-UTF-8 bytes round-trips (attack 7).
 */
import test from 'ava'
import { fail, SysfsError } from '../../lib/errors.js'
import { Host, type HostState } from '../../lib/host.js'
import { parseHostState, stateText } from '../../lib/state.js'
import { O_WRONLY, resolve, Sysfs } from '../../lib/sysfs.js'
import { defaultTopology } from '../../lib/topology.js'

const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`

function populated (): Host {
  const h = new Host(defaultTopology())
  h.write('bus/ap/apmask', '-5,-6\n')
  h.write(`${T}/create`, `${U}\n`)
  h.write(`${M}/${U}/assign_adapter`, '5\n')
  h.write(`${M}/${U}/assign_domain`, '4\n')
  h.write(`${M}/${U}/power/control`, 'on\n')
  h.startGuest('g1', U)
  return h
}

/** A JSON copy of the host's snapshot with `change` applied. */
function crafted (h: Host, change: (s: any) => void): HostState {
  const s = JSON.parse(stateText(h.snapshot()))
  change(s)
  return s
}

const refusal = (fn: () => unknown): string => {
  try { fn(); return 'accepted' } catch (e) { return e instanceof SysfsError ? `${e.code}: ${e.why}` : `not a SysfsError: ${String(e)}` }
}

const cases: Array<[string, (s: any) => void, RegExp]> = [
  ['an iommu group that is a path (attack 4)', s => { s.vfio.mdevs[0].iommuGroup = '../../../../etc' }, /^EINVAL: state: vfio\.mdevs\[0\]\.iommuGroup: must be an integer/],
  ['a 5.10 kernel without its klog (attack 5)', s => { s.topology.kernel = '5.10'; delete s.klog }, /^EINVAL: state: klog: must be a list/],
  ['an object as the AP domain (attack 6)', s => { s.bus.apDomain = {} }, /^EINVAL: state: bus\.apDomain: must be an integer between -1 and 255, got \{\}/],
  ['an mdev named __proto__ (attack 6)', s => { s.vfio.mdevs[0].uuid = '__proto__' }, /^EINVAL: state: vfio\.mdevs\[0\]\.uuid: must be a UUID/],
  ['a __proto__ key', s => { Object.defineProperty(s.bus, '__proto__', { value: { polluted: true }, enumerable: true }) }, /^EINVAL: state: bus\.__proto__: a reserved key/],
  ['a constructor key in power', s => { s.power.constructor = 'on' }, /^EINVAL: state: power\.constructor: a reserved key/],
  ['an unknown field', s => { s.vfio.mdevs[0].path = '/etc' }, /^EINVAL: state: vfio\.mdevs\[0\]\.path: unknown field/],
  ['a power key that is not a device path', s => { s.power['../etc'] = 'on' }, /^EINVAL: state: power key "\.\.\/etc": must be a device path/],
  ['a power value other than on', s => { s.power[`/${M}/${U}`] = 'off' }, /^EINVAL: state: power\.\/devices.*: must be one of "on"/],
  ['a mask that is not 256 bits', s => { s.bus.apmask = '0xff' }, /^EINVAL: state: bus\.apmask: must be a 256-bit mask/],
  ['a negative iommu group', s => { s.vfio.mdevs[0].iommuGroup = -1 }, /^EINVAL: state: vfio\.mdevs\[0\]\.iommuGroup: must be an integer between 0/],
  ['an iommu group at nextGroup', s => { s.vfio.mdevs[0].iommuGroup = s.vfio.nextGroup }, /^EINVAL: state: vfio\.mdevs\[0\]\.iommuGroup: must be below nextGroup/],
  ['a guest name with a slash', s => { s.vfio.mdevs[0].guest = '../g' }, /^EINVAL: state: vfio\.mdevs\[0\]\.guest: must be a guest name/],
  ['a request count that is not a number', s => { s.bus.queues[0].requestCount = '1e3' }, /^EINVAL: state: bus\.queues\[0\]\.requestCount: must be a decimal number/],
  ['a driver that does not exist', s => { s.bus.queues[0].driver = 'evil' }, /^EINVAL: state: bus\.queues\[0\]\.driver: must be one of/],
  ['a character above 0xff', s => { s.klog[0].text = 'snow \u2603' }, /^EINVAL: state: klog\[0\]\.text: must be a string of at most 4096 bytes/],
  ['records out of order', s => { s.klog[1].seq = s.klog[0].seq }, /^EINVAL: state: klog\[1\]\.seq: must be above/],
  ['a topology field of the wrong type', s => { s.topology.adapters[0].id = '4' }, /^EINVAL: state: topology\.adapters\[0\]\.id: must be an integer/],
  ['version 2', s => { s.version = 2 }, /^EINVAL: state: version: must be one of 1, got 2/],
  ['not an object', s => { s.bus = 'bus' }, /^EINVAL: state: bus: must be an object, got "bus"/]
]

for (const [what, change, why] of cases) {
  test(`restore refuses ${what}, names the field and changes nothing`, t => {
    const h = populated()
    const before = stateText(h.snapshot())
    const bad = crafted(h, change)
    t.regex(refusal(() => h.restore(bad)), why)
    t.is(stateText(h.snapshot()), before)
    t.is(h.read(`${M}/${U}/matrix`), '05.0004\n')
    t.regex(refusal(() => Host.fromState(bad)), why, 'booting from it is refused the same way')
  })
}

test('attack 4: no crafted iommu group makes a link leave the tree', t => {
  const h = populated()
  for (const g of ['../../../../etc', '1/../../..', '1e3', 1.5, '7']) {
    t.regex(refusal(() => h.restore(crafted(h, s => { s.vfio.mdevs[0].iommuGroup = g }))), /^EINVAL: state: vfio\.mdevs\[0\]\.iommuGroup/)
  }
  t.like(resolve(h.root, `${M}/${U}/iommu_group`), { kind: 'link', target: 'kernel/iommu_groups/0' })
})

test('attack 6: JSON.parse keeps __proto__ as a key; it is refused, nothing is polluted', t => {
  const h = populated()
  const domain = h.read('bus/ap/ap_domain')
  const text = stateText(h.snapshot()).replace('"bus":{', '"bus":{"__proto__":{"apDomain":"[object Object]"},')
  t.regex(refusal(() => h.restore(JSON.parse(text))), /^EINVAL: state: bus\.__proto__: a reserved key/)
  t.is(({} as any).apDomain, undefined)
  t.is(h.read('bus/ap/ap_domain'), domain)
})

test('a checked state is a fresh copy: the input cannot reach the model afterwards', t => {
  const h = populated()
  const s: any = crafted(h, () => {})
  const checked = parseHostState(s)
  s.vfio.mdevs[0].iommuGroup = '../etc'
  t.not(checked.vfio!.mdevs[0].iommuGroup, '../etc' as never)
  t.is(stateText(checked), stateText(h.snapshot()))
})

test('attack 7: a host that stored non-UTF-8 bytes round-trips; the snapshot text is ASCII', t => {
  const h = new Host(defaultTopology())
  const raw = Buffer.from([0x76, 0xe9, 0x80, 0xff, 0xc3, 0x28, 0x0a]).toString('latin1')
  h.write('devices/ap/card05/05.0004/driver_override', raw)
  h.write('devices/ap/card04/uevent', `change ${U} K\xe9=\xff\xd8\n`) // Latin-1 letters: alphanumeric to the kernel
  const text = stateText(h.snapshot())
  t.true(/^[\x20-\x7e\n]*$/.test(text), 'ASCII only')
  const copy = Host.fromState(JSON.parse(Buffer.from(text, 'utf8').toString('utf8')))
  t.is(stateText(copy.snapshot()), text)
  t.is(Buffer.from(copy.read('devices/ap/card05/05.0004/driver_override'), 'latin1').toString('hex'), Buffer.from(h.read('devices/ap/card05/05.0004/driver_override'), 'latin1').toString('hex'))
  t.is(JSON.parse(Buffer.from(text, 'latin1').toString('latin1')).bus.queues.find((q: any) => q.driverOverride !== null).driverOverride, raw.replace(/\n$/, ''))
})

test('attack 3 in-process: a store whose save fails is undone with the save\'s errno; the same open file stores later', t => {
  const h = populated()
  let saved = h.snapshot()
  let full = true
  const fs = new Sysfs(h.root, undefined, h.faults, {
    save: () => { if (full) fail('ENOSPC', 'disk full'); saved = h.snapshot() },
    rollback: () => h.restore(saved)
  })
  const fh = fs.open(`${M}/${U}/assign_domain`, O_WRONLY)
  const before = stateText(h.snapshot())
  t.throws(() => fs.write(fh, Buffer.from('0x47\n')), { code: 'ENOSPC' } as never)
  t.is(stateText(h.snapshot()), before)
  full = false
  t.is(fs.write(fh, Buffer.from('0x47\n')), 5)
  t.is(h.read(`${M}/${U}/matrix`), '05.0004\n05.0047\n')
  t.is(stateText(saved), stateText(h.snapshot()))
})
