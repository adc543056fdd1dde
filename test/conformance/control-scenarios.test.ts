/**
 * Scenarios that need the world around the host to change, through the mount with real
 * shell commands and the control plane at `kernel/debug/apsim/`:
 *
 * - /work/shared/spec/ap-bus.md §10 scenarios 32 and 33 (fixture F1): the machine's AP
 *   configuration loses an adapter / gains a usage domain (`lpar` writes), then a bus scan;
 * - /work/shared/spec/vfio-ap.md §9.2 scenarios 35–42 and 45 (fixture TG, newest profile):
 *   a guest attached to an mdev (`echo "start g1 $U1" > guests` plays QEMU opening the VFIO
 *   device) and host configuration changes under it;
 * - refusals of the control plane itself (second mdev for one guest, unknown guest, a
 *   refused `lpar` batch): the write fails, `last_error` says why, nothing changes.
 */
import { test, type ExecutionContext } from '../helpers/kernel.js'
import { fileURLToPath } from 'node:url'
import { mountHost, requireFuse, type Mounted, type ShResult } from '../helpers/mount.js'
import type { Errno } from '../../lib/errors.js'
import { mountSlot, STRERROR } from '../helpers/shell.js'
import { TG_CONFIG, U1_MATRIX } from '../helpers/tg.js'

const F1 = fileURLToPath(new URL('../../../test/fixtures/f1.yaml', import.meta.url))
const TG = fileURLToPath(new URL('../../../test/fixtures/tg.yaml', import.meta.url))

// ---------------------------------------------------------------------------------------
// Vocabulary

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const U2 = '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b'
const U3 = '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b'
const U7 = 'c5d6e7f8-a9b0-4c1d-9e2f-3a4b5c6d7e8f'
const UUIDS = { U1, U2, U3, U7 }
type Name = keyof typeof UUIDS

/** Shell variables every script sees: M, T, C (the control directory), U1.. (S = mountpoint). */
const PRELUDE = [
  'export LC_ALL=C',
  'M="$S/devices/vfio_ap/matrix"',
  'T="$M/mdev_supported_types/vfio_ap-passthrough"',
  'C="$S/kernel/debug/apsim"',
  ...Object.entries(UUIDS).map(([k, v]) => `${k}=${v}`)
].join('; ') + '\n'

/** §9.1: the documentation example's guest configurations. */
const CONFIG: Partial<Record<Name, string[]>> = TG_CONFIG
const U1_WITHOUT_6 = '05.0004\n05.00ab\n'

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i)
/** A 256-bit mask as the kernel prints it (`0x` + 64 lowercase hex digits), id 0 leftmost; no newline. */
function mask (ids: Iterable<number>): string {
  const set = new Set(ids)
  let s = '0x'
  for (let k = 0; k < 64; k++) s += range(0, 3).reduce((v, b) => v | (set.has(4 * k + b) ? 8 >> b : 0), 0).toString(16)
  return s
}
/** guest/NAME/apcb: the guest's three masks, comma-separated. */
const apcb = (apm: number[], aqm: number[], adm: number[] = []): string => `${mask(apm)},${mask(aqm)},${mask(adm)}\n`
const EMPTY_APCB = apcb([], [])

const hex2 = (n: number): string => n.toString(16).padStart(2, '0')
const qn = (a: number, d: number): string => `${hex2(a)}.${d.toString(16).padStart(4, '0')}`


const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------
// Harness: a fresh mount per scenario, at most two at a time


const show = (script: string, r: ShResult): string =>
  `$ ${script.trim()}\n  exit ${r.code}\n  stdout ${JSON.stringify(r.stdout)}\n  stderr ${JSON.stringify(r.stderr)}`

class Host {
  constructor (readonly t: ExecutionContext, readonly m: Mounted) {}

  async sh (script: string): Promise<ShResult> { return await this.m.sh(PRELUDE + script) }

  /** A script that must succeed silently; returns its stdout. */
  async ok (script: string): Promise<string> {
    const r = await this.sh(script)
    this.t.true(r.code === 0 && r.stderr === '', `expected success\n${show(script, r)}`)
    return r.stdout
  }

