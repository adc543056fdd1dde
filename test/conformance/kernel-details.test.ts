/**
 * Details a byte-by-byte comparison with a kernel finds, through the mount (default topology,
 * fixture TG: adapters 4 and 5 CEX5C, 6 CEX5A; domains 4, 0x47, 0xab, 0xff):
 *
 * - a `uevent` write (kobject_synth_uevent): the action, the UUID and KEY=VALUE grammar, the
 *   kernel's warning and, for devices, uevent_store's error line; who the event belongs to
 *   (the bus directory's to subsystem `bus`, a driver's to `drivers`, the vfio_ap root
 *   device's to nobody: its events are filtered);
 * - `serialnr` of adapters added at run time has the width of its mode (8 for CCA, 16 for EP11).
 */
import { KERNEL, test } from '../helpers/kernel.js'
import { requireFuse, useHost } from '../helpers/mount.js'
import { STRERROR } from '../helpers/shell.js'
import { profile } from '../../lib/profiles.js'

interface Uevent { seq: number, action: string, devpath: string, subsystem: string, env: Array<[string, string]> }
interface Klog { seq: number, level: string, text: string }

const U = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const RC = profile(KERNEL)?.ueventStoreRc === true ? ': -22' : ''
const EINVAL = `bash: line 1: echo: write error: ${STRERROR.EINVAL}\n`

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })
const host = useHost(test)

const jsonLines = <T>(text: string): T[] => text.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as T)

/** Runs `script`; returns its result with the uevents and kernel log records it caused. */
async function after (script: string): Promise<{ code: number, stderr: string, events: Uevent[], klog: Klog[] }> {
  const m = host()
  const before = async (f: string): Promise<number> => jsonLines<{ seq: number }>(await m.read(`kernel/debug/apsim/${f}`)).at(-1)?.seq ?? 0
  const [ev0, kl0] = [await before('uevents'), await before('kmsg')]
  const r = await m.sh(script)
  const events = jsonLines<Uevent>(await m.read('kernel/debug/apsim/uevents')).filter(e => e.seq > ev0)
  const klog = jsonLines<Klog>(await m.read('kernel/debug/apsim/kmsg')).filter(k => k.seq > kl0)
  return { code: r.code, stderr: r.stderr, events, klog }
}

const brief = (e: Uevent): string => `${e.action} ${e.devpath} (${e.subsystem}) ${e.env.map(([k, v]) => `${k}=${v}`).join(' ')}`
const lines = (k: Klog[]): string[] => k.map(r => `${r.level} ${r.text}`)

test.serial('echo add > bus/ap/uevent: an event of the bus directory, subsystem bus', async t => {
  const r = await after('echo add > bus/ap/uevent')
  t.is(r.code, 0, r.stderr)
  t.deepEqual(r.events.map(brief), ['add /bus/ap (bus) SYNTH_UUID=0'])
})

test.serial('echo add > bus/ap/drivers/cex4card/uevent: subsystem drivers (the drivers kset has no uevent ops)', async t => {
  const r = await after('echo add > bus/ap/drivers/cex4card/uevent')
  t.is(r.code, 0, r.stderr)
  t.deepEqual(r.events.map(brief), ['add /bus/ap/drivers/cex4card (drivers) SYNTH_UUID=0'])
})

test.serial('echo add > devices/vfio_ap/uevent succeeds and sends nothing: a root device without bus or class is filtered', async t => {
  const r = await after('echo add > devices/vfio_ap/uevent')
  t.is(r.code, 0, r.stderr)
  t.deepEqual(r.events.map(brief), [])
})

test.serial('a UUID and alphanumeric KEY=VALUE pairs become SYNTH_UUID and SYNTH_ARG_ variables, before the device\'s own', async t => {
  const r = await after(`echo "change ${U} A=1 bee=x2" > devices/ap/card04/04.0004/uevent`)
  t.is(r.code, 0, r.stderr)
  t.deepEqual(r.events.map(brief), [`change /devices/ap/card04/04.0004 (ap) SYNTH_UUID=${U} SYNTH_ARG_A=1 SYNTH_ARG_bee=x2 DEVTYPE=ap_queue DRIVER=cex4queue MODE=cca`])
})

/** A refused `uevent` write on a device: EINVAL, no event, kobject_synth_uevent's warning and uevent_store's error line. */
const refusedOnDevice: Array<[string, string, string, string]> = [
  ['an unknown action on a card', 'echo bogus > devices/ap/card04/uevent', '/devices/ap/card04: unknown uevent action string', 'cex4card card04'],
  ['bad arguments on the AP root device (its dev_err names bus and device)', 'echo "add not-a-uuid" > devices/ap/uevent', '/devices/ap: incorrect uevent action arguments', 'ap ap']
]
for (const [what, script, warning, device] of refusedOnDevice) {
  test.serial(`${what}: EINVAL, the kernel's warning and uevent_store's error line, no event`, async t => {
    const r = await after(script)
    t.is(r.stderr, EINVAL)
    t.deepEqual(r.events, [])
    t.deepEqual(lines(r.klog), [`warn synth uevent: ${warning}`, `err ${device}: uevent: failed to send synthetic uevent${RC}`])
  })
}

test.serial('refusals that the argument grammar makes: an underscore in a key, a missing value, a space before the newline', async t => {
  for (const arg of [`${U} A_B=1`, `${U} A=`, `${U} `]) {
    const r = await after(`echo "add ${arg}" > devices/ap/card05/05.0047/uevent`)
    t.is(r.stderr, EINVAL, arg)
    t.deepEqual(r.events, [], arg)
    t.is(r.klog[0]?.text, 'synth uevent: /devices/ap/card05/05.0047: incorrect uevent action arguments', arg)
  }
})

test.serial('an unknown action on the bus or a driver: EINVAL and only the kernel\'s warning (their stores log nothing else)', async t => {
  for (const [file, devpath] of [['bus/ap/uevent', '/bus/ap'], ['bus/ap/drivers/vfio_ap/uevent', '/bus/ap/drivers/vfio_ap']]) {
    const r = await after(`echo remove-all > ${file}`)
    t.is(r.stderr, EINVAL, file)
    t.deepEqual(lines(r.klog), [`warn synth uevent: ${devpath}: unknown uevent action string`], file)
  }
})

test.serial('serialnr of adapters added at run time: 8 characters in CCA mode, 16 in EP11 mode, as at boot', async t => {
  const m = host()
  const r = await m.sh('echo "add-adapter 0x0a CEX5 cca" > kernel/debug/apsim/lpar && echo "add-adapter 0x0b CEX5 ep11" > kernel/debug/apsim/lpar')
  t.is(r.code, 0, r.stderr)
  const cca = await m.read('devices/ap/card0a/serialnr')
  const ep11 = await m.read('devices/ap/card0b/serialnr')
  t.regex(cca, /^[0-9A-Z]{8}\n$/)
  t.regex(ep11, /^[0-9A-Z]{16}\n$/)
  t.is(await m.read('devices/ap/card05/serialnr'), '93AAC05S\n', 'a boot-time CCA adapter, for comparison')
})
