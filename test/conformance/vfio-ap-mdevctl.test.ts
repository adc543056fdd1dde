/**
 * What mdevctl (and s390-tools' ap-check callout) write, byte for byte, through the mount:
 * /work/shared/spec/clients.md. `mdevctl start` checks that bus/mdev/devices/<uuid> does not
 * exist, reads available_instances, writes the UUID to `create` (36 bytes, no newline) and
 * immediately writes each JSON attribute verbatim (`6`, `0x0b`, no newline) through
 * bus/mdev/devices/<uuid>/; `mdevctl stop` writes `1` to `remove`. Fixture TG after
 * `echo -5,-6 > /sys/bus/ap/apmask` (vfio-ap.md §9.1).
 */
import { test, type ExecutionContext } from '../helpers/kernel.js'
import { fileURLToPath } from 'node:url'
import { mountHost, requireFuse, type Mounted, type ShResult } from '../helpers/mount.js'

const TG = fileURLToPath(new URL('../../../test/fixtures/tg.yaml', import.meta.url))
const UA = '2f4e6a8c-0b1d-4c3e-9f5a-7b9d1e3f5a7c'
const UB = '3a5c7e9b-1d2f-4a4c-8e6b-8c0e2f4a6b8d'
const PRELUDE = `export LC_ALL=C; M="$S/devices/vfio_ap/matrix"; T="$M/mdev_supported_types/vfio_ap-passthrough"; B="$S/bus/mdev/devices"; UA=${UA}; UB=${UB}\n`

let active = 0
const waiting: Array<() => void> = []

async function tg (t: ExecutionContext, body: (sh: (s: string) => Promise<ShResult>, ok: (s: string) => Promise<string>, m: Mounted) => Promise<void>): Promise<void> {
  if (active < 2) active++; else await new Promise<void>(resolve => waiting.push(resolve))
  let m: Mounted | undefined
  try {
    m = await mountHost({ topology: TG })
    const mm = m
    const sh = async (s: string): Promise<ShResult> => await mm.sh(PRELUDE + s)
    const ok = async (s: string): Promise<string> => {
      const r = await sh(s)
      t.is(r.code, 0, `${s}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`)
      t.is(r.stderr, '', `${s}: stderr`)
      return r.stdout
    }
    await ok('echo -5,-6 > "$S/bus/ap/apmask"')
    await body(sh, ok, m)
    if (!t.passed) t.log(`daemon log (tail):\n${m.log().split('\n').slice(-40).join('\n')}`)
  } finally {
    try { await m?.stop() } finally { const next = waiting.shift(); if (next !== undefined) next(); else active-- }
  }
}

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })

test('mdevctl types: parents under class/mdev_bus, type attributes', async t => {
  await tg(t, async (_sh, ok) => {
    t.is(await ok('ls "$S/class/mdev_bus"'), 'matrix\n')
    t.is(await ok('[ "$(readlink -f "$S/class/mdev_bus/matrix")" = "$(readlink -f "$M")" ] && echo same'), 'same\n')
    t.is((await ok('readlink "$S/class/mdev_bus/matrix"')).startsWith('/'), false, 'relative link')
    t.is(await ok('ls "$S/class/mdev_bus/matrix/mdev_supported_types"'), 'vfio_ap-passthrough\n')
    const ty = '$S/class/mdev_bus/matrix/mdev_supported_types/vfio_ap-passthrough'
    t.is(await ok(`cat "${ty}/available_instances" "${ty}/device_api" "${ty}/name"`), '65536\nvfio-ap\nVFIO AP Passthrough Device\n')
  })
})

