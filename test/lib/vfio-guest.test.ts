/**
 * vfio_ap with a guest attached and with host configuration changes, in-process on the
 * model: the scenarios of /work/shared/spec/vfio-ap.md §9.2 that the mount cannot reach
 * (35–42 and 45; fixture TG, newest profile). `vfio(host).attachGuest` plays QEMU opening the
 * mdev's VFIO device; `host.bus.lpar.*` + `host.bus.scan()` play the HMC/SCLP changing the
 * LPAR's AP configuration and the AP bus noticing it.
 */
import test, { type ExecutionContext } from 'ava'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Host } from '../../lib/host.js'
import { loadTopology } from '../../lib/topology.js'
import { SysfsError, type Errno } from '../../lib/errors.js'

const TG_YAML = readFileSync(fileURLToPath(new URL('../../../test/fixtures/tg.yaml', import.meta.url)), 'utf8')

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const U2 = '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b'
const U3 = '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b'
const U7 = 'c5d6e7f8-a9b0-4c1d-9e2f-3a4b5c6d7e8f'

const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`
const VFIO_AP = 'bus/ap/drivers/vfio_ap'
const U1_MATRIX = '05.0004\n05.00ab\n06.0004\n06.00ab\n'

const CONFIG: Record<string, Array<[string, string]>> = {
  [U1]: [['assign_adapter', '5'], ['assign_adapter', '6'], ['assign_domain', '4'], ['assign_domain', '0xab']],
  [U2]: [['assign_adapter', '5'], ['assign_domain', '0x47'], ['assign_domain', '0xff']],
  [U3]: [['assign_adapter', '6'], ['assign_domain', '0x47'], ['assign_domain', '0xff']]
}

/** Queue directory of APQN `aa.dddd` (what /sys/bus/ap/devices/aa.dddd links to). */
const qdir = (apqn: string): string => `devices/ap/card${apqn.slice(0, 2)}/${apqn}`

/** Every `write(2)` the way `echo` does it: data + `\n`; returns the byte count. */
function echo (host: Host, path: string, data: string): number {
  return host.write(path, `${data}\n`)
}

/** Fixture TG with `echo -5,-6 > /sys/bus/ap/apmask` applied, then the named mdevs created
 * (in order) and configured as in §9.1. */
function tg (t: ExecutionContext, opts: { create?: string[], configure?: string[], apmask?: string[] } = {}): Host {
  const host = new Host(loadTopology(TG_YAML, 'test/fixtures/tg.yaml'))
  echo(host, 'bus/ap/apmask', '-5,-6')
  t.is(host.read('bus/ap/apmask'), '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n', 'fixture TG apmask')
  for (const m of opts.apmask ?? []) echo(host, 'bus/ap/apmask', m)
  for (const u of opts.create ?? []) t.is(echo(host, `${T}/create`, u), 37, `create ${u}`)
  for (const u of opts.configure ?? []) {
    for (const [attr, v] of CONFIG[u]) t.is(echo(host, `${M}/${u}/${attr}`, v), v.length + 1, `${u}: echo ${v} > ${attr}`)
  }
  return host
}

/** Asserts that `fn` throws a SysfsError with `code`. */
function throwsErrno (t: ExecutionContext, fn: () => unknown, code: Errno, what: string): void {
  const e = t.throws(fn, { instanceOf: SysfsError }, `${what}: expected ${code}`)
  if (e !== undefined) t.is((e as SysfsError).code, code, what)
}

/** The vfio_ap driver of the host (fixture TG loads the module). */
function vfio (host: Host): NonNullable<Host['vfio']> {
  if (host.vfio === undefined) throw new Error('fixture TG loads vfio_ap, but host.vfio is undefined')
  return host.vfio
}

const status = (host: Host, apqn: string): string => host.read(`${qdir(apqn)}/status`)
const klog = (host: Host): string[] => host.klog.records().map(r => r.text)

// ---------------------------------------------------------------------------------------
// §6 queue status

test('#35 queue status: in use / assigned / unassigned', t => {
  const host = tg(t, { create: [U1, U2, U3], configure: [U1, U2, U3] })
  vfio(host).attachGuest(U1, 'guest1')
  t.is(echo(host, `${M}/${U3}/remove`, '1'), 2)
  t.is(status(host, '05.0004'), 'in use\n', '05.0004: U1 with a guest')
  t.is(status(host, '05.0047'), 'assigned\n', '05.0047: U2, no guest')
  t.is(status(host, '06.0047'), 'unassigned\n', '06.0047: U3 removed')
  for (const q of ['05.00ab', '06.0004', '06.00ab']) t.is(status(host, q), 'in use\n', q)
  // §6: present only while bound to vfio_ap
  throwsErrno(t, () => host.read(`${qdir('04.0004')}/status`), 'ENOENT', '04.0004 is on the default driver')
})

test('#35 queue status: the guest view is kept after the guest detaches, in use becomes assigned', t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  t.is(status(host, '06.00ab'), 'in use\n')
  vfio(host).detachGuest(U1)
  t.is(status(host, '06.00ab'), 'assigned\n')
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX)
})

// ---------------------------------------------------------------------------------------
// §4.4 unbind / bind under a running guest

test('#36 unbinding a queue of a running guest unplugs its whole adapter', t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  t.is(echo(host, `${VFIO_AP}/unbind`, '06.00ab'), 8)
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX, 'matrix never changes')
  t.is(host.read(`${M}/${U1}/guest_matrix`), '05.0004\n05.00ab\n')
  t.is(status(host, '06.0004'), 'assigned\n')
  throwsErrno(t, () => status(host, '06.00ab'), 'ENOENT', '06.00ab/status after unbind')
  t.is(status(host, '05.0004'), 'in use\n')
  t.is(status(host, '05.00ab'), 'in use\n')
})

test('#37 binding it again plugs the adapter back', t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  echo(host, `${VFIO_AP}/unbind`, '06.00ab')
  t.is(echo(host, `${VFIO_AP}/bind`, '06.00ab'), 8)
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX)
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX)
  for (const q of ['05.0004', '05.00ab', '06.0004', '06.00ab']) t.is(status(host, q), 'in use\n', q)
})

test('#38 all adapters filtered: guest_matrix keeps the domain-only form', t => {
  const host = tg(t, { create: [U7] })
  echo(host, `${M}/${U7}/assign_adapter`, '6')
  echo(host, `${M}/${U7}/assign_domain`, '0xab')
  t.is(host.read(`${M}/${U7}/guest_matrix`), '06.00ab\n')
  echo(host, `${VFIO_AP}/unbind`, '06.00ab')
  t.is(host.read(`${M}/${U7}/guest_matrix`), '.00ab\n')
  t.is(host.read(`${M}/${U7}/matrix`), '06.00ab\n')
})

// ---------------------------------------------------------------------------------------
// §3 over-provisioning and host configuration changes

test('#39 a domain outside the host configuration is assigned but not passed through', t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  t.is(echo(host, `${M}/${U1}/assign_domain`, '0x10'), 5)
  t.is(host.read(`${M}/${U1}/matrix`), '05.0004\n05.0010\n05.00ab\n06.0004\n06.0010\n06.00ab\n')
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX)
})

test('#39 the same with a guest attached: nothing is hot-plugged', t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  t.is(echo(host, `${M}/${U1}/assign_domain`, '0x10'), 5)
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX)
  t.is(status(host, '05.0004'), 'in use\n')
})

test('#40 an over-provisioned adapter is hot-plugged when the host configuration adds it', t => {
  const host = tg(t, { apmask: ['-7'], create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  t.is(echo(host, `${M}/${U1}/assign_adapter`, '7'), 2)
  const six = '05.0004\n05.00ab\n06.0004\n06.00ab\n07.0004\n07.00ab\n'
  t.is(host.read(`${M}/${U1}/matrix`), six)
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX, 'adapter 7 is not in the host configuration yet')
  throwsErrno(t, () => host.read('devices/ap/card07/hwtype'), 'ENOENT', 'no card07 before the scan')

  host.bus.lpar.addAdapter({ id: 7, type: 'CEX5', mode: 'cca' })
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX, 'the machine changed, the bus has not scanned yet')
  throwsErrno(t, () => host.read('devices/ap/card07/hwtype'), 'ENOENT', 'no card07 before the scan')

  const mdev = vfio(host).mdev(U1)
  const updates = mdev?.guestUpdates ?? NaN
  host.bus.scan()
  t.is(host.read(`${M}/${U1}/guest_matrix`), six)
  t.is(host.read(`${M}/${U1}/matrix`), six)
  // one consolidated hot plug at scan completion, not one per new queue (§3.3)
  t.is(mdev?.guestUpdates, updates + 1, 'exactly one guest update for the whole scan')
  t.deepEqual(mdev?.guestApcb?.apm.ids(), [5, 6, 7], 'the guest got adapter 7')
  t.is(host.read('devices/ap/card07/hwtype'), '11\n')
  t.is(host.read('bus/ap/ap_adapter_mask'), '0x0f00000000000000000000000000000000000000000000000000000000000000\n')
  for (const q of ['07.0004', '07.00ab']) t.is(status(host, q), 'in use\n', q)
  for (const q of ['07.0047', '07.00ff']) t.is(status(host, q), 'unassigned\n', q)
})

test('#41 the host configuration removes adapter 6 under a running guest', t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  host.bus.lpar.removeAdapter(6)
  host.bus.scan()
  t.is(host.read(`${M}/${U1}/guest_matrix`), '05.0004\n05.00ab\n')
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX, 'matrix never changes')
  for (const q of ['06.0004', '06.0047', '06.00ab', '06.00ff']) {
    throwsErrno(t, () => host.read(`${qdir(q)}/status`), 'ENOENT', `${q} device is gone`)
    throwsErrno(t, () => host.read(`bus/ap/devices/${q}/status`), 'ENOENT', `bus/ap/devices/${q} is gone`)
  }
  throwsErrno(t, () => host.read('devices/ap/card06/hwtype'), 'ENOENT', 'card06 is gone')
  t.is(host.read('bus/ap/ap_adapter_mask'), '0x0c00000000000000000000000000000000000000000000000000000000000000\n')
  t.is(status(host, '05.0004'), 'in use\n')
})

test('#42 unassigning an adapter of a running guest', t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  t.is(echo(host, `${M}/${U1}/unassign_adapter`, '6'), 2)
  t.is(host.read(`${M}/${U1}/matrix`), '05.0004\n05.00ab\n')
  t.is(host.read(`${M}/${U1}/guest_matrix`), '05.0004\n05.00ab\n')
  t.is(status(host, '06.0004'), 'unassigned\n')
  t.is(status(host, '06.00ab'), 'unassigned\n')
  t.is(status(host, '05.0004'), 'in use\n')
})

// ---------------------------------------------------------------------------------------
// §2.10 remove while a guest uses the mdev

test('#45 remove blocks until the guest releases the device, then succeeds', async t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  vfio(host).attachGuest(U1, 'guest1')
  const before = klog(host).length
  const write: { settled: 'pending' | 'resolved' | 'rejected' } = { settled: 'pending' }
  const removal = host.writeAsync(`${M}/${U1}/remove`, '1\n')
  removal.then(() => { write.settled = 'resolved' }, () => { write.settled = 'rejected' })

  await new Promise(resolve => setTimeout(resolve, 100))
  t.is(write.settled, 'pending', 'the remove write must block while the guest holds the device')
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX, 'the mdev still exists while remove blocks')
  t.is(host.read(`${T}/available_instances`), '65535\n')
  const ga = vfio(host).mdev(U1)?.guestApcb
  t.true(ga === undefined || (ga.apm.isEmpty() && ga.aqm.isEmpty() && ga.adm.isEmpty()),
    'newest kernels strip the AP resources from the guest as soon as the request is issued (§2.10)')
  const requests = klog(host).slice(before)
  t.true(requests.includes(`vfio_ap_mdev ${U1}: No device request registered, blocked until released by user`) ||
    requests.includes(`vfio_ap_mdev ${U1}: Relaying device request to user (#0)`),
  `a device request is logged at once (errata 7); got ${JSON.stringify(requests)}`)

  vfio(host).detachGuest(U1)
  t.is(await removal, 2)
  t.is(write.settled, 'resolved')
  throwsErrno(t, () => host.read(`${M}/${U1}/matrix`), 'ENOENT', 'mdev gone after the guest released it')
  throwsErrno(t, () => host.read(`${T}/devices/${U1}/matrix`), 'ENOENT', 'type devices/ link gone')
  t.is(host.read(`${T}/available_instances`), '65536\n')
  for (const q of ['05.0004', '05.00ab', '06.0004', '06.00ab']) t.is(status(host, q), 'unassigned\n', q)
})

test('#45 remove without a guest completes at once through writeAsync too', async t => {
  const host = tg(t, { create: [U1], configure: [U1] })
  t.is(await host.writeAsync(`${M}/${U1}/remove`, '1\n'), 2)
  throwsErrno(t, () => host.read(`${M}/${U1}/matrix`), 'ENOENT', 'mdev gone')
})
