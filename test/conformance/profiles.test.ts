/**
 * Kernel profiles through the mount: for every switch of lib/profiles.ts, the same shell
 * commands under the two adjacent profiles where the switch flips (the older profile
 * without it, the next with it), both outcomes checked exactly — bytes, bash's error text,
 * ENOENT for attributes that do not exist yet. Expected values: /work/shared/spec/vfio-ap.md
 * §7 and §9.2 scenarios 45–49, /work/shared/spec/ap-bus.md §9. Scenario 48 (65,536 mdevs)
 * runs in-process in test/lib/profiles.test.ts.
 *
 * The profile pair of each test comes from the table (PROFILES), so a switch that moves to
 * another profile renames its test; the first test checks that every switch flips exactly
 * once and is covered.
 */
import { test, type ExecutionContext } from '../helpers/kernel.js'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { mountHost, requireFuse, type Mounted, type ShResult } from '../helpers/mount.js'
import { PROFILES, SWITCH_DOCS, type Switches } from '../../lib/profiles.js'
import type { Errno } from '../../lib/errors.js'
import { mountSlot, STRERROR } from '../helpers/shell.js'
import { TG_CONFIG, U1_MATRIX } from '../helpers/tg.js'

const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/${name}.yaml`, import.meta.url)), 'utf8')
/** /work/shared/spec/vfio-ap.md §9.1 (adapters 4, 5, 6 of type CEX5; domains 4, 0x47, 0xab, 0xff). */
const TG = fixture('tg')
/** /work/shared/spec/ap-bus.md §10 (three CEX8 adapters 3, 5, 6; domains 4, 11, 0x47). */
const F1 = fixture('f1')
/** F1 without adapter interrupts (poll_thread can be switched on) and with bind-state bits in adapter 3's facility word. */
const F1_POLL = F1.replace('interrupts: true', 'interrupts: false').replace('functions: 0x92800000', 'functions: 0x92800003')

// ---------------------------------------------------------------------------------------
// Vocabulary

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const U2 = '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b'
const U3 = '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b'
const U9 = 'e9f0a1b2-c3d4-4e5f-8a6b-7c8d9e0f1a2b'
const UUIDS = { U1, U2, U3, U9 }
type Name = keyof typeof UUIDS

/** Relative paths (the shell runs in the mountpoint), so error messages are exact. */
const PRELUDE = [
  'export LC_ALL=C',
  'M=devices/vfio_ap/matrix',
  'T=$M/mdev_supported_types/vfio_ap-passthrough',
  'C=kernel/debug/apsim',
  ...Object.entries(UUIDS).map(([k, v]) => `${k}=${v}`)
].join('; ') + '\n'
const M = 'devices/vfio_ap/matrix'

/** §9.1: the documentation example's guest configurations. */
const CONFIG: Partial<Record<Name, string[]>> = TG_CONFIG

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i)
const allBut = (...ids: number[]): number[] => range(0, 255).filter(i => !ids.includes(i))
/** A 256-bit mask as the kernel prints it (`0x` + 64 hex digits, id 0 leftmost), no newline. */
function mask (ids: Iterable<number>): string {
  const set = new Set(ids)
  let s = '0x'
  for (let k = 0; k < 64; k++) s += range(0, 3).reduce((v, b) => v | (set.has(4 * k + b) ? 8 >> b : 0), 0).toString(16)
  return s
}
const ALL = mask(range(0, 255))
/** Three masks, comma-separated, with a newline: `ap_config` and the guest's `apcb`. */
const masks3 = (apm: number[], aqm: number[], adm: number[] = []): string => `${mask(apm)},${mask(aqm)},${mask(adm)}\n`

/** bash's message for a failed write (`bash: line N: ` normalised to `bash: `). */
const writeError = (errno: Errno): string => `bash: echo: write error: ${STRERROR[errno]}\n`
/** `cat` of an attribute the kernel does not have. */
const enoent = (...paths: string[]): string => paths.map(p => `cat: ${p}: No such file or directory\n`).join('')
/** Redirecting into an attribute the kernel does not have: sysfs cannot create files. */
const noCreate = (p: string): string => `bash: ${p}: Permission denied\n`

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------
// Harness: each test mounts the older profile, then the newer one; two mounts at most


type Switch = keyof Switches
const SWITCHES = Object.keys(SWITCH_DOCS) as Switch[]

/** The indexes k where PROFILES[k - 1] and PROFILES[k] differ in `sw`. */
const flips = (sw: Switch): number[] => PROFILES.flatMap((p, k) => k > 0 && p[sw] !== PROFILES[k - 1][sw] ? [k] : [])

/** The adjacent profiles where `sw` flips (the first flip; the coverage test insists on one). */
function pairOf (sw: Switch): [older: string, newer: string] {
  const k = flips(sw)[0]
  return k === undefined ? ['(none)', '(none)'] : [PROFILES[k - 1].name, PROFILES[k].name]
}

interface Out { stdout: string, stderr: string }

class Sim {
  constructor (readonly t: ExecutionContext, readonly m: Mounted, readonly kernel: string, readonly newer: boolean) {}

  /** `older` under the older profile, `newer` under the newer one. */
  pick<V> (older: V, newer: V): V { return this.newer ? newer : older }

  async run (script: string): Promise<ShResult> {
    const r = await this.m.sh(PRELUDE + script)
    return { ...r, stderr: r.stderr.replace(/^bash: line \d+: /gm, 'bash: ') }
  }

  /** The script's stdout and stderr must be exactly these. */
  async expect (script: string, want: Out, what = script): Promise<void> {
    const r = await this.run(script)
    this.t.deepEqual({ stdout: r.stdout, stderr: r.stderr }, want, `${this.kernel}: ${what}`)
  }

  /** A script that must succeed silently; returns its stdout. */
  async ok (script: string): Promise<string> {
    const r = await this.run(script)
    this.t.true(r.code === 0 && r.stderr === '', `${this.kernel}: ${script.trim()}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`)
    return r.stdout
  }

  /** Fixture TG's own setup: adapters 5 and 6 to vfio_ap. */
  async tg (): Promise<void> { await this.ok('echo -5,-6 > bus/ap/apmask') }

  async create (...names: Name[]): Promise<void> {
    for (const n of names) await this.ok(`echo $${n} > $T/create`)
  }

  async configure (...names: Name[]): Promise<void> {
    for (const n of names) for (const c of CONFIG[n] ?? []) await this.ok(c.replace('> ', `> $M/$${n}/`))
  }

  async startGuest (g: string, n: Name): Promise<void> { await this.ok(`echo "start ${g} $${n}" > $C/guests`) }
  async stopGuest (g: string): Promise<void> { await this.ok(`echo "stop ${g}" > $C/guests`) }

  /** The kernel log, timestamps stripped. */
  async klog (): Promise<string[]> {
    return (await this.m.dmesg()).split('\n').filter(l => l !== '').map(l => l.replace(/^\[\s*\d+\.\d+\] /, ''))
  }

  async klogSince (before: string[]): Promise<string[]> { return (await this.klog()).slice(before.length) }

  /** The environments of the change uevents of /devices/ap (the AP bus device), oldest first. */
  async busChanges (): Promise<Array<Array<[string, string]>>> {
    const lines = (await this.ok('cat $C/uevents')).split('\n').filter(l => l !== '')
    return lines.map(l => JSON.parse(l) as { action: string, devpath: string, env: Array<[string, string]> })
      .filter(e => e.action === 'change' && e.devpath === '/devices/ap')
      .map(e => e.env)
  }
}

const covered = new Set<Switch>(['exhaustedEusers']) // test/lib/profiles.test.ts

/**
 * `sw: older → newer: what`, running `body` on a fresh mount of `topology` under the older
 * profile, then under the newer one (`pair` overrides the table's pair).
 */
function across (sw: Switch, what: string, topology: string, body: (s: Sim) => Promise<void>, pair = pairOf(sw)): void {
  covered.add(sw)
  const [older, newer] = pair
  test(`${sw}: ${older} → ${newer}: ${what}`, async t => {
    for (const [kernel, isNewer] of [[older, false], [newer, true]] as const) {
      await mountSlot(async () => {
        const m = await mountHost({ topologyYaml: `kernel: "${kernel}"\n${topology}` })
        try {
          await body(new Sim(t, m, kernel, isNewer))
          if (!t.passed) t.log(`${kernel}: daemon log (tail):\n${m.log().split('\n').slice(-30).join('\n')}`)
        } finally {
          await m.stop()
        }
      })
    }
  })
}

/** Starts `echo 1 > $M/$U1/remove` without waiting; `done()` says whether it returned yet. */
function removeInBackground (s: Sim): { result: Promise<ShResult>, done: () => boolean } {
  let settled = false
  const result = s.run('echo 1 > $M/$U1/remove').finally(() => { settled = true })
  return { result, done: () => settled }
}

/** How long a write that blocks is given to (wrongly) return. */
const BLOCK_MS = 400

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })

// ---------------------------------------------------------------------------------------
// AP bus (ap-bus.md §9)

across('scansAndBindings', 'bus/ap/scans and bindings, the INITSCAN and BINDINGS uevents', F1, async s => {
  await s.expect('cat bus/ap/scans bus/ap/bindings', s.pick(
    { stdout: '', stderr: enoent('bus/ap/scans', 'bus/ap/bindings') },
    { stdout: '1\n9/9 (complete)\n', stderr: '' }))
  await s.expect('echo 1 > bus/ap/scans; cat bus/ap/scans', s.pick(
    { stdout: '', stderr: noCreate('bus/ap/scans') + enoent('bus/ap/scans') },
    { stdout: '2\n', stderr: '' }))
  s.t.deepEqual(await s.busChanges(), s.pick([], [
    [['INITSCAN', 'done']],
    [['BINDINGS', 'complete'], ['COMPLETECOUNT', '1']]
  ]), `${s.kernel}: change uevents of /devices/ap`)
})

across('maskChangeUevents', 'apmask/aqmask changes send APMASK/AQMASK uevents, an unchanged mask none', F1, async s => {
  await s.ok('echo -5 > bus/ap/apmask; echo -5 > bus/ap/apmask; echo -0x47 > bus/ap/aqmask')
  const masks = (await s.busChanges()).filter(env => env.some(([k]) => k === 'APMASK' || k === 'AQMASK'))
  s.t.deepEqual(masks, s.pick([], [
    [['APMASK', `${mask(allBut(5))}\n`]],
    [['AQMASK', `${mask(allBut(0x47))}\n`]]
  ]), `${s.kernel}: mask uevents`)
  await s.expect('cat bus/ap/apmask bus/ap/aqmask', { stdout: `${mask(allBut(5))}\n${mask(allBut(0x47))}\n`, stderr: '' })
})

across('chkstopAndMaxMsgSize', 'card and queue chkstop, card max_msg_size', F1, async s => {
  const files = ['devices/ap/card03/chkstop', 'devices/ap/card03/max_msg_size', 'devices/ap/card03/03.0004/chkstop']
  await s.expect(`cat ${files.join(' ')}`, s.pick(
    { stdout: '', stderr: enoent(...files) },
    { stdout: '0\n12288\n0\n', stderr: '' }))
})

across('apFeatures64', 'bus/ap/features, queue ap_functions, filtered card ap_functions, kstrtobool/kstrtoull for poll_thread/poll_timeout', F1_POLL, async s => {
  await s.expect('cat bus/ap/features', s.pick(
    { stdout: '', stderr: enoent('bus/ap/features') },
    { stdout: 'APSC APXA QACT RC8A\n', stderr: '' }))
  // the card hides the low 16 bits (SE bind state) from 6.4; the queue shows the whole word
  await s.expect('cat devices/ap/card03/ap_functions devices/ap/card03/03.0004/ap_functions', s.pick(
    { stdout: '0x92800003\n', stderr: enoent('devices/ap/card03/03.0004/ap_functions') },
    { stdout: '0x92800000\n0x92800003\n', stderr: '' }))
  // poll_timeout: sscanf("%llu") and 0 refused before, kstrtoull (base 0, 0 accepted) after
  await s.expect('cat bus/ap/poll_timeout', { stdout: '250000\n', stderr: '' })
  await s.expect('echo 0 > bus/ap/poll_timeout; cat bus/ap/poll_timeout', s.pick(
    { stdout: '250000\n', stderr: writeError('EINVAL') },
    { stdout: '0\n', stderr: '' }))
  await s.expect('echo 0x3d090 > bus/ap/poll_timeout; cat bus/ap/poll_timeout', s.pick(
    { stdout: '250000\n', stderr: writeError('EINVAL') },
    { stdout: '250000\n', stderr: '' }))
  await s.expect('echo 1.5 > bus/ap/poll_timeout; cat bus/ap/poll_timeout', s.pick(
    { stdout: '1\n', stderr: '' },
    { stdout: '250000\n', stderr: writeError('EINVAL') }))
  // poll_thread: sscanf("%d") before (blanks skipped, words refused), kstrtobool after
  await s.expect('echo y > bus/ap/poll_thread; cat bus/ap/poll_thread', s.pick(
    { stdout: '0\n', stderr: writeError('EINVAL') },
    { stdout: '1\n', stderr: '' }))
  await s.expect('echo 0 > bus/ap/poll_thread; echo " 1" > bus/ap/poll_thread; cat bus/ap/poll_thread', s.pick(
    { stdout: '1\n', stderr: '' },
    { stdout: '0\n', stderr: writeError('EINVAL') }))
})

across('boolEnableDisable', 'poll_thread also takes e/E (enable) and d/D (disable)', F1_POLL, async s => {
  await s.expect('echo enable > bus/ap/poll_thread; cat bus/ap/poll_thread', s.pick(
    { stdout: '0\n', stderr: writeError('EINVAL') },
    { stdout: '1\n', stderr: '' }))
  await s.expect('echo 1 > bus/ap/poll_thread; echo D > bus/ap/poll_thread; cat bus/ap/poll_thread', s.pick(
    { stdout: '1\n', stderr: writeError('EINVAL') },
    { stdout: '0\n', stderr: '' }))
  // what both accept
  await s.expect('echo on > bus/ap/poll_thread; cat bus/ap/poll_thread', { stdout: '1\n', stderr: '' })
})

across('driverOverride', 'queue driver_override, bindings_complete_count, masks locked by an override, the in-use check against all 256 ids', TG, async s => {
  await s.expect('cat bus/ap/bindings_complete_count bus/ap/devices/04.0047/driver_override', s.pick(
    { stdout: '', stderr: enoent('bus/ap/bindings_complete_count', 'bus/ap/devices/04.0047/driver_override') },
    { stdout: '1\n\n', stderr: '' }))
  // an override locks apmask/aqmask (EINVAL) until it is cleared (ap-bus.md §10.35)
  await s.expect('echo cex4queue > bus/ap/devices/04.0047/driver_override; echo -4 > bus/ap/apmask; cat bus/ap/apmask', s.pick(
    { stdout: `${mask(allBut(4))}\n`, stderr: noCreate('bus/ap/devices/04.0047/driver_override') },
    { stdout: `${ALL}\n`, stderr: writeError('EINVAL') }))
  await s.expect('echo > bus/ap/devices/04.0047/driver_override; echo +4 > bus/ap/apmask; cat bus/ap/apmask', s.pick(
    { stdout: `${ALL}\n`, stderr: noCreate('bus/ap/devices/04.0047/driver_override') },
    { stdout: `${ALL}\n`, stderr: '' }))
  // vfio-ap.md errata 2: an mdev holds 05.0004 while aqmask bit 4 is clear; reserving adapter 5
  // for the host asked about the current aqmask before 6.19, about all 256 domains from 6.19
  await s.ok('echo -5 > bus/ap/apmask')
  await s.create('U1')
  await s.ok('echo 5 > $M/$U1/assign_adapter; echo 4 > $M/$U1/assign_domain; echo -4 > bus/ap/aqmask')
  await s.expect('echo +5 > bus/ap/apmask; cat bus/ap/apmask', s.pick(
    { stdout: `${ALL}\n`, stderr: '' },
    { stdout: `${mask(allBut(5))}\n`, stderr: writeError('EBUSY') }))
})

across('maxKnownType', 'a CEX8 adapter (raw type 14) is a CEX7 (13) to a kernel without CEX8 support', F1, async s => {
  const card = 'devices/ap/card03'
  await s.expect(`cat ${card}/hwtype ${card}/raw_hwtype ${card}/modalias ${card}/type ${card}/uevent`, s.pick(
    { stdout: '13\n14\nap:t0D\nCEX7C\nDEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000D\nMODALIAS=ap:t0D\nMODE=cca\n', stderr: '' },
    { stdout: '14\n14\nap:t0E\nCEX8C\nDEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000E\nMODALIAS=ap:t0E\nMODE=cca\n', stderr: '' }))
})

// ---------------------------------------------------------------------------------------
// vfio_ap (vfio-ap.md §7)

across('removeBlocks', '#45 remove with a guest attached: EBUSY, then blocks until the guest stops', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.startGuest('g1', 'U1')
  const remove = removeInBackground(s)
  await sleep(BLOCK_MS)
  s.t.is(remove.done(), s.pick(true, false), `${s.kernel}: echo 1 > remove returned before the guest stopped`)
  await s.expect('test -d $M/$U1 && cat $M/$U1/matrix $T/available_instances', { stdout: `${U1_MATRIX}65535\n`, stderr: '' }, 'the mdev while the guest holds it')
  await s.stopGuest('g1')
  const r = await remove.result
  s.t.deepEqual({ code: r.code, stderr: r.stderr }, s.pick({ code: 1, stderr: writeError('EBUSY') }, { code: 0, stderr: '' }), `${s.kernel}: echo 1 > remove`)
  await s.expect('test -e $M/$U1; echo $?; cat $T/available_instances', s.pick(
    { stdout: '0\n65535\n', stderr: '' },
    { stdout: '1\n65536\n', stderr: '' }), 'the mdev after the guest stopped')
})

across('queueStatus', 'queue status: unassigned, assigned, in use', TG, async s => {
  await s.tg()
  const status = async (want: string): Promise<void> => {
    await s.expect('cat bus/ap/devices/05.0004/status', s.pick(
      { stdout: '', stderr: enoent('bus/ap/devices/05.0004/status') },
      { stdout: want, stderr: '' }))
  }
  await status('unassigned\n')
  await s.create('U1')
  await s.configure('U1')
  await status('assigned\n')
  await s.startGuest('g1', 'U1')
  await status('in use\n')
})

across('dynamicConfig', '#46 with a guest attached every assignment store is EBUSY, checked before parsing', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.startGuest('g1', 'U1')
  await s.expect('echo garbage > $M/$U1/assign_adapter', { stdout: '', stderr: writeError(s.pick('EBUSY', 'EINVAL')) })
  await s.expect('echo 7 > $M/$U1/unassign_domain', { stdout: '', stderr: s.pick(writeError('EBUSY'), '') })
  await s.expect('echo 0xab > $M/$U1/assign_control_domain; cat $M/$U1/control_domains', s.pick(
    { stdout: '', stderr: writeError('EBUSY') },
    { stdout: '00ab\n', stderr: '' }))
  await s.expect('cat $M/$U1/matrix', { stdout: U1_MATRIX, stderr: '' })
})

across('dynamicConfig', '#47 over-provisioning: an adapter with no queue bound to vfio_ap', TG, async s => {
  await s.tg()
  await s.create('U9')
  // adapter 4's queues are all on cex4queue: 5.10 wants a bound queue, 6.0 only refuses host-owned APQNs
  await s.expect('echo 4 > $M/$U9/assign_adapter; cat $M/$U9/matrix', s.pick(
    { stdout: '', stderr: writeError('EADDRNOTAVAIL') },
    { stdout: '04.\n', stderr: '' }))
  // ... which adapter 4 × domain 4 is, so the domain is refused by 6.0 too
  await s.expect('echo 4 > $M/$U9/assign_domain; cat $M/$U9/matrix', s.pick(
    { stdout: '.0004\n', stderr: '' },
    { stdout: '04.\n', stderr: writeError('EADDRNOTAVAIL') }))
})

across('dynamicConfig', 'guest_matrix: the assigned matrix filtered by binding', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.ok('echo 06.00ab > bus/ap/drivers/vfio_ap/unbind')
  await s.expect('cat $M/$U1/guest_matrix', s.pick(
    { stdout: '', stderr: enoent(`${M}/${U1}/guest_matrix`) },
    { stdout: '05.0004\n05.00ab\n', stderr: '' }))
  await s.expect('cat $M/$U1/matrix', { stdout: U1_MATRIX, stderr: '' })
})

across('dynamicConfig', 'vfio-ap.rst example: assigning adapter 6 to the mdev of a running guest is EBUSY, then a hot plug', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.ok('echo 5 > $M/$U1/assign_adapter; echo 4 > $M/$U1/assign_domain; echo 0xab > $M/$U1/assign_domain')
  await s.startGuest('g1', 'U1')
  await s.expect('cat $C/guest/g1/apcb $C/guest/g1/updates', { stdout: `${masks3([5], [4, 0xab])}1\n`, stderr: '' }, 'the guest at start')
  await s.expect('echo 6 > $M/$U1/assign_adapter; cat $M/$U1/matrix', s.pick(
    { stdout: '05.0004\n05.00ab\n', stderr: writeError('EBUSY') },
    { stdout: U1_MATRIX, stderr: '' }))
  await s.expect('cat $C/guest/g1/apcb $C/guest/g1/updates', s.pick(
    { stdout: `${masks3([5], [4, 0xab])}1\n`, stderr: '' },
    { stdout: `${masks3([5, 6], [4, 0xab])}2\n`, stderr: '' }), 'the guest after the assignment')
}, ['5.10', 'newest'])

across('dynamicConfig', 'mask writes are checked against mdev assignments (EBUSY, logged)', TG, async s => {
  await s.tg()
  await s.create('U1', 'U2')
  await s.configure('U1', 'U2')
  const before = await s.klog()
  await s.expect('echo +5 > bus/ap/apmask; cat bus/ap/apmask', s.pick(
    { stdout: `${mask(allBut(6))}\n`, stderr: '' },
    { stdout: `${mask(allBut(5, 6))}\n`, stderr: writeError('EBUSY') }))
  s.t.deepEqual(await s.klogSince(before), s.pick([], [
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.0047 already assigned to ${U2}`,
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.00ff already assigned to ${U2}`
  ]), `${s.kernel}: kernel log`)
})

across('dynamicConfig', 'a refused sharing assignment is logged', TG, async s => {
  await s.tg()
  await s.create('U1', 'U2', 'U3')
  await s.configure('U1', 'U2', 'U3')
  const before = await s.klog()
  await s.expect('echo 5 > $M/$U3/assign_adapter; cat $M/$U3/matrix', { stdout: '06.0047\n06.00ff\n', stderr: writeError('EADDRINUSE') })
  s.t.deepEqual(await s.klogSince(before), s.pick([], [
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.0047 already assigned to ${U2}`,
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.00ff already assigned to ${U2}`
  ]), `${s.kernel}: kernel log`)
})

across('dynamicConfig', 're-assigning an assigned adapter: re-validated (EADDRNOTAVAIL), then a no-op', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.ok('echo 05.0004 > bus/ap/drivers/vfio_ap/unbind')
  await s.expect('echo 5 > $M/$U1/assign_adapter; cat $M/$U1/matrix', { stdout: U1_MATRIX, stderr: s.pick(writeError('EADDRNOTAVAIL'), '') })
})

across('removeRequestLog', 'a blocked remove logs the device request', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.startGuest('g1', 'U1')
  const before = await s.klog()
  const remove = removeInBackground(s)
  await sleep(BLOCK_MS)
  s.t.false(remove.done(), `${s.kernel}: remove must block while the guest holds the mdev`)
  const request = s.pick([], [`vfio_ap_mdev ${U1}: Relaying device request to user (#0)`])
  s.t.deepEqual(await s.klogSince(before), request, `${s.kernel}: kernel log while remove waits`)
  await s.stopGuest('g1')
  const r = await remove.result
  s.t.deepEqual({ code: r.code, stderr: r.stderr }, { code: 0, stderr: '' }, `${s.kernel}: echo 1 > remove`)
  s.t.deepEqual(await s.klogSince(before), [...request, `vfio_ap_mdev ${U1}: Removing from iommu group 0`], `${s.kernel}: kernel log after the guest stopped`)
})