  async cat (path: string): Promise<string> { return await this.ok(`cat "${path}"`) }

  /** A one-write script that must fail with `errno`, as bash reports it. */
  async fails (script: string, errno?: Errno): Promise<ShResult> {
    const r = await this.sh(script)
    const re = new RegExp(`echo: write error: ${errno === undefined ? '.+' : STRERROR[errno]}\\n?$`)
    this.t.true(r.code !== 0 && re.test(r.stderr), `expected ${errno ?? 'a write error'}\n${show(script, r)}`)
    return r
  }

  async create (...names: Name[]): Promise<void> {
    for (const n of names) await this.ok(`echo $${n} > "$T/create"`)
  }

  async configure (...names: Name[]): Promise<void> {
    for (const n of names) for (const c of CONFIG[n] ?? []) await this.ok(`cd "$M/$${n}" && ${c}`)
  }

  async start (guest: string, mdev: Name): Promise<void> { await this.ok(`echo "start ${guest} $${mdev}" > "$C/guests"`) }

  async status (a: number, d: number): Promise<string> { return await this.cat(`$S/bus/ap/devices/${qn(a, d)}/status`) }

  async updates (guest = 'g1'): Promise<number> {
    const s = await this.cat(`$C/guest/${guest}/updates`)
    this.t.regex(s, /^\d+\n$/, `guest/${guest}/updates`)
    return Number.parseInt(s, 10)
  }

  /** `ls` of a directory as a sorted list (failure → the error text, so comparisons show it). */
  async ls (dir: string): Promise<string[]> {
    const r = await this.sh(`ls "${dir}"`)
    return r.code === 0 ? r.stdout.split('\n').filter(s => s !== '').sort() : [`ls failed: ${r.stderr.trim()}`]
  }

  async exists (path: string): Promise<boolean> { return (await this.sh(`test -e "${path}"`)).code === 0 }

  /** Everything a refused control write must leave alone. */
  async snapshot (): Promise<string> {
    const r = await this.sh(String.raw`
      shopt -s nullglob
      echo "lpar:"; cat "$C/lpar"
      echo "guests:"; cat "$C/guests"
      for g in "$C"/guest/*; do for f in mdev apcb updates; do echo "$g/$f: $(cat "$g/$f")"; done; done
      echo "scans $(cat "$S/bus/ap/scans") bindings $(cat "$S/bus/ap/bindings")"
      echo "devices:" $(ls "$S/bus/ap/devices")
      for q in "$S"/bus/ap/drivers/vfio_ap/??.????; do echo "$(basename "$q") $(cat "$q/status")"; done
      for d in "$M"/????????-????-????-????-????????????; do echo "$(basename "$d"): $(cat "$d/matrix" "$d/guest_matrix" | tr '\n' ' ')"; done
      echo "uevents $(cat "$C/uevents" | wc -l) dmesg $(cat "$C/dmesg" | wc -l)"`)
    return r.stdout + r.stderr
  }
}

async function boot (t: ExecutionContext, fixture: string, body: (h: Host) => Promise<void>): Promise<void> {
  await mountSlot(async () => {
    const m = await mountHost({ topology: fixture })
    try {
      await body(new Host(t, m))
      if (!t.passed) t.log(`daemon log (tail):\n${m.log().split('\n').slice(-40).join('\n')}`)
    } finally {
      await m.stop()
    }
  })
}

/** Fixture TG (§9.1): `echo -5,-6 > /sys/bus/ap/apmask`, then `setup`. */
async function tg (t: ExecutionContext, body: (h: Host) => Promise<void>): Promise<void> {
  await boot(t, TG, async h => {
    await h.ok('echo -5,-6 > "$S/bus/ap/apmask"')
    t.is(await h.cat('$S/bus/ap/apmask'), `${mask(range(0, 255).filter(i => i !== 5 && i !== 6))}\n`, 'fixture TG apmask')
    await body(h)
  })
}

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })

// =======================================================================================
// ap-bus.md §10.32–33 (fixture F1)

