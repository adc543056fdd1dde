/**
 * vfio_ap conformance through the mount: the scenarios of /work/shared/spec/vfio-ap.md §9.2
 * (fixture TG, newest profile) that need neither an attached guest nor a host configuration
 * change, run with real shell commands against a fresh mount each. Scenarios 35–42 and 45
 * (guest / host config) live in test/lib/vfio-guest.test.ts, 46–49 (old profiles) elsewhere.
 *
 * Every refused write is checked three ways: the exit code, bash's exact error text, and an
 * unchanged snapshot of the vfio_ap state (masks, mdevs, their four readable attributes,
 * the queues bound to vfio_ap).
 */
import { test, type ExecutionContext } from '../helpers/kernel.js'
import { fileURLToPath } from 'node:url'
import { mountHost, requireFuse, type Mounted, type ShResult } from '../helpers/mount.js'
import type { Errno } from '../../lib/errors.js'
import { mountSlot, STRERROR } from '../helpers/shell.js'
import { TG_CONFIG, U1_MATRIX } from '../helpers/tg.js'

const TG = fileURLToPath(new URL('../../../test/fixtures/tg.yaml', import.meta.url))

// ---------------------------------------------------------------------------------------
// Vocabulary of the spec (§9.1)

/** U1..U8, created in this order; lowercase; alphabetical order = creation order, so a
 * model walking its mdev list oldest-first or by name picks the wrong mdev in #25. */
const U = {
  U1: '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f',
  U2: '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b',
  U3: '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b',
  U4: '9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
  U5: 'a0b1c2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d',
  U6: 'b3c4d5e6-f7a8-4b9c-8d0e-1f2a3b4c5d6e',
  U7: 'c5d6e7f8-a9b0-4c1d-9e2f-3a4b5c6d7e8f',
  U8: 'd7e8f9a0-b1c2-4d3e-8f4a-5b6c7d8e9f0a'
} as const
type Name = keyof typeof U
const { U1, U2, U3, U6 } = U

/** Shell variables every script sees: M, T and U1..U8 (S is set by the harness). */
const PRELUDE = [
  'export LC_ALL=C',
  'M="$S/devices/vfio_ap/matrix"',
  'T="$M/mdev_supported_types/vfio_ap-passthrough"',
  ...Object.entries(U).map(([k, v]) => `${k}=${v}`)
].join('; ') + '\n'

/** §9.1: the documentation example's guest configurations. */
const CONFIG: Partial<Record<Name, string[]>> = TG_CONFIG
const U2_MATRIX = '05.0047\n05.00ff\n'
const U3_MATRIX = '06.0047\n06.00ff\n'

/** Left-to-right 256-bit mask as the kernel prints it: `0x` + 64 lowercase hex digits. */
function mask (ids: Iterable<number>): string {
  const bits = new Array<number>(256).fill(0)
  for (const id of ids) bits[id] = 1
  let s = '0x'
  for (let k = 0; k < 64; k++) s += (bits[4 * k] * 8 + bits[4 * k + 1] * 4 + bits[4 * k + 2] * 2 + bits[4 * k + 3]).toString(16)
  return s
}
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i)
const allBut = (...ids: number[]): number[] => range(0, 255).filter(i => !ids.includes(i))
const apConfig = (apm: number[], aqm: number[], adm: number[]): string => `${mask(apm)},${mask(aqm)},${mask(adm)}\n`

const APMASK_TG = '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n'

/** bash's message for a failed builtin write, fuse.md §3.3. */
const writeError = (errno: Errno, cmd: 'echo' | 'printf' = 'echo'): RegExp =>
  new RegExp(`${cmd}: write error: ${STRERROR[errno]}\\n?$`)

// ---------------------------------------------------------------------------------------
// Harness: one fresh mount of fixture TG per scenario, at most two at a time (2 CPUs)


const stripStamp = (line: string): string => line.replace(/^\[\s*\d+\.\d+\] /, '')
const klogLines = (text: string): string[] => text.split('\n').filter(l => l !== '').map(stripStamp)

class Tg {
  constructor (readonly t: ExecutionContext, readonly m: Mounted) {}

  async sh (script: string): Promise<ShResult> { return await this.m.sh(PRELUDE + script) }

  /** Runs a script that must succeed silently; returns its stdout. */
  async ok (script: string, what = script): Promise<string> {
    const r = await this.sh(script)
    this.t.is(r.code, 0, `${what}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`)
    this.t.is(r.stderr, '', `${what}: stderr`)
    return r.stdout
  }