across('filterWholeMatrix', 'status "in use" only in the guest view; the filter covers the whole matrix', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.startGuest('g1', 'U1')
  await s.ok('echo 05.0004 > bus/ap/drivers/vfio_ap/unbind')
  await s.expect('cat $M/$U1/guest_matrix', { stdout: '06.0004\n06.00ab\n', stderr: '' })
  await s.expect('cat bus/ap/devices/05.00ab/status bus/ap/devices/06.00ab/status', s.pick(
    { stdout: 'in use\nin use\n', stderr: '' },
    { stdout: 'assigned\nin use\n', stderr: '' }))
  // before 6.8 only the new APQNs (5,0x47), (6,0x47) were examined: adapter 5 came back
  // although 05.0004 is still not bound to vfio_ap
  await s.ok('echo 0x47 > $M/$U1/assign_domain')
  await s.expect('cat $M/$U1/guest_matrix $C/guest/g1/apcb', s.pick(
    { stdout: `05.0004\n05.0047\n05.00ab\n06.0004\n06.0047\n06.00ab\n${masks3([5, 6], [4, 0x47, 0xab])}`, stderr: '' },
    { stdout: `06.0004\n06.0047\n06.00ab\n${masks3([6], [4, 0x47, 0xab])}`, stderr: '' }))
})