test('ap-bus §10.32 adapter 6 leaves the LPAR configuration: card06 and 06.* disappear at the scan', async t => {
  await boot(t, F1, async h => {
    const scans = Number.parseInt(await h.cat('$S/bus/ap/scans'), 10)
    await h.ok('echo "remove-adapter 6" > "$C/lpar"')
    t.is(await h.cat('$S/bus/ap/scans'), `${scans + 1}\n`, 'one lpar write = exactly one bus scan')
    t.notRegex(await h.cat('$C/lpar'), /adapter 0x06/, 'lpar no longer lists adapter 6')

    const check = async (when: string): Promise<void> => {
      t.false(await h.exists('$S/devices/ap/card06'), `${when}: card06 gone`)
      for (const d of [4, 0x0b, 0x47]) t.false(await h.exists(`$S/devices/ap/card06/${qn(6, d)}`), `${when}: ${qn(6, d)} gone`)
      t.deepEqual((await h.ls('$S/devices/ap')).filter(n => n.startsWith('card')), ['card03', 'card05'], `${when}: devices/ap`)
      t.deepEqual(await h.ls('$S/bus/ap/devices'),
        ['03.0004', '03.000b', '03.0047', '05.0004', '05.000b', '05.0047', 'card03', 'card05'], `${when}: bus/ap/devices`)
      t.deepEqual((await h.ls('$S/bus/ap/drivers/cex4card')).filter(n => n.startsWith('card')), ['card03', 'card05'], `${when}: cex4card links`)
      t.deepEqual((await h.ls('$S/bus/ap/drivers/cex4queue')).filter(n => /^..\.....$/.test(n)),
        ['03.0004', '03.000b', '03.0047', '05.0004', '05.000b', '05.0047'], `${when}: cex4queue links`)
      t.is(await h.cat('$S/bus/ap/ap_adapter_mask'), '0x1400000000000000000000000000000000000000000000000000000000000000\n', `${when}: ap_adapter_mask`)
      t.is(await h.cat('$S/bus/ap/bindings'), '6/6 (complete)\n', `${when}: bindings`)
      // §7.5: only new adapters/domains re-arm bindings-complete
      t.is(await h.cat('$S/bus/ap/bindings_complete_count'), '1\n', `${when}: bindings_complete_count`)
    }
    await check('after the lpar write')
    // the scenario's own rescan: nothing more changes, the counter moves by one
    await h.ok('echo 1 > "$S/bus/ap/scans"')
    t.is(await h.cat('$S/bus/ap/scans'), `${scans + 2}\n`)
    await check('after echo 1 > scans')
  })
})

test('ap-bus §10.33 usage domain 0x20 joins the LPAR configuration: 03/05/06.0020 appear on cex4queue', async t => {
  await boot(t, F1, async h => {
    const scans = Number.parseInt(await h.cat('$S/bus/ap/scans'), 10)
    t.is(await h.cat('$S/bus/ap/bindings_complete_count'), '1\n', 'after boot')
    await h.ok('echo "add-usage-domain 0x20" > "$C/lpar"')
    t.is(await h.cat('$S/bus/ap/scans'), `${scans + 1}\n`, 'one lpar write = exactly one bus scan')
    for (const a of [3, 5, 6]) {
      t.is(await h.ok(`readlink "$S/bus/ap/devices/${qn(a, 0x20)}/driver"`), '../../../../bus/ap/drivers/cex4queue\n', `${qn(a, 0x20)} driver`)
      t.is(await h.ok(`readlink "$S/bus/ap/drivers/cex4queue/${qn(a, 0x20)}"`), `../../../../devices/ap/card${hex2(a)}/${qn(a, 0x20)}\n`)
      t.is(await h.cat(`$S/devices/ap/card${hex2(a)}/${qn(a, 0x20)}/online`), '1\n', `${qn(a, 0x20)} online`)
    }
    t.is(await h.cat('$S/bus/ap/ap_usage_domain_mask'), `${mask([4, 0x0b, 0x20, 0x47])}\n`)
    t.is(await h.cat('$S/bus/ap/bindings'), '12/12 (complete)\n')
    t.is(await h.cat('$S/bus/ap/bindings_complete_count'), '2\n', 'bindings_complete_count increments by exactly 1')
    // the scenario's own rescan changes nothing more
    await h.ok('echo 1 > "$S/bus/ap/scans"')
    t.is(await h.cat('$S/bus/ap/bindings_complete_count'), '2\n', 'a scan without new resources does not count again')
    t.is((await h.ls('$S/bus/ap/devices')).length, 15, '12 queues + 3 cards')
  })
})