  async cat (path: string): Promise<string> { return await this.ok(`cat "${path}"`) }

  /** Asserts that `link` (a shell path) resolves to `rel` below the mountpoint. */
  async resolves (link: string, rel: string): Promise<void> {
    const [got, root] = (await this.ok(`readlink -f "${link}"; readlink -f "$S"`)).split('\n')
    this.t.is(got, `${root}/${rel}`, `${link} must resolve to ${rel}`)
  }

  /** A write that must fail with `errno` and leave every piece of vfio_ap state unchanged. */
  async refused (script: string, errno: Errno, cmd: 'echo' | 'printf' = 'echo'): Promise<void> {
    const before = await this.state()
    const r = await this.sh(script)
    this.t.not(r.code, 0, `${script}: must fail with ${errno}`)
    this.t.regex(r.stderr, writeError(errno, cmd), `${script}: expected ${errno}`)
    this.t.is(await this.state(), before, `${script}: refused with ${errno} but state changed`)
  }

  async create (...names: Name[]): Promise<void> {
    for (const n of names) await this.ok(`echo $${n} > "$T/create"`)
  }

  async configure (...names: Name[]): Promise<void> {
    for (const n of names) {
      for (const c of CONFIG[n] ?? []) await this.ok(`cd "$M/$${n}" && ${c}`, `${n}: ${c}`)
    }
  }

  /** Everything a refused write must not touch. */
  async state (): Promise<string> {
    const r = await this.sh(String.raw`
      shopt -s nullglob
      echo "apmask $(cat "$S/bus/ap/apmask")"
      echo "aqmask $(cat "$S/bus/ap/aqmask")"
      echo "instances $(cat "$T/available_instances")"
      echo "dir:" $(ls "$M")
      echo "type devices:" $(ls "$T/devices")
      echo "bus devices:" $(ls "$S/bus/mdev/devices")
      for d in "$M"/????????-????-????-????-????????????; do
        for f in matrix guest_matrix control_domains ap_config; do echo "$(basename "$d")/$f:"; cat "$d/$f"; done
      done
      echo "vfio_ap:" $(ls "$S/bus/ap/drivers/vfio_ap")`)
    return r.stdout + r.stderr
  }

  async dmesg (): Promise<string[]> { return klogLines(await this.m.dmesg()) }

  /** Kernel log lines added since `before` (a previous `dmesg()`), timestamps stripped. */
  async dmesgSince (before: string[]): Promise<string[]> { return (await this.dmesg()).slice(before.length) }
}

async function tg (t: ExecutionContext, body: (h: Tg) => Promise<void>): Promise<void> {
  await mountSlot(async () => {
    const m = await mountHost({ topology: TG })
    try {
      const h = new Tg(t, m)
      await h.ok('echo -5,-6 > "$S/bus/ap/apmask"', 'fixture TG setup: echo -5,-6 > bus/ap/apmask')
      t.is(await h.cat('$S/bus/ap/apmask'), APMASK_TG, 'fixture TG: apmask after -5,-6')
      await body(h)
      if (!t.passed) t.log(`daemon log (tail):\n${m.log().split('\n').slice(-40).join('\n')}`)
    } finally {
      await m.stop()
    }
  })
}

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })

interface RefusedCase {
  setup?: (h: Tg) => Promise<void>
  /** The one write, as typed in the shell. */
  cmd: string
  errno: Errno
  via?: 'echo' | 'printf'
  /** Checks after the refusal (the unchanged-state check is always made). */
  check?: (h: Tg) => Promise<void>
}

interface SequenceCase {
  setup?: (h: Tg) => Promise<void>
  steps: Array<[cmd: string, expect: 'ok' | Errno]>
  check?: (h: Tg) => Promise<void>
}

/** A scenario given as a setup and one refused write. */
const refusedWrite = test.macro<[RefusedCase]>({
  async exec (t, c) {
    await tg(t, async h => {
      if (c.setup !== undefined) await c.setup(h)
      await h.refused(c.cmd, c.errno, c.via)
      if (c.check !== undefined) await c.check(h)
    })
  },
  title: (provided = '', c) => `${provided}: ${c.cmd} → ${c.errno}`
})

