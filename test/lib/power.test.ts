/**
 * `power/control` is state like any other attribute: a snapshot keeps what was written, a
 * restore brings it back, and a device that goes away takes it along (the device that
 * comes back is a new one, at the default `auto`). Found by the mount fuzzer
 * (test/daemon/fuzz.test.ts): the state restored in-process read `auto` where the mount
 * read `on`.
 */
import test from 'ava'
import { Host } from '../../lib/host.js'
import { defaultTopology } from '../../lib/topology.js'

const U = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`

test('power/control survives a snapshot and a restore', t => {
  const host = new Host(defaultTopology())
  host.write(`${T}/create`, `${U}\n`)
  host.write('devices/ap/card04/04.0047/power/control', 'on\n')
  host.write(`${M}/${U}/power/control`, 'on\n')
  host.write('devices/ap/card05/power/control', 'on\n')
  host.write('devices/ap/card05/power/control', 'auto\n')
  const state = host.snapshot()
  t.deepEqual(state.power, { '/devices/ap/card04/04.0047': 'on', [`/${M}/${U}`]: 'on' })
  const copy = Host.fromState(JSON.parse(JSON.stringify(state)))
  t.is(copy.read('devices/ap/card04/04.0047/power/control'), 'on\n')
  t.is(copy.read(`${M}/${U}/power/control`), 'on\n')
  t.is(copy.read('devices/ap/card05/power/control'), 'auto\n')
  t.deepEqual(copy.snapshot(), state)
})

test('a state without power settings (written before they were kept) restores with every device at auto', t => {
  const host = new Host(defaultTopology())
  host.write('devices/ap/card04/power/control', 'on\n')
  const state = host.snapshot()
  delete state.power
  host.restore(state)
  t.is(host.read('devices/ap/card04/power/control'), 'auto\n')
})

test('a device that goes away forgets its power setting: a re-created mdev, a re-added adapter start at auto', t => {
  const host = new Host(defaultTopology())
  host.write(`${T}/create`, `${U}\n`)
  host.write(`${M}/${U}/power/control`, 'on\n')
  host.write(`${M}/${U}/remove`, '1\n')
  host.write(`${T}/create`, `${U}\n`)
  t.is(host.read(`${M}/${U}/power/control`), 'auto\n')

  host.write('devices/ap/card06/power/control', 'on\n')
  host.write('devices/ap/card06/06.00ab/power/control', 'on\n')
  host.changeLpar([{ op: 'remove-adapter', id: 6 }])
  host.changeLpar([{ op: 'add-adapter', adapter: { id: 6, type: 'CEX5', mode: 'accel' } }])
  t.is(host.read('devices/ap/card06/power/control'), 'auto\n')
  t.is(host.read('devices/ap/card06/06.00ab/power/control'), 'auto\n')
  t.deepEqual(host.snapshot().power, {})
})

test('a refused restore keeps the power settings it had', t => {
  const host = new Host(defaultTopology())
  host.write('devices/ap/card04/power/control', 'on\n')
  const bad = { ...host.snapshot(), power: { '/devices/ap/card05': 'off' } }
  t.throws(() => host.restore(bad as never), { code: 'EINVAL' } as never)
  t.is(host.read('devices/ap/card04/power/control'), 'on\n')
  t.is(host.read('devices/ap/card05/power/control'), 'auto\n')
})