across('passableDeconfigured', 'a checkstopped reset result keeps the adapter in the guest view', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.startGuest('g1', 'U1')
  await s.ok('echo "checkstop 6 on" > $C/lpar')
  await s.expect('cat devices/ap/card06/chkstop $M/$U1/guest_matrix', { stdout: `1\n${U1_MATRIX}`, stderr: '' })
  // the guest stops: vfio_ap resets the mdev's queues; those of adapter 6 report the checkstop
  await s.stopGuest('g1')
  await s.ok('echo 0x47 > $M/$U1/assign_domain')
  await s.expect('cat $M/$U1/guest_matrix', s.pick(
    { stdout: '05.0004\n05.0047\n05.00ab\n', stderr: '' },
    { stdout: '05.0004\n05.0047\n05.00ab\n06.0004\n06.0047\n06.00ab\n', stderr: '' }))
})

across('apConfig', '#49 mdev ap_config', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.expect('cat $M/$U1/ap_config', s.pick(
    { stdout: '', stderr: enoent(`${M}/${U1}/ap_config`) },
    { stdout: masks3([5, 6], [4, 0xab]), stderr: '' }))
  await s.expect(`echo ${masks3([5], [4]).trimEnd()} > $M/$U1/ap_config; cat $M/$U1/matrix`, s.pick(
    { stdout: U1_MATRIX, stderr: noCreate(`${M}/${U1}/ap_config`) },
    { stdout: '05.0004\n', stderr: '' }))
})