/** A scenario given as a sequence of writes, each expected to succeed or fail with an errno. */
const writeSequence = test.macro<[SequenceCase]>(async (t, c) => {
  await tg(t, async h => {
    if (c.setup !== undefined) await c.setup(h)
    for (const [cmd, expect] of c.steps) {
      if (expect === 'ok') await h.ok(cmd)
      else await h.refused(cmd, expect)
    }
    if (c.check !== undefined) await c.check(h)
  })
})

// ---------------------------------------------------------------------------------------
// §1.3 the type directory and create

test('#1 vfio_ap-passthrough type: name, device_api, available_instances', async t => {
  await tg(t, async h => {
    t.is(await h.ok('cat "$T/name" "$T/device_api" "$T/available_instances"'),
      'VFIO AP Passthrough Device\nvfio-ap\n65536\n')
    // §1.3: no description attribute at all
    t.is((await h.sh('test -e "$T/description"')).code, 1, 'description must be absent')
  })
})

test('#2 matrix features', async t => {
  await tg(t, async h => {
    t.is(await h.cat('$M/features'), 'guest_matrix hotplug ap_config\n')
  })
})

test('#3 create an mdev: directory, links, available_instances', async t => {
  await tg(t, async h => {
    await h.ok('echo $U1 > "$T/create"')
    await h.ok('test -d "$M/$U1"', 'mdev directory exists')
    t.is(await h.ok('readlink "$T/devices/$U1"'), `../../../${U1}\n`)
    t.is(await h.ok('readlink "$S/bus/mdev/devices/$U1"'), `../../../devices/vfio_ap/matrix/${U1}\n`)
    await h.resolves('$S/bus/mdev/devices/$U1', `devices/vfio_ap/matrix/${U1}`)
    t.is(await h.ok('readlink "$M/$U1/mdev_type"'), '../mdev_supported_types/vfio_ap-passthrough\n')
    await h.resolves('$M/$U1/driver', 'bus/mdev/drivers/vfio_ap_mdev')
    await h.resolves('$M/$U1/subsystem', 'bus/mdev')
    t.is(await h.cat('$T/available_instances'), '65535\n')
    t.is(await h.ok('ls "$T/devices"'), `${U1}\n`)
  })
})

test('#4 creating the same UUID twice', refusedWrite, {
  setup: async h => { await h.create('U1') },
  cmd: 'echo $U1 > "$T/create"',
  errno: 'EEXIST',
  check: async h => { h.t.is(await h.cat('$T/available_instances'), '65535\n') }
})

for (const [cmd, via] of [
  ['echo 1234 > "$T/create"', 'echo'],
  ['echo "{$U1}" > "$T/create"', 'echo'],
  [String.raw`printf '%s\r\n' $U1 > "$T/create"`, 'printf']
] as const) {
  test('#5 create rejects malformed input', refusedWrite, {
    cmd,
    via,
    errno: 'EINVAL',
    check: async h => {
      h.t.is(await h.ok('ls "$T/devices"'), '')
      h.t.is(await h.cat('$T/available_instances'), '65536\n')
    }
  })
}

test('#6 an uppercase UUID is created lowercase; the lowercase form then exists', async t => {
  await tg(t, async h => {
    await h.ok('echo 8A9B5D1E-0000-4000-8000-00000000ABCD > "$T/create"')
    t.is(await h.ok('ls "$M" | grep -i 8a9b5d1e'), '8a9b5d1e-0000-4000-8000-00000000abcd\n')
    t.is(await h.ok('ls "$T/devices"'), '8a9b5d1e-0000-4000-8000-00000000abcd\n')
    await h.refused('echo 8a9b5d1e-0000-4000-8000-00000000abcd > "$T/create"', 'EEXIST')
  })
})

test('#7 create with 37 bytes whose last byte is not a newline', async t => {
  await tg(t, async h => {
    await h.ok('printf \'%sX\' $U2 > "$T/create"')
    await h.ok('test -d "$M/$U2"', 'mdev U2 exists')
    t.is(await h.ok('ls "$T/devices"'), `${U2}\n`)
  })
})

// ---------------------------------------------------------------------------------------
// §2 attributes of a fresh / configured mdev

test('#8 a fresh mdev has empty matrix, guest_matrix, control_domains and zero ap_config', async t => {
  await tg(t, async h => {
    await h.create('U1')
    t.is(await h.ok('cd "$M/$U1" && cat matrix guest_matrix control_domains | wc -c'), '0\n')
    const zero = apConfig([], [], [])
    t.is(zero.length, 201)
    t.is(await h.cat('$M/$U1/ap_config'), zero)
  })
})

