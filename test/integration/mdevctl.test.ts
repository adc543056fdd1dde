/**
 * mdevctl 1.2.0 (Debian 12's package, no root override) against the simulated host, through
 * `apsim run --root`: the tree is over /sys in a private namespace, and --mdevctl-dir keeps
 * its /etc/mdevctl.d (the definitions) from one step to the next and away from the host's.
 */
import test from 'ava'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { apsimRun, ensureClients } from '../helpers/clients.js'
import { mountHost, type Mounted } from '../helpers/mount.js'

const U1 = '62177883-f1bb-47f0-914d-32a22e3a8804'
const U2 = '11111111-2222-3333-4444-555555555555'
const TYPE = 'vfio_ap-passthrough'

let mounted: Mounted | undefined
const host = (): Mounted => { if (mounted === undefined) throw new Error('the host did not mount'); return mounted }
const etc = mkdtempSync(path.join(os.tmpdir(), 'apsim-mdevctl-etc-'))
test.before(async t => {
  await ensureClients(t)
  mounted = await mountHost({ args: ['--log-level', 'info'] }) // the stores are read from the log
  // The layout mdevctl's package ships in /etc/mdevctl.d.
  const r = await apsimRun('mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers', ['--root', host().dir, '--mdevctl-dir', etc])
  if (r.code !== 0) throw new Error(r.stderr)
  // The kernel documentation's example: adapters 5 and 6 go to vfio_ap.
  const m = await host().sh('echo -5,-6 > bus/ap/apmask')
  if (m.code !== 0) throw new Error(m.stderr)
})
test.after.always(async () => {
  await mounted?.stop()
  rmSync(etc, { recursive: true, force: true })
})

/** `mdevctl ...` (a bash command line) in the namespace; LC_ALL=C. */
const mdevctl = async (args: string) => await apsimRun(`mdevctl ${args}`, ['--root', host().dir, '--mdevctl-dir', etc])
const mdevs = (): string[] => readdirSync(path.join(host().dir, 'devices/vfio_ap/matrix')).filter(n => /^[0-9a-f]{8}-/.test(n)).sort()
const busMdevs = (): string[] => readdirSync(path.join(host().dir, 'bus/mdev/devices')).sort()

test.serial('mdevctl --version is the Debian 12 one these tests describe', async t => {
  const r = await mdevctl('--version')
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, 'mdevctl 1.2.0\n')
})

test.serial('mdevctl types: the matrix device\'s vfio_ap-passthrough type', async t => {
  const r = await mdevctl('types')
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, [
    'matrix',
    `  ${TYPE}`,
    '    Available instances: 65536',
    '    Device API: vfio-ap',
    '    Name: VFIO AP Passthrough Device',
    '', ''
  ].join('\n'))
})

test.serial('mdevctl list: nothing on a fresh host', async t => {
  const r = await mdevctl('list')
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout.trim(), '')
  t.is((await mdevctl('list --defined')).stdout.trim(), '')
})

test.serial('mdevctl define + start: the mdev gets its adapter, domains and control domain', async t => {
  for (const args of [
    `define -u ${U1} -p matrix -t ${TYPE}`,
    `modify -u ${U1} --addattr=assign_adapter --value=5`,
    `modify -u ${U1} --addattr=assign_domain --value=4`,
    `modify -u ${U1} --addattr=assign_domain --value=0xab`,
    `modify -u ${U1} --addattr=assign_control_domain --value=0xab`
  ]) {
    const r = await mdevctl(args)
    t.is(r.code, 0, `mdevctl ${args}: ${r.stderr}`)
  }
  t.is((await mdevctl('list --defined')).stdout, `${U1} matrix ${TYPE} manual\n\n`)
  t.deepEqual(mdevs(), [])

  const start = await mdevctl(`start -u ${U1}`)
  t.is(start.code, 0, start.stderr)
  t.deepEqual(mdevs(), [U1])
  t.deepEqual(busMdevs(), [U1])
  const m = `devices/vfio_ap/matrix/${U1}`
  t.is(await host().read(`${m}/matrix`), '05.0004\n05.00ab\n')
  t.is(await host().read(`${m}/control_domains`), '00ab\n')
  for (const q of ['05.0004', '05.00ab']) t.regex(await host().read(`devices/ap/card05/${q}/status`), /^assigned\n$/)
  t.is((await mdevctl('list')).stdout, `${U1} matrix ${TYPE} manual (defined)\n\n`)
  t.regex((await mdevctl('types')).stdout, /Available instances: 65535\n/)
})

