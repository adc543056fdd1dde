/**
 * Files opened before their attribute went away (kernfs_get_active in fs/kernfs/file.c):
 * writes and reads that reach the show routine fail with ENODEV and change nothing, even
 * when an attribute of the same name exists again. Found by the concurrency test
 * (test/daemon/concurrency.test.ts): a client's `assign_adapter` fd outlived the mdev a
 * second client removed, and the write changed the removed mdev (its queues then read
 * `assigned` with no mdev at all); a `driver_override` write on a queue whose adapter had
 * left the LPAR left the override count stuck, so every later apmask write was EINVAL.
 */
import test from 'ava'
import { SysfsError } from '../../lib/errors.js'
import { Host } from '../../lib/host.js'
import { O_RDONLY, O_WRONLY, Sysfs } from '../../lib/sysfs.js'
import { defaultTopology } from '../../lib/topology.js'

const U = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`

function setup (): { host: Host, fs: Sysfs } {
  const host = new Host(defaultTopology())
  host.write('bus/ap/apmask', '-5,-6\n')
  host.write(`${T}/create`, `${U}\n`)
  host.write(`${M}/${U}/assign_domain`, '4\n')
  return { host, fs: new Sysfs(host.root) }
}

const enodev = (t: import('ava').ExecutionContext, fn: () => unknown, what: string): void => {
  const e = t.throws(fn, { instanceOf: SysfsError }, what)
  t.is(e?.code, 'ENODEV', what)
}

test('a write through a file of a removed mdev is ENODEV and changes nothing', t => {
  const { host, fs } = setup()
  const fh = fs.open(`${M}/${U}/assign_adapter`, O_WRONLY)
  host.write(`${M}/${U}/remove`, '1\n')
  const before = JSON.stringify(host.snapshot())
  enodev(t, () => fs.write(fh, Buffer.from('5\n')), 'assign_adapter of the removed mdev')
  t.is(JSON.stringify(host.snapshot()), before)
  t.is(host.read('devices/ap/card05/05.0004/status'), 'unassigned\n', 'no queue is assigned to a removed mdev')
  fs.release(fh)
})

test('a re-created mdev of the same UUID is a new file: the old fd stays ENODEV, the new mdev is untouched', t => {
  const { host, fs } = setup()
  const fh = fs.open(`${M}/${U}/assign_adapter`, O_WRONLY)
  const rd = fs.open(`${M}/${U}/matrix`, O_RDONLY)
  host.write(`${M}/${U}/remove`, '1\n')
  host.write(`${T}/create`, `${U}\n`)
  enodev(t, () => fs.write(fh, Buffer.from('5\n')), 'write')
  enodev(t, () => fs.read(rd, 0, 4096), 'read at offset 0')
  t.is(host.read(`${M}/${U}/matrix`), '')
  const fresh = fs.open(`${M}/${U}/assign_adapter`, O_WRONLY)
  t.is(fs.write(fresh, Buffer.from('5\n')), 2, 'a file opened now works')
  t.is(host.read(`${M}/${U}/matrix`), '05.\n')
})

test('a driver_override write on a queue whose adapter left the LPAR is ENODEV; mask writes keep working', t => {
  const host = new Host(defaultTopology())
  const fs = new Sysfs(host.root)
  const fh = fs.open('devices/ap/card06/06.0004/driver_override', O_WRONLY)
  host.changeLpar([{ op: 'remove-adapter', id: 6 }])
  enodev(t, () => fs.write(fh, Buffer.from('vfio_ap\n')), 'driver_override of a removed queue')
  t.is(host.write('bus/ap/apmask', '-5\n'), 3, 'apmask still accepts writes')
  host.changeLpar([{ op: 'add-adapter', adapter: { id: 6, type: 'CEX5', mode: 'accel' } }])
  enodev(t, () => fs.write(fh, Buffer.from('vfio_ap\n')), 'not even once the adapter is back: a new queue device')
})

test('a driver attribute that went with the binding: zcrypt online after the queue moved to vfio_ap', t => {
  const host = new Host(defaultTopology())
  const fs = new Sysfs(host.root)
  const w = fs.open('devices/ap/card04/04.0004/online', O_WRONLY)
  const r = fs.open('devices/ap/card04/04.0004/online', O_RDONLY)
  t.is(fs.read(r, 0, 4096).toString(), '1\n')
  host.write('bus/ap/apmask', '-4\n')
  const events = host.uevents.records().length
  enodev(t, () => fs.write(w, Buffer.from('0\n')), 'write')
  t.is(host.uevents.records().length, events, 'no ONLINE uevent for a queue zcrypt no longer has')
  t.is(fs.read(r, 1, 4096).toString(), '\n', 'what was read already stays readable (the seq_file buffer)')
  enodev(t, () => fs.read(r, 0, 4096), 'a new read')
})

test('files that stay keep working across the changes around them', t => {
  const { host, fs } = setup()
  const mask = fs.open('bus/ap/apmask', O_WRONLY)
  const assign = fs.open(`${M}/${U}/assign_adapter`, O_WRONLY)
  const matrix = fs.open(`${M}/${U}/matrix`, O_RDONLY)
  const online = fs.open('devices/ap/card04/04.0047/online', O_WRONLY)
  host.startGuest('g1', U)
  const apcb = fs.open('kernel/debug/apsim/guest/g1/apcb', O_RDONLY)
  for (let i = 0; i < 3; i++) {
    t.is(fs.write(mask, Buffer.from(i % 2 === 0 ? '-7\n' : '+7\n')), 3)
    t.is(fs.write(assign, Buffer.from('5\n')), 2)
    t.is(fs.write(online, Buffer.from('1\n')), 2)
    t.is(fs.read(matrix, 0, 4096).toString(), '05.0004\n')
    t.regex(fs.read(apcb, 0, 4096).toString(), /^0x0400/, 'the guest file shows the guest as it is now')
    host.changeLpar([{ op: 'scan' }])
  }
  host.stopGuest('g1')
  enodev(t, () => fs.read(apcb, 0, 4096), 'the guest\'s file once it stopped')
})

test('after a restore every file opened before is of the old host: ENODEV', t => {
  const { host, fs } = setup()
  const state = host.snapshot()
  const fh = fs.open('bus/ap/apmask', O_WRONLY)
  host.restore(state)
  enodev(t, () => fs.write(fh, Buffer.from('-4\n')), 'apmask of the replaced host')
  t.is(host.read('bus/ap/apmask'), '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
})