test('#9 write-only and read-only attributes refuse the other direction with EACCES, even for root', async t => {
  await tg(t, async h => {
    await h.create('U1')
    t.is(process.getuid?.(), 0, 'runs as root')
    const r1 = await h.sh('cat "$M/$U1/assign_adapter"')
    t.not(r1.code, 0)
    t.regex(r1.stderr, /^cat: .*\/assign_adapter: Permission denied$/m)
    t.is(r1.stdout, '')
    const before = await h.state()
    const r2 = await h.sh('echo 1 > "$M/$U1/matrix"')
    t.not(r2.code, 0)
    t.regex(r2.stderr, /\/matrix: Permission denied$/m)
    t.is(await h.state(), before)
  })
})

test('#10 matrix of U1', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX)
  })
})

test('#11 guest_matrix of U1 without a guest equals its matrix', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_MATRIX)
  })
})

test('#12 matrix of U1, U2 and U3', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2', 'U3')
    await h.configure('U1', 'U2', 'U3')
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX)
    t.is(await h.cat('$M/$U2/matrix'), U2_MATRIX)
    t.is(await h.cat('$M/$U3/matrix'), U3_MATRIX)
  })
})

test('#13 adapters only: AA. lines', async t => {
  await tg(t, async h => {
    await h.create('U4')
    t.is(await h.ok('cd "$M/$U4" && echo 5 > assign_adapter && echo 6 > assign_adapter && cat matrix'), '05.\n06.\n')
  })
})

test('#14 domains only: .DDDD lines', async t => {
  await tg(t, async h => {
    await h.create('U4')
    t.is(await h.ok('cd "$M/$U4" && echo 4 > assign_domain && echo 0x47 > assign_domain && cat matrix'), '.0004\n.0047\n')
  })
})

// ---------------------------------------------------------------------------------------
// §2.4/§2.5 validation of assignments

test('#15 assigning an adapter that would share APQNs with U2: EADDRINUSE, logged on the assignee', async t => {
  await tg(t, async h => {
    await h.create('U2', 'U3')
    await h.configure('U2')
    await h.ok('echo 0x47 > "$M/$U3/assign_domain"; echo 0xff > "$M/$U3/assign_domain"')
    const log = await h.dmesg()
    await h.refused('echo 5 > "$M/$U3/assign_adapter"', 'EADDRINUSE')
    t.is(await h.cat('$M/$U3/matrix'), '.0047\n.00ff\n')
    t.is(await h.cat('$M/$U2/matrix'), U2_MATRIX)
    t.deepEqual(await h.dmesgSince(log), [
      `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`,
      `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.00ff to mdev: already assigned to ${U2}`
    ])
    t.regex(await h.m.dmesg(), /^\[\s*\d+\.\d{6}\] vfio_ap_mdev \S+: Userspace may not assign queue 05\.0047 /m, 'dmesg line format')
  })
})

test('#16 assigning an adapter whose APQNs are host-owned: EADDRNOTAVAIL, no log', async t => {
  await tg(t, async h => {
    await h.create('U5')
    await h.ok('echo 4 > "$M/$U5/assign_domain"')
    const log = await h.dmesg()
    await h.refused('echo 4 > "$M/$U5/assign_adapter"', 'EADDRNOTAVAIL')
    t.is(await h.cat('$M/$U5/matrix'), '.0004\n')
    t.deepEqual(await h.dmesgSince(log), [])
  })
})

test('#17 a host-owned adapter is accepted while no domain is assigned; the domain is then refused', async t => {
  await tg(t, async h => {
    await h.create('U5')
    await h.ok('echo 4 > "$M/$U5/assign_adapter"')
    t.is(await h.cat('$M/$U5/matrix'), '04.\n')
    await h.refused('echo 4 > "$M/$U5/assign_domain"', 'EADDRNOTAVAIL')
    t.is(await h.cat('$M/$U5/matrix'), '04.\n')
  })
})