test('lpar: a batch with one refused command changes nothing and runs no scan', async t => {
  await boot(t, F1, async h => {
    const before = await h.snapshot()
    // one write(2) with two lines: coreutils printf, not the line-flushing builtin
    const r = await h.sh(String.raw`/usr/bin/printf 'add-usage-domain 0x20\nremove-adapter 9\n' > "$C/lpar"`)
    t.true(r.code !== 0 && /printf: write error: /.test(r.stderr), `expected a write error\n${show('printf … > lpar', r)}`)
    t.regex(await h.cat('$C/last_error'), /adapter 9\b/, 'last_error names the refused command')
    t.is(await h.snapshot(), before, 'nothing changed (all or nothing, no scan)')
    t.false(await h.exists('$S/devices/ap/card03/03.0020'))
  })
})

// =======================================================================================
// vfio-ap.md §9.2 scenarios 35–42, 45 (fixture TG)

test('vfio-ap #35 queue status: in use (U1, guest) / assigned (U2, no guest) / unassigned (U3 removed)', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2', 'U3')
    await h.configure('U1', 'U2', 'U3')
    await h.start('g1', 'U1')
    t.is(await h.cat('$C/guests'), `g1 ${U1}\n`)
    t.is(await h.cat('$C/guest/g1/mdev'), `${U1}\n`)
    t.is(await h.cat('$C/guest/g1/apcb'), apcb([5, 6], [4, 0xab]), 'the guest got U1\'s guest_matrix')
    t.is(await h.status(6, 0x47), 'assigned\n', '06.0047 while U3 exists')
    await h.ok('echo 1 > "$M/$U3/remove"')
    t.is(await h.status(5, 4), 'in use\n', '05.0004')
    t.is(await h.status(5, 0x47), 'assigned\n', '05.0047')
    t.is(await h.status(6, 0x47), 'unassigned\n', '06.0047')
    for (const [a, d] of [[5, 0xab], [6, 4], [6, 0xab]]) t.is(await h.status(a, d), 'in use\n', qn(a, d))
    t.is(await h.status(5, 0xff), 'assigned\n', '05.00ff')
    t.is(await h.status(6, 0xff), 'unassigned\n', '06.00ff')
    // after the guest stops, the view is kept and in use becomes assigned
    await h.ok('echo "stop g1" > "$C/guests"')
    t.is(await h.cat('$C/guests'), '')
    t.is(await h.status(5, 4), 'assigned\n', '05.0004 after the guest stopped')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_MATRIX)
  })
})

test('vfio-ap #36/#37 unbinding 06.00ab under a running guest unplugs adapter 6; binding it plugs it back', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.start('g1', 'U1')
    const n = await h.updates()

    // #36
    await h.ok('echo 06.00ab > "$S/bus/ap/drivers/vfio_ap/unbind"')
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX, '#36 matrix unchanged')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_WITHOUT_6, '#36 guest_matrix')
    t.is(await h.status(6, 4), 'assigned\n', '#36 06.0004')
    const r = await h.sh('cat "$S/bus/ap/devices/06.00ab/status"')
    t.true(r.code !== 0 && /No such file or directory/.test(r.stderr), `#36 06.00ab/status → ENOENT\n${show('cat 06.00ab/status', r)}`)
    t.is(await h.status(5, 4), 'in use\n')
    t.is(await h.cat('$C/guest/g1/apcb'), apcb([5], [4, 0xab]), '#36 the guest lost adapter 6')
    t.is(await h.updates(), n + 1, '#36 one guest update')

    // #37
    await h.ok('echo 06.00ab > "$S/bus/ap/drivers/vfio_ap/bind"')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_MATRIX, '#37 guest_matrix back to 4 lines')
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX)
    for (const [a, d] of [[5, 4], [5, 0xab], [6, 4], [6, 0xab]]) t.is(await h.status(a, d), 'in use\n', `#37 ${qn(a, d)}`)
    t.is(await h.cat('$C/guest/g1/apcb'), apcb([5, 6], [4, 0xab]), '#37 adapter 6 plugged back')
    t.is(await h.updates(), n + 2, '#37 one more guest update')
  })
})

