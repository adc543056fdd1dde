/**
 * The whole three-guest example of the kernel documentation (Documentation/arch/s390/
 * vfio-ap.rst, "Example"), as an administrator types it, through the mount: secure the
 * APQNs, create three mdevs, configure them for Guest1..Guest3, look at every result the
 * documentation mentions, try the operations the kernel refuses, and remove the mdevs.
 * Expected values: /work/shared/spec/vfio-ap.md §1–§5 and §9 (the code wins over the doc:
 * a shared APQN is EADDRINUSE, not EBUSY).
 */
import { test } from '../helpers/kernel.js'
import { fileURLToPath } from 'node:url'
import { mountHost, requireFuse } from '../helpers/mount.js'

const TG = fileURLToPath(new URL('../../../test/fixtures/tg.yaml', import.meta.url))

const U1 = '62177883-f1bb-47f0-914d-32a22e3a8804'
const U2 = '8e5b9f3c-2d4a-4b6e-9c1f-0a7d3e5b8c21'
const U3 = 'c0ffee00-1234-4abc-8def-0123456789ab'
const QUEUES = ['05.0004', '05.0047', '05.00ab', '05.00ff', '06.0004', '06.0047', '06.00ab', '06.00ff']
const APMASK = '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n'

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })

test('vfio-ap.rst example: three guests sharing adapters 5 and 6', async t => {
  const m = await mountHost({ topology: TG })
  try {
    const prelude = `export LC_ALL=C; M="$S/devices/vfio_ap/matrix"; T="$M/mdev_supported_types/vfio_ap-passthrough"; U1=${U1}; U2=${U2}; U3=${U3}\n`
    const sh = async (script: string) => await m.sh(prelude + script)
    const ok = async (script: string, what = script): Promise<string> => {
      const r = await sh(script)
      t.is(r.code, 0, `${what}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`)
      t.is(r.stderr, '', `${what}: stderr`)
      return r.stdout
    }
    const root = (await ok('readlink -f "$S"')).trimEnd()
    const resolves = async (link: string, rel: string): Promise<void> => {
      t.is(await ok(`readlink -f "${link}"`), `${root}/${rel}\n`, `${link} → ${rel}`)
    }
    const klog = async (): Promise<string[]> => (await m.dmesg()).split('\n').filter(l => l !== '').map(l => l.replace(/^\[\s*\d+\.\d+\] /, ''))
    const snapshot = async (): Promise<string> => {
      const r = await sh(String.raw`
        cat "$S/bus/ap/apmask" "$S/bus/ap/aqmask" "$T/available_instances"; ls "$M" "$T/devices" "$S/bus/mdev/devices" "$S/bus/ap/drivers/vfio_ap"
        for u in $U1 $U2 $U3; do for f in matrix guest_matrix control_domains ap_config; do echo "$u/$f:"; cat "$M/$u/$f"; done; done`)
      return r.stdout + r.stderr
    }
    const refused = async (script: string, message: RegExp): Promise<void> => {
      const before = await snapshot()
      const r = await sh(script)
      t.not(r.code, 0, `${script} must fail`)
      t.regex(r.stderr, message, script)
      t.is(await snapshot(), before, `${script}: state changed although refused`)
    }

    // Before: every queue belongs to the default driver, nothing is bound to vfio_ap.
    t.is(await ok('cat "$S/bus/ap/apmask"'), '0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
    t.is(await ok('ls "$S/bus/ap/drivers/vfio_ap" | grep -E "^[0-9a-f]{2}\\.[0-9a-f]{4}$" | wc -l'), '0\n')
    t.is(await ok('cat "$S/bus/ap/devices/card05/hwtype"'), '11\n', 'the doc: hwtype must be 10 or higher')

    // 2. Securing the APQNs for our example.
    await ok('echo -5,-6 > "$S/bus/ap/apmask"')
    t.is(await ok('cat "$S/bus/ap/apmask"'), APMASK)
    t.is(await ok('ls "$S/bus/ap/drivers/vfio_ap" | grep -E "^[0-9a-f]{2}\\.[0-9a-f]{4}$"'), QUEUES.join('\n') + '\n')
    for (const q of QUEUES) {
      t.is(await ok(`readlink "$S/bus/ap/drivers/vfio_ap/${q}"`), `../../../../devices/ap/card${q.slice(0, 2)}/${q}\n`, `vfio_ap/${q} link`)
      await resolves(`$S/bus/ap/devices/${q}/driver`, 'bus/ap/drivers/vfio_ap')
      t.is(await ok(`cat "$S/bus/ap/devices/${q}/status"`), 'unassigned\n', `${q} status`)
    }
    for (const q of ['04.0004', '04.0047', '04.00ab', '04.00ff']) {
      await resolves(`$S/bus/ap/devices/${q}/driver`, 'bus/ap/drivers/cex4queue')
    }
    // The documentation's alternative absolute aqmask would select the same 8 queues; the
    // aqmask stays all-ones here.
    t.is(await ok('cat "$S/bus/ap/aqmask"'), '0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')

    // 3. Create the mediated devices.
    t.is(await ok('ls "$T"'), 'available_instances\ncreate\ndevice_api\ndevices\nname\n')
    await ok('cd "$T" && echo $U1 > create && echo $U2 > create && echo $U3 > create')
    t.is(await ok('cat "$T/available_instances"'), '65533\n')
    const byName = [U1, U2, U3].sort()
    t.is(await ok('ls "$T/devices"'), byName.join('\n') + '\n')
    t.is(await ok('ls "$S/bus/mdev/devices"'), byName.join('\n') + '\n')
    t.is(await ok('ls "$M" | grep -E "^[0-9a-f]{8}-"'), byName.join('\n') + '\n')
    for (const u of [U1, U2, U3]) {
      t.is(await ok(`readlink "$T/devices/${u}"`), `../../../${u}\n`)
      t.is(await ok(`readlink "$S/bus/mdev/devices/${u}"`), `../../../devices/vfio_ap/matrix/${u}\n`)
      await resolves(`$S/bus/mdev/devices/${u}`, `devices/vfio_ap/matrix/${u}`)
      await resolves(`$T/devices/${u}`, `devices/vfio_ap/matrix/${u}`)
      await resolves(`$M/${u}/mdev_type`, 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough')
      // every attribute the doc's tree lists (plus those it omits, §8.6)
      for (const f of ['assign_adapter', 'assign_control_domain', 'assign_domain', 'matrix', 'unassign_adapter',
        'unassign_control_domain', 'unassign_domain', 'control_domains', 'guest_matrix', 'ap_config', 'remove']) {
        t.is((await sh(`test -f "$M/${u}/${f}"`)).code, 0, `${u}/${f} exists`)
      }
      t.is(await ok(`cat "$M/${u}/matrix"`), '', `${u} starts empty`)
    }

    // 4. Configure the matrixes, typed inside each mdev directory as the doc does.
    await ok('cd "$M/$U1" && echo 5 > assign_adapter && echo 6 > assign_adapter && echo 4 > assign_domain && echo 0xab > assign_domain', 'Guest1')
    await ok('cd "$M/$U2" && echo 5 > assign_adapter && echo 0x47 > assign_domain && echo 0xff > assign_domain', 'Guest2')
    await ok('cd "$M/$U3" && echo 6 > assign_adapter && echo 0x47 > assign_domain && echo 0xff > assign_domain', 'Guest3')
    const matrix: Record<string, string> = {
      [U1]: '05.0004\n05.00ab\n06.0004\n06.00ab\n',
      [U2]: '05.0047\n05.00ff\n',
      [U3]: '06.0047\n06.00ff\n'
    }
    for (const u of [U1, U2, U3]) {
      t.is(await ok(`cd "$M/${u}" && cat matrix`), matrix[u], `${u} matrix`)
      t.is(await ok(`cd "$M/${u}" && cat guest_matrix`), matrix[u], `${u} guest_matrix (no guest yet: what will be passed through)`)
      t.is(await ok(`cat "$M/${u}/control_domains"`), '', `${u} control_domains`)
    }
    for (const q of QUEUES) t.is(await ok(`cat "$S/bus/ap/devices/${q}/status"`), 'assigned\n', `${q} status`)
    t.is(await ok('cat "$T/available_instances"'), '65533\n')

    // "Control domains can similarly be assigned using the assign_control_domain sysfs file."
    await ok('echo 0xab > "$M/$U1/assign_control_domain"')
    t.is(await ok('cat "$M/$U1/control_domains"'), '00ab\n')
    // "If a mistake is made ... use the unassign_xxx files."
    await ok('echo 0xab > "$M/$U1/unassign_control_domain"')
    t.is(await ok('cat "$M/$U1/control_domains"'), '')

    // Refused: an APQN of another mdev (the doc says EBUSY; the code says EADDRINUSE).
    let log = await klog()
    await refused('cd "$M/$U3" && echo 5 > assign_adapter', /echo: write error: Address already in use\n?$/)
    t.deepEqual((await klog()).slice(log.length), [
      `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`,
      `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.00ff to mdev: already assigned to ${U2}`
    ])
    log = await klog()
    await refused('echo 0x47 > "$M/$U1/assign_domain"', /echo: write error: Address already in use\n?$/)
    t.deepEqual((await klog()).slice(log.length), [
      `vfio_ap_mdev ${U1}: Userspace may not assign queue 06.0047 to mdev: already assigned to ${U3}`
    ], 'only the newest overlapping mdev (U3) is reported, not U2')

    // Refused: an APQN reserved for the host's default driver (no log).
    log = await klog()
    await refused('echo 4 > "$M/$U1/assign_adapter"', /echo: write error: Cannot assign requested address\n?$/)
    await refused('echo 4 > "$M/$U2/assign_adapter"', /echo: write error: Cannot assign requested address\n?$/)
    t.deepEqual((await klog()).slice(log.length), [])

    // Refused: above the maximum ids the doc tells users to read.
    t.is(await ok('cat "$S/bus/ap/ap_max_adapter_id" "$S/bus/ap/ap_max_domain_id"'), '63\n255\n')
    await refused('echo 64 > "$M/$U1/assign_adapter"', /echo: write error: No such device\n?$/)
    await refused('echo 256 > "$M/$U1/assign_domain"', /echo: write error: No such device\n?$/)
    await refused('echo 256 > "$M/$U1/assign_control_domain"', /echo: write error: No such device\n?$/)

    // Refused: giving adapter 5 back to the host while mdevs use it.
    log = await klog()
    await refused('echo +5 > "$S/bus/ap/apmask"', /echo: write error: Device or resource busy\n?$/)
    t.deepEqual((await klog()).slice(log.length), [
      `vfio_ap_mdev ${U2}: Can not reserve queue 05.0047 for host driver: in use by mdev`,
      `vfio_ap_mdev ${U2}: Can not reserve queue 05.00ff for host driver: in use by mdev`
    ])
    t.regex(await m.dmesg(), new RegExp(`^\\[\\s*\\d+\\.\\d{6}\\] vfio_ap_mdev ${U2}: Can not reserve queue 05\\.0047 for host driver: in use by mdev$`, 'm'))
    t.is(await ok('cat "$S/bus/ap/apmask"'), APMASK)
    // the same through the absolute syntax of the doc
    await refused('echo 0xfdffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff > "$S/bus/ap/apmask"', /echo: write error: Device or resource busy\n?$/)

    // Remove the mdevs (guests shut down).
    await ok('cd "$M/$U1" && echo 1 > remove')
    t.is((await sh('test -e "$M/$U1"')).code, 1, 'U1 directory gone')
    t.is(await ok('cat "$T/available_instances"'), '65534\n')
    for (const q of ['05.0004', '05.00ab', '06.0004', '06.00ab']) {
      t.is(await ok(`cat "$S/bus/ap/devices/${q}/status"`), 'unassigned\n', `${q} after removing U1`)
    }
    // U1's APQNs are free now: U2 can take adapter 5 × domain 4 ...
    await ok('echo 4 > "$M/$U2/assign_domain"')
    t.is(await ok('cat "$M/$U2/matrix"'), '05.0004\n05.0047\n05.00ff\n')
    await ok('echo 1 > "$M/$U2/remove"; echo 1 > "$M/$U3/remove"')
    t.is(await ok('ls "$T/devices" | wc -l; ls "$S/bus/mdev/devices" | wc -l'), '0\n0\n')
    t.is(await ok('cat "$T/available_instances"'), '65536\n')
    // ... and with no mdev left the host may take its adapters back.
    await ok('echo +5,+6 > "$S/bus/ap/apmask"')
    t.is(await ok('cat "$S/bus/ap/apmask"'), '0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
    t.is(await ok('ls "$S/bus/ap/drivers/vfio_ap" | grep -E "^[0-9a-f]{2}\\.[0-9a-f]{4}$" | wc -l'), '0\n')
  } finally {
    await m.stop()
  }
})