test('#18 id limits: apm_max 63, aqm_max = adm_max 255', writeSequence, {
  setup: async h => { await h.create('U5') },
  steps: [
    ['echo 63 > "$M/$U5/assign_adapter"', 'ok'],
    ['echo 64 > "$M/$U5/assign_adapter"', 'ENODEV'],
    ['echo 63 > "$M/$U5/unassign_adapter"', 'ok'],
    ['echo 0xff > "$M/$U5/assign_domain"', 'ok'],
    ['echo 0x100 > "$M/$U5/assign_domain"', 'ENODEV'],
    ['echo 256 > "$M/$U5/assign_control_domain"', 'ENODEV'],
    ['echo 255 > "$M/$U5/assign_control_domain"', 'ok']
  ],
  check: async h => {
    h.t.is(await h.cat('$M/$U5/matrix'), '.00ff\n')
    h.t.is(await h.cat('$M/$U5/control_domains'), '00ff\n')
    h.t.is(await h.ok('cat "$S/bus/ap/ap_max_adapter_id" "$S/bus/ap/ap_max_domain_id"'), '63\n255\n')
  }
})

test('#19 unassign: out of range is ENODEV, not assigned is a no-op', writeSequence, {
  setup: async h => { await h.create('U5') },
  steps: [
    ['echo 64 > "$M/$U5/unassign_adapter"', 'ENODEV'],
    ['echo 7 > "$M/$U5/unassign_adapter"', 'ok']
  ],
  check: async h => { h.t.is(await h.cat('$M/$U5/matrix'), '') }
})

for (const cmd of [
  'echo 08 > "$M/$U5/assign_domain"',
  'echo \' 5\' > "$M/$U5/assign_domain"',
  'echo -1 > "$M/$U5/assign_domain"',
  'echo > "$M/$U5/assign_domain"',
  // one write(2) of "5\n\n": bash's printf builtin would issue "5\n" and "\n" as two writes
  String.raw`/usr/bin/printf '5\n\n' > "$M/$U5/assign_domain"`,
  'echo 5,6 > "$M/$U5/assign_domain"',
  'echo 0x > "$M/$U5/assign_domain"'
]) {
  test('#20 assign_domain number syntax', refusedWrite, {
    setup: async h => { await h.create('U5') },
    cmd,
    via: cmd.includes('printf') ? 'printf' : 'echo',
    errno: 'EINVAL',
    check: async h => { h.t.is(await h.cat('$M/$U5/matrix'), '') }
  })
}

test('#21 assign_domain overflow', refusedWrite, {
  setup: async h => { await h.create('U5') },
  cmd: 'echo 99999999999999999999 > "$M/$U5/assign_domain"',
  errno: 'ERANGE'
})

test('#21 assign_domain overflow before trailing garbage (errata 4)', refusedWrite, {
  setup: async h => { await h.create('U5') },
  cmd: 'echo \'99999999999999999999 \' > "$M/$U5/assign_domain"',
  errno: 'ERANGE'
})

test('#22 base-0 parsing: octal 010 and +0X1f', async t => {
  await tg(t, async h => {
    await h.create('U5')
    t.is(await h.ok('cd "$M/$U5" && echo 010 > assign_domain && echo +0X1f > assign_domain && cat matrix'), '.0008\n.001f\n')
  })
})

test('#23 re-assigning an assigned adapter is a silent no-op', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    const before = await h.state()
    const log = await h.dmesg()
    await h.ok('echo 5 > "$M/$U1/assign_adapter"')
    t.is(await h.state(), before)
    t.deepEqual(await h.dmesgSince(log), [])
  })
})

test('#24 control domains may be shared and over-provisioned', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2')
    await h.configure('U1', 'U2')
    await h.ok('echo 0x47 > "$M/$U1/assign_control_domain"; echo 0x47 > "$M/$U2/assign_control_domain" && echo 0x10 > "$M/$U1/assign_control_domain"')
    t.is(await h.cat('$M/$U1/control_domains'), '0010\n0047\n')
    t.is(await h.cat('$M/$U2/control_domains'), '0047\n')
    // control domains are not part of matrix
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX)
  })
})

// ---------------------------------------------------------------------------------------
// §4 the AP bus masks and the in-use check

test('#25 reserving adapter 5 for the host while mdevs use it: EBUSY, logged for the newest overlapping mdev only', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2', 'U3')
    await h.configure('U1', 'U2', 'U3')
    const log = await h.dmesg()
    await h.refused('echo +5 > "$S/bus/ap/apmask"', 'EBUSY')
    t.is(await h.cat('$S/bus/ap/apmask'), APMASK_TG)
    t.deepEqual(await h.dmesgSince(log), [
      `vfio_ap_mdev ${U2}: Can not reserve queue 05.0047 for host driver: in use by mdev`,
      `vfio_ap_mdev ${U2}: Can not reserve queue 05.00ff for host driver: in use by mdev`
    ])
    await h.resolves('$S/bus/ap/devices/05.0004/driver', 'bus/ap/drivers/vfio_ap')
  })
})