test('vfio-ap #39 a domain outside the host configuration is assigned but not passed through', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.start('g1', 'U1')
    const n = await h.updates()
    await h.ok('echo 0x10 > "$M/$U1/assign_domain"')
    t.is(await h.cat('$M/$U1/matrix'), '05.0004\n05.0010\n05.00ab\n06.0004\n06.0010\n06.00ab\n')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_MATRIX)
    t.is(await h.cat('$C/guest/g1/apcb'), apcb([5, 6], [4, 0xab]))
    t.is(await h.updates(), n, 'nothing hot-plugged')
  })
})

test('vfio-ap #40 over-provisioned adapter 7 is hot-plugged once, at scan completion, when the LPAR gains it', async t => {
  await tg(t, async h => {
    await h.ok('echo -7 > "$S/bus/ap/apmask"')
    await h.create('U1')
    await h.configure('U1')
    await h.start('g1', 'U1')
    const n = await h.updates()

    await h.ok('echo 7 > "$M/$U1/assign_adapter"')
    t.is(await h.cat('$M/$U1/matrix'), '05.0004\n05.00ab\n06.0004\n06.00ab\n07.0004\n07.00ab\n', 'matrix gains 07.*')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_MATRIX, 'guest_matrix unchanged before the host has adapter 7')
    t.is(await h.updates(), n, 'no guest update for the over-provisioned assign')

    await h.ok('echo "add-adapter 7 CEX5 cca" > "$C/lpar"')
    t.is(await h.cat('$M/$U1/guest_matrix'), '05.0004\n05.00ab\n06.0004\n06.00ab\n07.0004\n07.00ab\n', 'after the scan')
    t.is(await h.updates(), n + 1, 'exactly one guest update (single hot-plug at scan completion)')
    t.is(await h.cat('$C/guest/g1/apcb'), apcb([5, 6, 7], [4, 0xab]))
    for (const d of [4, 0x47, 0xab, 0xff]) {
      t.is(await h.ok(`readlink "$S/bus/ap/devices/${qn(7, d)}/driver"`), '../../../../bus/ap/drivers/vfio_ap\n', `${qn(7, d)} on vfio_ap`)
    }
    t.is(await h.status(7, 4), 'in use\n')
    t.is(await h.status(7, 0x47), 'unassigned\n')
  })
})

test('vfio-ap #41 adapter 6 leaves the LPAR configuration under a running guest', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.start('g1', 'U1')
    const n = await h.updates()
    await h.ok('echo "remove-adapter 6" > "$C/lpar"')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_WITHOUT_6)
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX, 'matrix unchanged')
    t.false(await h.exists('$S/devices/ap/card06'), 'card06 gone')
    t.deepEqual((await h.ls('$S/bus/ap/devices')).filter(n => n.startsWith('06.') || n === 'card06'), [], '06.* gone from bus/ap/devices')
    t.deepEqual((await h.ls('$S/bus/ap/drivers/vfio_ap')).filter(n => /^..\.....$/.test(n)),
      ['05.0004', '05.0047', '05.00ab', '05.00ff'], 'vfio_ap keeps only adapter 5')
    t.is(await h.cat('$C/guest/g1/apcb'), apcb([5], [4, 0xab]))
    t.is(await h.updates(), n + 1, 'one consolidated guest update')
    for (const d of [4, 0xab]) t.is(await h.status(5, d), 'in use\n', qn(5, d))
  })
})