across('matrixFeatures', '#2 the matrix device features file', TG, async s => {
  await s.expect('cat $M/features', s.pick(
    { stdout: '', stderr: enoent(`${M}/features`) },
    { stdout: 'guest_matrix hotplug ap_config\n', stderr: '' }))
})

across('newLogWording', 'the reworded sharing and in-use log lines', TG, async s => {
  await s.tg()
  await s.create('U1', 'U2', 'U3')
  await s.configure('U1', 'U2', 'U3')
  let before = await s.klog()
  await s.expect('echo 5 > $M/$U3/assign_adapter', { stdout: '', stderr: writeError('EADDRINUSE') })
  s.t.deepEqual(await s.klogSince(before), s.pick([
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.0047 already assigned to ${U2}`,
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.00ff already assigned to ${U2}`
  ], [
    `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`,
    `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.00ff to mdev: already assigned to ${U2}`
  ]), `${s.kernel}: sharing refused`)
  before = await s.klog()
  await s.expect('echo +5 > bus/ap/apmask', { stdout: '', stderr: writeError('EBUSY') })
  s.t.deepEqual(await s.klogSince(before), s.pick([
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.0047 already assigned to ${U2}`,
    `vfio_ap_mdev ${U2}: Userspace may not re-assign queue 05.00ff already assigned to ${U2}`
  ], [
    `vfio_ap_mdev ${U2}: Can not reserve queue 05.0047 for host driver: in use by mdev`,
    `vfio_ap_mdev ${U2}: Can not reserve queue 05.00ff for host driver: in use by mdev`
  ]), `${s.kernel}: mask change refused`)
})

across('newLogWording', 'a blocked remove takes the AP resources from the guest at once', TG, async s => {
  await s.tg()
  await s.create('U1')
  await s.configure('U1')
  await s.startGuest('g1', 'U1')
  const remove = removeInBackground(s)
  await sleep(BLOCK_MS)
  s.t.false(remove.done(), `${s.kernel}: remove must block while the guest holds the mdev`)
  await s.expect('cat $C/guest/g1/apcb $C/guest/g1/updates', s.pick(
    { stdout: `${masks3([5, 6], [4, 0xab])}1\n`, stderr: '' },
    { stdout: `${masks3([], [])}2\n`, stderr: '' }), 'the guest while remove waits')
  await s.stopGuest('g1')
  const r = await remove.result
  s.t.deepEqual({ code: r.code, stderr: r.stderr }, { code: 0, stderr: '' }, `${s.kernel}: echo 1 > remove`)
})

// ---------------------------------------------------------------------------------------
// uevent files and zcrypt device nodes

across('ueventStoreRc', 'a refused device uevent write logs uevent_store\'s line, with the error code from 6.1', F1, async s => {
  const before = await s.klog()
  await s.expect('echo bogus > devices/ap/card03/uevent', { stdout: '', stderr: writeError('EINVAL') })
  s.t.deepEqual(await s.klogSince(before), [
    'synth uevent: /devices/ap/card03: unknown uevent action string',
    `cex4card card03: uevent: failed to send synthetic uevent${s.pick('', ': -22')}`
  ], `${s.kernel}: kernel log`)
})

across('zcdnAdmask', 'zcrypt device nodes have admask', F1, async s => {
  await s.ok('echo n1 > class/zcrypt/create')
  await s.expect('ls devices/virtual/zcrypt/n1 | grep mask', { stdout: s.pick('', 'admask\n') + 'apmask\naqmask\nioctlmask\n', stderr: '' })
})

// ---------------------------------------------------------------------------------------

test('every switch of lib/profiles.ts flips once, between adjacent profiles, and is tested', t => {
  for (const sw of SWITCHES) {
    t.is(flips(sw).length, 1, `${sw} flips exactly once along ${PROFILES.map(p => p.name).join(', ')}`)
    t.true(covered.has(sw), `${sw} has a test`)
  }
})