test('#26 giving adapter 4 to vfio_ap is never refused; its queues bind to vfio_ap, unassigned', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2', 'U3')
    await h.configure('U1', 'U2', 'U3')
    await h.ok('echo -4 > "$S/bus/ap/apmask"')
    t.is(await h.cat('$S/bus/ap/apmask'), mask(allBut(4, 5, 6)) + '\n')
    for (const q of ['04.0004', '04.0047', '04.00ab', '04.00ff']) {
      await h.resolves(`$S/bus/ap/devices/${q}/driver`, 'bus/ap/drivers/vfio_ap')
      t.is(await h.cat(`$S/bus/ap/devices/${q}/status`), 'unassigned\n', `${q} status`)
      t.is(await h.ok(`readlink "$S/bus/ap/drivers/vfio_ap/${q}"`), `../../../../devices/ap/card04/${q}\n`)
    }
  })
})

test('#27 taking adapter 4 back for the host (no mdev uses it)', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2', 'U3')
    await h.configure('U1', 'U2', 'U3')
    await h.ok('echo -4 > "$S/bus/ap/apmask"')
    await h.ok('echo +4 > "$S/bus/ap/apmask"')
    t.is(await h.cat('$S/bus/ap/apmask'), APMASK_TG)
    for (const q of ['04.0004', '04.0047', '04.00ab', '04.00ff']) {
      await h.resolves(`$S/bus/ap/devices/${q}/driver`, 'bus/ap/drivers/cex4queue')
      t.is((await h.sh(`test -e "$S/bus/ap/devices/${q}/status"`)).code, 1, `${q}/status must vanish`)
      t.is((await h.sh(`test -e "$S/bus/ap/drivers/vfio_ap/${q}"`)).code, 1, `vfio_ap/${q} link must vanish`)
    }
  })
})

for (const cmd of [
  'echo \'+5 \' > "$S/bus/ap/apmask"',
  'echo +256 > "$S/bus/ap/apmask"',
  'echo +3-1 > "$S/bus/ap/apmask"'
]) {
  test('#28 apmask relative syntax errors', refusedWrite, { cmd, errno: 'EINVAL' })
}

test('#29 aqmask: reserving a domain in use by a fresh mdev is EBUSY', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.ok('echo -0x47 > "$S/bus/ap/aqmask"')
    const aqmask = mask(allBut(0x47)) + '\n'
    t.is(await h.cat('$S/bus/ap/aqmask'), aqmask)
    await h.create('U6')
    await h.ok('echo 4 > "$M/$U6/assign_adapter"')
    await h.ok('echo 0x47 > "$M/$U6/assign_domain"')
    t.is(await h.cat('$M/$U6/matrix'), '04.0047\n')
    const log = await h.dmesg()
    await h.refused('echo +0x47 > "$S/bus/ap/aqmask"', 'EBUSY')
    t.is(await h.cat('$S/bus/ap/aqmask'), aqmask)
    t.deepEqual(await h.dmesgSince(log), [
      `vfio_ap_mdev ${U6}: Can not reserve queue 04.0047 for host driver: in use by mdev`
    ])
  })
})

// ---------------------------------------------------------------------------------------
// §5 ap_config

test('#30 ap_config of U1', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    const text = '0x0600000000000000000000000000000000000000000000000000000000000000,' +
      '0x0800000000000000000000000000000000000000001000000000000000000000,' +
      '0x0000000000000000000000000000000000000000000000000000000000000000\n'
    t.is(text, apConfig([5, 6], [4, 0xab], []))
    t.is(text.length, 201)
    t.is(await h.cat('$M/$U1/ap_config'), text)
  })
})

test('#31 ap_config write replaces all three masks', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.ok('echo 0x04,0x08,0x08 > "$M/$U1/ap_config"')
    t.is(await h.cat('$M/$U1/matrix'), '05.0004\n')
    t.is(await h.cat('$M/$U1/control_domains'), '0004\n')
    t.is(await h.cat('$M/$U1/guest_matrix'), '05.0004\n')
    t.is(await h.cat('$M/$U1/ap_config'), apConfig([5], [4], [4]))
  })
})