test.serial('a start whose APQN is another running mdev\'s fails with the kernel\'s EADDRINUSE and leaves no mdev behind', async t => {
  for (const args of [
    `define -u ${U2} -p matrix -t ${TYPE}`,
    `modify -u ${U2} --addattr=assign_adapter --value=6`,
    `modify -u ${U2} --addattr=assign_domain --value=0x47`,
    `modify -u ${U2} --addattr=assign_adapter --value=5`,
    `modify -u ${U2} --addattr=assign_domain --value=4` // 05.0004 is U1's
  ]) t.is((await mdevctl(args)).code, 0, args)
  const before = await host().dmesg()

  const r = await mdevctl(`start -u ${U2}`)
  t.is(r.code, 1)
  t.is(r.stderr, 'Error: Failed to write 4 to attribute assign_domain\n\nCaused by:\n    Address already in use (os error 98)\n')
  // The kernel refused the store with EADDRINUSE and logged why; mdevctl 1.2.0 then removed
  // the mdev it had created (write 1 to remove): the tree has U1 alone, as before.
  const log = (await host().dmesg()).slice(before.length)
  t.regex(log, new RegExp(`vfio_ap_mdev ${U2}: Adding to iommu group \\d+\\n`))
  t.regex(log, new RegExp(`vfio_ap_mdev ${U2}: Userspace may not assign queue 05\\.0004 to mdev: already assigned to ${U1}\\n`))
  t.regex(log, new RegExp(`vfio_ap_mdev ${U2}: Removing from iommu group \\d+\\n`))
  // mdevctl's writes, as the daemon logged them: create, the attributes in order, the refused
  // one, then remove.
  const stores = host().log().split('\n').filter(l => l.includes(U2) && l.includes('"store"'))
    .map(l => JSON.parse(l) as { store: string, data: string, result: string })
    .map(s => `${s.store.replace(/^.*\//, '')} ${JSON.stringify(s.data)} ${s.result}`)
  t.deepEqual(stores, [
    `create "${U2}" ok`, 'assign_adapter "6" ok', 'assign_domain "0x47" ok', 'assign_adapter "5" ok',
    'assign_domain "4" EADDRINUSE', 'remove "1" ok'
  ])
  t.deepEqual(mdevs(), [U1])
  t.deepEqual(busMdevs(), [U1])
  t.is(await host().read(`devices/vfio_ap/matrix/${U1}/matrix`), '05.0004\n05.00ab\n')
  t.is((await mdevctl('list')).stdout, `${U1} matrix ${TYPE} manual (defined)\n\n`)
})

test.serial('mdevctl stop removes the mdev; undefine forgets both definitions', async t => {
  const stop = await mdevctl(`stop -u ${U1}`)
  t.is(stop.code, 0, stop.stderr)
  t.deepEqual(mdevs(), [])
  t.deepEqual(busMdevs(), [])
  t.is((await mdevctl('list')).stdout.trim(), '')
  const defined = (await mdevctl('list --defined')).stdout.split('\n').filter(l => l !== '').sort()
  t.deepEqual(defined, [`${U2} matrix ${TYPE} manual`, `${U1} matrix ${TYPE} manual`].sort())
  t.regex(await host().read('devices/ap/card05/05.0004/status'), /^unassigned\n$/)
  for (const u of [U1, U2]) t.is((await mdevctl(`undefine -u ${u}`)).code, 0)
  t.is((await mdevctl('list --defined')).stdout.trim(), '')
  t.deepEqual(readdirSync(path.join(etc, 'matrix')), [])
})