test('vfio-ap #42 unassigning adapter 6 under a running guest', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.start('g1', 'U1')
    const n = await h.updates()
    await h.ok('echo 6 > "$M/$U1/unassign_adapter"')
    t.is(await h.cat('$M/$U1/matrix'), U1_WITHOUT_6)
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_WITHOUT_6)
    t.is(await h.status(6, 4), 'unassigned\n')
    t.is(await h.status(6, 0xab), 'unassigned\n')
    t.is(await h.status(5, 4), 'in use\n')
    t.is(await h.cat('$C/guest/g1/apcb'), apcb([5], [4, 0xab]))
    t.is(await h.updates(), n + 1, 'one guest update')
  })
})

test('vfio-ap #45 remove blocks while the guest holds the mdev and completes when the guest stops', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.start('g1', 'U1')

    let settled: ShResult | undefined
    const remove = h.sh('echo 1 > "$M/$U1/remove"; echo "rc=$?"').then(r => { settled = r; return r })
    // Newest kernels strip the guest's AP resources as soon as the device request is issued:
    // that is how we know the write has reached the store.
    let stripped = false
    for (let i = 0; i < 50 && !stripped && settled === undefined; i++) {
      await sleep(100)
      stripped = (await h.sh('cat "$C/guest/g1/apcb"')).stdout === EMPTY_APCB
    }
    t.true(stripped, 'the guest\'s AP configuration is stripped while the remove waits')
    await sleep(500)
    t.is(settled, undefined, `remove must block while g1 holds the device, got ${settled === undefined ? '' : show('echo 1 > remove', settled)}`)
    // the daemon still answers everything else meanwhile
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX)
    t.is(await h.cat('$C/guests'), `g1 ${U1}\n`)
    t.true(await h.exists('$M/$U1'), 'the mdev exists while the remove waits')
    t.is(await h.cat('$T/available_instances'), '65535\n')
    t.is(settled, undefined, 'still blocked')

    await h.ok('echo "stop g1" > "$C/guests"')
    const r = await Promise.race([remove, sleep(10000).then(() => undefined)])
    if (r === undefined) {
      t.fail('remove did not complete within 10 s after the guest stopped')
      return
    }
    t.is(r.stdout, 'rc=0\n', `the remove succeeds\n${show('echo 1 > remove', r)}`)
    t.is(r.stderr, '')
    t.false(await h.exists('$M/$U1'), 'mdev directory gone')
    t.deepEqual(await h.ls('$T/devices'), [], 'type devices/ link gone')
    t.false(await h.exists('$S/bus/mdev/devices/$U1'), 'bus/mdev link gone')
    t.is(await h.cat('$T/available_instances'), '65536\n')
    t.is(await h.cat('$C/guests'), '')
    for (const [a, d] of [[5, 4], [6, 0xab]]) t.is(await h.status(a, d), 'unassigned\n', qn(a, d))
  })
})

// =======================================================================================
// The control plane's own refusals

test('guests: a second mdev for a running guest is refused (EPERM), last_error says why, nothing changes', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2')
    await h.configure('U1', 'U2')
    await h.start('g1', 'U1')
    const before = await h.snapshot()
    await h.fails('echo "start g1 $U2" > "$C/guests"', 'EPERM')
    const why = await h.cat('$C/last_error')
    t.regex(why, /^EPERM: /, 'last_error carries the errno')
    t.regex(why, /\bg1\b/, 'last_error names the guest')
    t.regex(why, new RegExp(`already|${U1}`), 'last_error says the guest already has an mdev')
    t.is(await h.snapshot(), before, 'nothing changed')
    t.is(await h.status(5, 0x47), 'assigned\n', 'U2\'s queues are not in use')
    t.is(await h.cat('$C/guest/g1/mdev'), `${U1}\n`)
  })
})

test('guests: stopping an unknown guest is refused, last_error says why, nothing changes', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.start('g1', 'U1')
    const before = await h.snapshot()
    await h.fails('echo "stop nosuch" > "$C/guests"')
    t.regex(await h.cat('$C/last_error'), /nosuch/, 'last_error names the unknown guest')
    t.is(await h.snapshot(), before, 'nothing changed')
    t.is(await h.status(5, 4), 'in use\n')
  })
})