test('#32 ap_config adding a domain owned by U2: EADDRINUSE, U1 unchanged', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2')
    await h.configure('U1', 'U2')
    const log = await h.dmesg()
    await h.refused('echo 0x06,0x0800000000000000010000000000000000000000001000000000000000000000,0x > "$M/$U1/ap_config"', 'EADDRINUSE')
    t.is(await h.cat('$M/$U1/ap_config'), apConfig([5, 6], [4, 0xab], []))
    t.deepEqual(await h.dmesgSince(log), [
      `vfio_ap_mdev ${U1}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`
    ])
  })
})

test('#33 ap_config: out-of-range adapter is ENODEV, but sharing is checked first', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2')
    await h.configure('U1', 'U2')
    await h.ok('echo -64 > "$S/bus/ap/apmask"')
    await h.refused('echo 0x0600000000000000800000000000000000000000000000000000000000000000,0x0800000000000000000000000000000000000000001000000000000000000000,0x > "$M/$U1/ap_config"', 'ENODEV')
    await h.refused('echo 0x0600000000000000800000000000000000000000000000000000000000000000,0x0800000000000000010000000000000000000000001000000000000000000000,0x > "$M/$U1/ap_config"', 'EADDRINUSE')
    t.is(await h.cat('$M/$U1/ap_config'), apConfig([5, 6], [4, 0xab], []))
  })
})

test('#33 ap_config: adapter 64 while host-owned is EADDRNOTAVAIL', async t => {
  await tg(t, async h => {
    await h.create('U1', 'U2')
    await h.configure('U1', 'U2')
    await h.refused('echo 0x0600000000000000800000000000000000000000000000000000000000000000,0x0800000000000000000000000000000000000000001000000000000000000000,0x > "$M/$U1/ap_config"', 'EADDRNOTAVAIL')
  })
})

test('#34 ap_config field splitting', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.ok('echo 4 > "$M/$U1/assign_control_domain"')
    await h.refused('printf \'0x06,0x08\' > "$M/$U1/ap_config"', 'EINVAL', 'printf')
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX)
    t.is(await h.cat('$M/$U1/control_domains'), '0004\n')
    await h.ok(String.raw`printf '0x06,0x08\n' > "$M/$U1/ap_config"`)
    t.is(await h.cat('$M/$U1/matrix'), '05.0004\n06.0004\n')
    t.is(await h.cat('$M/$U1/control_domains'), '')
    await h.refused('echo 0X06,0x08,0x > "$M/$U1/ap_config"', 'EINVAL')
    await h.ok('echo 0x06,0x08,0x,junk > "$M/$U1/ap_config"')
    t.is(await h.cat('$M/$U1/ap_config'), apConfig([5, 6], [4], []))
  })
})

// ---------------------------------------------------------------------------------------
// §3 guest view without a guest, §2.9 size cap, §2.10 remove, §2.7 control domains

test('#39 over-provisioned domain: in matrix, filtered from guest_matrix', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.ok('echo 0x10 > "$M/$U1/assign_domain"')
    t.is(await h.cat('$M/$U1/matrix'), '05.0004\n05.0010\n05.00ab\n06.0004\n06.0010\n06.00ab\n')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_MATRIX)
  })
})

// #36–#38 need no guest to be seen in guest_matrix ("is or will be passed through", §3.2);
// the guest-attached forms (status `in use`) are in test/lib/vfio-guest.test.ts.
test('#36/#37 without a guest: unbind drops the whole adapter from guest_matrix, bind brings it back', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    await h.ok('echo 06.00ab > "$S/bus/ap/drivers/vfio_ap/unbind"')
    t.is(await h.cat('$M/$U1/matrix'), U1_MATRIX)
    t.is(await h.cat('$M/$U1/guest_matrix'), '05.0004\n05.00ab\n')
    t.is(await h.cat('$S/bus/ap/devices/06.0004/status'), 'assigned\n')
    t.is((await h.sh('test -e "$S/bus/ap/devices/06.00ab/status"')).code, 1, '06.00ab/status vanishes with the binding')
    t.is((await h.sh('test -e "$S/bus/ap/devices/06.00ab/driver"')).code, 1, '06.00ab stays driverless')
    await h.ok('echo 06.00ab > "$S/bus/ap/drivers/vfio_ap/bind"')
    await h.resolves('$S/bus/ap/devices/06.00ab/driver', 'bus/ap/drivers/vfio_ap')
    t.is(await h.cat('$S/bus/ap/devices/06.00ab/status'), 'assigned\n')
    t.is(await h.cat('$M/$U1/guest_matrix'), U1_MATRIX, 'guest_matrix after re-binding 06.00ab')
  })
})