test('mdevctl start: create without newline, attributes written at once without newline, then list and stop', async t => {
  await tg(t, async (sh, ok) => {
    // start: the device must not exist yet
    t.is((await sh('test -e "$B/$UA"')).code, 1)
    t.is(await ok('cat "$T/available_instances"'), '65536\n')
    // the whole sequence in one process, no pause between create and the attributes
    await ok(String.raw`
      set -e
      printf %s "$UA" > "$S/class/mdev_bus/matrix/mdev_supported_types/vfio_ap-passthrough/create"
      printf %s 5 > "$B/$UA/assign_adapter"
      printf %s 6 > "$B/$UA/assign_adapter"
      printf %s 0x47 > "$B/$UA/assign_domain"
      printf %s 0x0b > "$B/$UA/assign_domain"
      printf %s 0x04 > "$B/$UA/assign_control_domain"`)
    t.is(await ok('cat "$B/$UA/matrix"'), '05.000b\n05.0047\n06.000b\n06.0047\n')
    t.is(await ok('cat "$B/$UA/guest_matrix"'), '05.0047\n06.0047\n', 'domain 0x0b is not in the host configuration')
    t.is(await ok('cat "$B/$UA/control_domains"'), '0004\n')
    t.is(await ok('cat "$T/available_instances"'), '65535\n')

    // list: realpath of the bus entry, parent = basename of its directory, type = basename of mdev_type
    t.is(await ok('p=$(realpath "$B/$UA"); basename "$(dirname "$p")"; basename "$(realpath "$p/mdev_type")"; [ "$p" = "$(realpath "$M")/$UA" ] && echo same'),
      'matrix\nvfio_ap-passthrough\nsame\n')
    for (const link of ['$B/$UA', '$B/$UA/mdev_type', '$B/$UA/driver', '$B/$UA/subsystem', '$T/devices/$UA']) {
      const target = await ok(`readlink "${link}"`)
      t.false(target.startsWith('/'), `${link} → ${target.trimEnd()} must be relative`)
    }

    // stop
    await ok('printf %s 1 > "$B/$UA/remove"')
    t.is((await sh('test -e "$B/$UA"')).code, 1)
    t.is((await sh('test -e "$M/$UA"')).code, 1)
    t.is(await ok('cat "$T/available_instances"'), '65536\n')
  })
})

test('mdevctl start of a conflicting definition: the attribute write reports the errno', async t => {
  await tg(t, async (sh, ok) => {
    await ok('printf %s "$UA" > "$T/create" && printf %s 5 > "$B/$UA/assign_adapter" && printf %s 0x47 > "$B/$UA/assign_domain"')
    await ok('printf %s "$UB" > "$T/create" && printf %s 0x47 > "$B/$UB/assign_domain"')
    const r = await sh('printf %s 5 > "$B/$UB/assign_adapter"')
    t.is(r.code, 1)
    t.regex(r.stderr, /printf: write error: Address already in use\n?$/)
    t.is(await ok('cat "$B/$UB/matrix"'), '.0047\n')
    const r2 = await sh('printf %s 4 > "$B/$UB/assign_adapter"')
    t.regex(r2.stderr, /printf: write error: Cannot assign requested address\n?$/)
    const r3 = await sh('printf %s 0x100 > "$B/$UB/assign_domain"')
    t.regex(r3.stderr, /printf: write error: No such device\n?$/)
    t.is(await ok('cat "$B/$UB/matrix"'), '.0047\n')
  })
})

test('mdevctl start of an existing UUID: create reports EEXIST', async t => {
  await tg(t, async (sh, ok) => {
    await ok('printf %s "$UA" > "$T/create"')
    const r = await sh('printf %s "$UA" > "$T/create"')
    t.is(r.code, 1)
    t.regex(r.stderr, /printf: write error: File exists\n?$/)
    t.is(await ok('ls "$B"'), `${UA}\n`)
  })
})

test('ap-check live modify: ap_config with three full masks and a newline', async t => {
  await tg(t, async (_sh, ok) => {
    await ok('printf %s "$UA" > "$T/create"')
    const z = '0'.repeat(64)
    const cfg = `0x06${z.slice(2)},0x08${z.slice(2, 42)}1${z.slice(43)},0x08${z.slice(2)}`
    await ok(`printf '%s\\n' ${cfg} > "$M/$UA/ap_config"`)
    t.is(await ok('cat "$M/$UA/ap_config"'), cfg + '\n')
    t.is(await ok('cat "$M/$UA/matrix"'), '05.0004\n05.00ab\n06.0004\n06.00ab\n')
    t.is(await ok('cat "$M/$UA/control_domains"'), '0004\n')
    // ap-check reads the masks it validates against
    t.regex(await ok('cat "$S/bus/ap/apmask" "$S/bus/ap/aqmask"'), /^0x[0-9a-f]{64}\n0x[0-9a-f]{64}\n$/)
  })
})