test('#38 all adapters filtered: guest_matrix keeps the domain-only form', async t => {
  await tg(t, async h => {
    await h.create('U7')
    await h.ok('echo 6 > "$M/$U7/assign_adapter" && echo 0xab > "$M/$U7/assign_domain"')
    t.is(await h.cat('$M/$U7/guest_matrix'), '06.00ab\n')
    await h.ok('echo 06.00ab > "$S/bus/ap/drivers/vfio_ap/unbind"')
    t.is(await h.cat('$M/$U7/guest_matrix'), '.00ab\n')
    t.is(await h.cat('$M/$U7/matrix'), '06.00ab\n')
  })
})

test('#43 matrix output is capped at 4095 bytes', async t => {
  await tg(t, async h => {
    await h.ok('echo -0-63 > "$S/bus/ap/apmask"')
    await h.create('U8')
    await h.ok(String.raw`
      for a in $(seq 0 31); do echo $a > "$M/$U8/assign_adapter" || exit 1; done
      for d in $(seq 0 15); do echo $d > "$M/$U8/assign_domain" || exit 1; done`, 'assign adapters 0..31, domains 0..15')
    t.is(await h.ok('cat "$M/$U8/matrix" | wc -c'), '4095\n')
    t.is(await h.ok('cat "$M/$U8/matrix" | tail -c 8'), '\n1f.000f')
    const full = range(0, 31).flatMap(a => range(0, 15).map(d => `${a.toString(16).padStart(2, '0')}.${d.toString(16).padStart(4, '0')}\n`)).join('')
    t.is(await h.cat('$M/$U8/matrix'), full.slice(0, 4095))
    // §3.2: only adapters 4, 5, 6 and domain 4 are in the host configuration
    t.is(await h.cat('$M/$U8/guest_matrix'), '04.0004\n05.0004\n06.0004\n')
  })
})

test('#44 remove: 0 is a no-op, garbage is EINVAL, 1 removes everything', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    t.is(await h.cat('$S/bus/ap/devices/05.0004/status'), 'assigned\n')
    const before = await h.state()
    await h.ok('echo 0 > "$M/$U1/remove"')
    t.is(await h.state(), before, 'echo 0 > remove changes nothing')
    await h.refused('echo yes > "$M/$U1/remove"', 'EINVAL')
    await h.ok('echo 1 > "$M/$U1/remove"')
    t.is((await h.sh('test -e "$M/$U1"')).code, 1, 'mdev directory gone (stat)')
    t.is(await h.ok('ls "$M" | grep -c "$U1" || true'), '0\n', 'mdev directory gone (readdir)')
    t.is((await h.sh('test -L "$T/devices/$U1"')).code, 1, 'type devices/ link gone')
    t.is((await h.sh('test -L "$S/bus/mdev/devices/$U1"')).code, 1, 'bus/mdev/devices link gone')
    t.is(await h.ok('ls "$T/devices" | wc -l; ls "$S/bus/mdev/devices" | wc -l'), '0\n0\n', 'no links left in readdir')
    t.is(await h.cat('$T/available_instances'), '65536\n')
    for (const q of ['05.0004', '05.00ab', '06.0004', '06.00ab']) {
      t.is(await h.cat(`$S/bus/ap/devices/${q}/status`), 'unassigned\n', `${q} status after remove`)
    }
    await h.ok('echo $U1 > "$T/create"')
    t.is(await h.cat('$M/$U1/matrix'), '', 're-created mdev starts empty')
    t.is(await h.cat('$T/available_instances'), '65535\n')
  })
})

test('#50 unassigning a control domain that is not assigned is a no-op', async t => {
  await tg(t, async h => {
    await h.create('U1')
    await h.configure('U1')
    t.is(await h.cat('$M/$U1/control_domains'), '')
    await h.ok('echo 0xab > "$M/$U1/unassign_control_domain"')
    t.is(await h.cat('$M/$U1/control_domains'), '')
  })
})
