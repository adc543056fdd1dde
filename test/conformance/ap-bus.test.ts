/**
 * AP bus conformance: the scenarios of /work/shared/spec/ap-bus.md §10 (with its Errata),
 * run through a real FUSE mount with the shell commands a user would type. The mount
 * directory plays /sys, so `/sys/bus/ap/apmask` is written `bus/ap/apmask`.
 *
 * Every test boots its own host (fixture F1 or a variant of it). Refused writes are checked
 * by the exact bash error text and by reading the state back unchanged.
 *
 * Not covered here: scenarios 32 and 33 (they change the host configuration at run time)
 * and uevents (not observable through the mount yet).
 */
import { test, type ExecutionContext } from '../helpers/kernel.js'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { mountHost, requireFuse, type Mounted, type ShResult } from '../helpers/mount.js'

// ---------------------------------------------------------------------------------------
// Fixtures

const F1_PATH = fileURLToPath(new URL('../../../test/fixtures/f1.yaml', import.meta.url))
const F1 = parseYaml(readFileSync(F1_PATH, 'utf8')) as Record<string, unknown>

/** F1 with some top-level fields replaced, as YAML text (JSON is YAML). */
function f1With (patch: Record<string, unknown>): string {
  return JSON.stringify({ ...F1, ...patch })
}

interface Boot { topology?: string, topologyYaml?: string }
const BOOT_F1: Boot = { topology: F1_PATH }

// ---------------------------------------------------------------------------------------
// Mounting: at most two hosts at a time (2 CPUs), every host stopped even when a test fails.

const MAX_MOUNTS = 2
let mounted = 0
const waiting: Array<() => void> = []

async function withHost (t: ExecutionContext, boot: Boot, fn: (m: Mounted) => Promise<void>): Promise<void> {
  if (mounted >= MAX_MOUNTS) await new Promise<void>(resolve => waiting.push(resolve))
  mounted++
  let m: Mounted | undefined
  try {
    m = await mountHost(boot)
    await fn(m)
  } finally {
    try {
      if (m !== undefined) {
        const log = (m as Partial<{ log: () => string }>).log?.() ?? ''
        await m.stop()
        if (!t.passed && log !== '') t.log(`daemon log (tail):\n${log.split('\n').slice(-30).join('\n')}`)
      }
    } finally {
      mounted--
      waiting.shift()?.()
    }
  }
}

test.before(() => { requireFuse() })

// ---------------------------------------------------------------------------------------
// Values

const hex2 = (n: number): string => n.toString(16).padStart(2, '0')
const hex4 = (n: number): string => n.toString(16).padStart(4, '0')
/** Queue device name, `%02x.%04x`. */
const qn = (a: number, d: number): string => `${hex2(a)}.${hex4(d)}`
/** Queue directory below the device tree. */
const qdir = (a: number, d: number): string => `devices/ap/card${hex2(a)}/${qn(a, d)}`

const F1_ADAPTERS = [0x03, 0x05, 0x06]
const F1_DOMAINS = [0x04, 0x0b, 0x47]
const F1_QUEUES: Array<[number, number]> = F1_ADAPTERS.flatMap(a => F1_DOMAINS.map(d => [a, d] as [number, number]))

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** A 256-bit mask as the kernel prints it: `0x` + 64 lowercase hex digits + `\n`, id 0 leftmost. */
function maskOf (ids: Iterable<number>): string {
  const set = new Set(ids)
  let hex = ''
  for (let digit = 0; digit < 64; digit++) {
    let v = 0
    for (let b = 0; b < 4; b++) if (set.has(digit * 4 + b)) v |= 8 >> b
    hex += v.toString(16)
  }
  return `0x${hex}\n`
}
const ALL_ONES = `0x${'f'.repeat(64)}\n`
const ALL_ZEROS = `0x${'0'.repeat(64)}\n`
const allBut = (...ids: number[]): string => maskOf(range(0, 255).filter(i => !ids.includes(i)))

// ---------------------------------------------------------------------------------------
// Shell results

type Errno = 'EINVAL' | 'EBUSY' | 'ENODEV' | 'EOPNOTSUPP' | 'EACCES' | 'ERANGE'
const STRERROR: Record<Errno, string> = {
  EINVAL: 'Invalid argument',
  EBUSY: 'Device or resource busy',
  ENODEV: 'No such device',
  EOPNOTSUPP: 'Operation not supported',
  EACCES: 'Permission denied',
  ERANGE: 'Numerical result out of range'
}

const show = (script: string, r: ShResult): string =>
  `$ ${script}\n  exit ${r.code}\n  stdout ${JSON.stringify(r.stdout)}\n  stderr ${JSON.stringify(r.stderr)}`

/** Runs a script that must succeed silently; returns its stdout. */
async function ok (t: ExecutionContext, m: Mounted, script: string): Promise<string> {
  const r = await m.sh(script)
  t.true(r.code === 0 && r.stderr === '', `expected success\n${show(script, r)}`)
  return r.stdout
}

/**
 * Runs a one-command script that must fail with `errno`, as bash reports it:
 * `bash: line 1: echo: write error: Invalid argument` for a failed write(2) (coreutils:
 * `/usr/bin/printf: write error: ...`), and `bash: line 1: <path>: Permission denied` for a
 * refused open(2) (EACCES).
 *
 * Payloads with an embedded newline are written with coreutils `/usr/bin/printf`: the bash
 * builtin flushes at every `\n`, so `printf '0xff\n\n'` would be two write(2) calls.
 */
async function refused (t: ExecutionContext, m: Mounted, script: string, errno: Errno): Promise<void> {
  const r = await m.sh(script)
  const re = errno === 'EACCES'
    ? /^bash: (line \d+: )?\S+: Permission denied$/m
    : new RegExp(`^(bash: (line \\d+: )?|/usr/bin/)(echo|printf): write error: ${STRERROR[errno]}$`, 'm')
  t.true(r.code !== 0 && re.test(r.stderr), `expected ${errno} (${STRERROR[errno]})\n${show(script, r)}`)
}

/** Reads files (relative to the mount) and compares each byte for byte. */
async function reads (t: ExecutionContext, m: Mounted, expected: Record<string, string>): Promise<void> {
  for (const [file, want] of Object.entries(expected)) {
    let got: string
    try {
      got = await m.read(file)
    } catch (e) {
      t.fail(`reading ${file}: ${(e as Error).message}`)
      continue
    }
    t.is(got, want, `content of ${file}`)
  }
}

/** Which of `names` exist in `dir`. */
async function present (m: Mounted, dir: string, names: string[]): Promise<string[]> {
  const r = await m.sh(`for f in ${names.join(' ')}; do test -e "${dir}/$f" && echo "$f"; done; true`)
  return r.stdout.split('\n').filter(s => s !== '')
}

/** Queue name → basename of its `driver` link, or `none`, for every queue in devices/ap. */
async function queueDrivers (m: Mounted): Promise<Record<string, string>> {
  const r = await m.sh('for q in devices/ap/card*/[0-9a-f][0-9a-f].[0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do ' +
    'd=$(readlink "$q/driver") || d=none; echo "${q##*/} ${d##*/}"; done')
  const out: Record<string, string> = {}
  for (const line of r.stdout.split('\n')) {
    if (line === '') continue
    const [q, d] = line.split(' ')
    out[q] = d
  }
  return out
}

/** Asserts the driver of every F1 queue, given as a function of (adapter, domain). */
async function driversAre (t: ExecutionContext, m: Mounted, driverOf: (a: number, d: number) => string): Promise<void> {
  const want: Record<string, string> = {}
  for (const [a, d] of F1_QUEUES) want[qn(a, d)] = driverOf(a, d)
  t.deepEqual(await queueDrivers(m), want, 'queue → driver')
}

/** Queue names listed in a driver directory. */
async function boundTo (m: Mounted, driver: string): Promise<string[]> {
  const r = await m.sh(`ls bus/ap/drivers/${driver}`)
  return r.stdout.split('\n').filter(s => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(s)).sort()
}

const ZCRYPT_QUEUE_FILES = ['online', 'load', 'mkvps', 'op_modes']

// ---------------------------------------------------------------------------------------
// The table-driven write macro: one write to one attribute, after an optional setup, on a
// fresh host. Either it succeeds and the attribute then reads `reads`, or it fails with
// `errno` and the attribute reads exactly what it read before.

interface WriteCase {
  /** Scenario label for the title, e.g. `§10.24`. */
  ref: string
  /** The attribute, relative to the mount, e.g. `bus/ap/config_time`. */
  file: string
  /** The shell command whose stdout is redirected into the attribute, e.g. `echo 4`. */
  write: string
  expect: { errno: Errno } | { reads: string }
  /** Commands run (and required to succeed) before the write. */
  setup?: string
  boot?: Boot
  /** Other attributes to check after the write (unchanged after a refusal, by definition). */
  also?: Record<string, string>
}

const attrWrite = test.macro({
  async exec (t, c: WriteCase) {
    await withHost(t, c.boot ?? BOOT_F1, async m => {
      if (c.setup !== undefined) await ok(t, m, c.setup)
      const script = `${c.write} > ${c.file}`
      if ('errno' in c.expect) {
        const before = await m.read(c.file)
        await refused(t, m, script, c.expect.errno)
        await reads(t, m, { [c.file]: before })
      } else {
        await ok(t, m, script)
        await reads(t, m, { [c.file]: c.expect.reads })
      }
      if (c.also !== undefined) await reads(t, m, c.also)
    })
  },
  title (_provided, c: WriteCase) {
    const outcome = 'errno' in c.expect ? c.expect.errno : `reads ${JSON.stringify(c.expect.reads)}`
    const setup = c.setup !== undefined ? ` after \`${c.setup}\`` : ''
    return `${c.ref} ${c.write} > ${c.file}${setup} → ${outcome}`
  }
})

// =======================================================================================
// §10.1–7: boot state of F1

test('§10.1 apmask reads all ones after boot', async t => {
  await withHost(t, BOOT_F1, async m => {
    await reads(t, m, { 'bus/ap/apmask': '0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n' })
    t.is(await ok(t, m, 'cat bus/ap/aqmask'), ALL_ONES)
  })
})

test('§10.2 ap_adapter_mask shows QCI adapters 3, 5, 6', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat bus/ap/ap_adapter_mask'),
      '0x1600000000000000000000000000000000000000000000000000000000000000\n')
  })
})

test('§10.3 ap_usage_domain_mask shows QCI domains 4, 11, 71', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat bus/ap/ap_usage_domain_mask'),
      '0x0810000000000000010000000000000000000000000000000000000000000000\n')
    // control domains are the same set in F1 (§1.2)
    t.is(await ok(t, m, 'cat bus/ap/ap_control_domain_mask'), maskOf([4, 11, 71]))
  })
})

test('§10.4 ap_max_adapter_id/ap_max_domain_id come from QCI (255, 84)', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat bus/ap/ap_max_adapter_id bus/ap/ap_max_domain_id'), '255\n84\n')
  })
})

test('§10.4 without QCI: max ids 63/15, QCI masks "not supported", features "-"', async t => {
  await withHost(t, { topologyYaml: f1With({ qci: { available: false } }) }, async m => {
    t.is(await ok(t, m, 'cat bus/ap/ap_max_adapter_id bus/ap/ap_max_domain_id'), '63\n15\n')
    await reads(t, m, {
      'bus/ap/ap_adapter_mask': 'not supported\n',
      'bus/ap/ap_usage_domain_mask': 'not supported\n',
      'bus/ap/ap_control_domain_mask': 'not supported\n',
      'bus/ap/features': '-\n'
    })
  })
})

test('§10.5 features lists the QCI facility words in order', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat bus/ap/features'), 'APSC APXA QACT RC8A\n')
  })
})

test('§10.6 all 9 queues bound after boot; bindings complete once; at least one scan', async t => {
  await withHost(t, BOOT_F1, async m => {
    await reads(t, m, {
      'bus/ap/bindings': '9/9 (complete)\n',
      'bus/ap/bindings_complete_count': '1\n'
    })
    const scans = await ok(t, m, 'cat bus/ap/scans')
    t.regex(scans, /^\d+\n$/)
    t.true(Number.parseInt(scans, 10) >= 1, `scans = ${JSON.stringify(scans)}`)
    await driversAre(t, m, () => 'cex4queue')
  })
})

test('§10.7 ap_domain auto-selects the lowest usable domain (4)', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat bus/ap/ap_domain'), '4\n')
  })
})

// =======================================================================================
// §10.8–22: apmask/aqmask

test('§10.8 echo -5,-6 > apmask moves adapters 5 and 6 to vfio_ap, cards stay on cex4card', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.deepEqual(await present(m, qdir(5, 4), ZCRYPT_QUEUE_FILES), ZCRYPT_QUEUE_FILES, 'EP11 queue has zcrypt files before')
    await ok(t, m, 'echo -5,-6 > bus/ap/apmask')
    await reads(t, m, { 'bus/ap/apmask': '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n' })

    await driversAre(t, m, a => a === 3 ? 'cex4queue' : 'vfio_ap')
    t.is(await ok(t, m, `readlink ${qdir(5, 4)}/driver`), '../../../../bus/ap/drivers/vfio_ap\n')
    t.is(await ok(t, m, 'readlink bus/ap/devices/06.0047/driver'), '../../../../bus/ap/drivers/vfio_ap\n')
    t.deepEqual(await boundTo(m, 'vfio_ap'), ['05.0004', '05.000b', '05.0047', '06.0004', '06.000b', '06.0047'])
    t.deepEqual(await boundTo(m, 'cex4queue'), ['03.0004', '03.000b', '03.0047'])
    t.is(await ok(t, m, 'readlink bus/ap/drivers/vfio_ap/05.0004'), '../../../../devices/ap/card05/05.0004\n')

    for (const [a, d] of F1_QUEUES.filter(([a]) => a !== 3)) {
      t.deepEqual(await present(m, qdir(a, d), ZCRYPT_QUEUE_FILES), [], `zcrypt files gone from ${qn(a, d)}`)
    }
    t.deepEqual(await present(m, qdir(3, 4), ZCRYPT_QUEUE_FILES), ['online', 'load', 'mkvps'], 'CCA queue 03.0004 untouched')

    for (const c of ['card05', 'card06']) {
      t.is(await ok(t, m, `readlink devices/ap/${c}/driver`), '../../../bus/ap/drivers/cex4card\n')
    }
    await reads(t, m, {
      'devices/ap/card05/type': 'CEX8P\n',
      'devices/ap/card05/online': '1\n',
      'devices/ap/card06/type': 'CEX8A\n',
      'devices/ap/card06/online': '1\n',
      [`${qdir(5, 4)}/request_count`]: '-\n',
      [`${qdir(5, 4)}/status`]: 'unassigned\n',
      'bus/ap/bindings': '9/9 (complete)\n',
      'bus/ap/aqmask': ALL_ONES
    })
  })
})

test('§10.9 echo +5 > apmask (no mdev) brings adapter 5 back to cex4queue, online', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo -5,-6 > bus/ap/apmask')
    await ok(t, m, 'echo +5 > bus/ap/apmask')
    await reads(t, m, { 'bus/ap/apmask': '0xfdffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n' })
    await driversAre(t, m, a => a === 6 ? 'vfio_ap' : 'cex4queue')
    for (const d of F1_DOMAINS) {
      await reads(t, m, { [`${qdir(5, d)}/online`]: '1\n' })
      t.regex(await m.read(`${qdir(5, d)}/request_count`), /^\d+\n$/, `${qn(5, d)} request_count numeric`)
      t.deepEqual(await present(m, qdir(5, d), ['status']), [], `${qn(5, d)} has no vfio_ap status`)
    }
    await reads(t, m, { 'bus/ap/bindings': '9/9 (complete)\n' })
  })
})

test('§10.10 echo 0x41 > apmask reserves only adapters 1 and 7: all F1 queues go to vfio_ap', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo 0x41 > bus/ap/apmask')
    await reads(t, m, {
      'bus/ap/apmask': '0x4100000000000000000000000000000000000000000000000000000000000000\n',
      'bus/ap/bindings': '9/9 (complete)\n'
    })
    await driversAre(t, m, () => 'vfio_ap')
  })
})

const MASK_41 = '0x4100000000000000000000000000000000000000000000000000000000000000\n'

for (const write of ['echo 41', 'echo x41']) {
  test(attrWrite, { ref: '§10.11', file: 'bus/ap/apmask', write, expect: { reads: MASK_41 } })
}

test(attrWrite, { ref: '§10.12', file: 'bus/ap/apmask', write: 'echo 0X41', expect: { errno: 'EINVAL' } })

test('§10.13 65 hex digits → EINVAL, exactly 64 → success', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo > bus/ap/apmask')
    await refused(t, m, "echo 0x$(printf 'f%.0s' {1..65}) > bus/ap/apmask", 'EINVAL')
    await reads(t, m, { 'bus/ap/apmask': ALL_ZEROS })
    await ok(t, m, "echo 0x$(printf 'f%.0s' {1..64}) > bus/ap/apmask")
    await reads(t, m, { 'bus/ap/apmask': ALL_ONES })
  })
})

test(attrWrite, { ref: '§10.14', file: 'bus/ap/apmask', write: 'echo "0xff "', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.14', file: 'bus/ap/apmask', write: "/usr/bin/printf '0xff\\n\\n'", expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.14', file: 'bus/ap/apmask', write: "printf '0xff'", expect: { reads: maskOf(range(0, 7)) } })

test('§10.15 echo > apmask clears the mask: every queue moves to vfio_ap', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo > bus/ap/apmask')
    await reads(t, m, {
      'bus/ap/apmask': '0x0000000000000000000000000000000000000000000000000000000000000000\n',
      'bus/ap/bindings': '9/9 (complete)\n'
    })
    await driversAre(t, m, () => 'vfio_ap')
  })
})

const FROM_ZERO = 'echo > bus/ap/apmask'

test(attrWrite, {
  ref: '§10.16', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +0-15',
  expect: { reads: '0xffff000000000000000000000000000000000000000000000000000000000000\n' }
})
test(attrWrite, {
  ref: '§10.17', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +010',
  expect: { reads: '0x0080000000000000000000000000000000000000000000000000000000000000\n' }
})
test(attrWrite, { ref: '§10.17', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +08', expect: { errno: 'EINVAL' } })
const MASK_1_2 = `0x6${'0'.repeat(63)}\n`
test(attrWrite, { ref: '§10.18', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +1+2', expect: { reads: MASK_1_2 } })
test(attrWrite, { ref: '§10.18', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo "+1, +2"', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.18', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +1,,+2,', expect: { reads: MASK_1_2 } })

test(attrWrite, { ref: '§10.19', file: 'bus/ap/apmask', write: 'echo +5-3', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.19', file: 'bus/ap/apmask', write: 'echo +256', expect: { errno: 'EINVAL' } })
test(attrWrite, {
  ref: '§10.19', file: 'bus/ap/apmask', write: 'echo -0x10',
  expect: { reads: '0xffff7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n' }
})
test(attrWrite, { ref: '§10.19', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +0-255', expect: { reads: ALL_ONES } })
test(attrWrite, { ref: '§10.19', file: 'bus/ap/apmask', setup: 'echo -0x10 > bus/ap/apmask', write: 'echo +0-255', expect: { reads: ALL_ONES } })

// more of the §1.4 grammar (and Erratum 4), each on a fresh F1 host
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', write: 'echo x', expect: { reads: ALL_ZEROS } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', write: 'echo 0', expect: { reads: ALL_ZEROS } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', write: 'echo 0x0f,', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', write: "printf '0xff\\0zz'", expect: { reads: maskOf(range(0, 7)) } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', write: "/usr/bin/printf -- '-3\\n\\n'", expect: { reads: allBut(3) } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', write: 'echo -0xg', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', write: 'echo 5', expect: { reads: maskOf([1, 3]) } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +0-255,-128', expect: { reads: allBut(128) } })
test(attrWrite, { ref: '§1.4', file: 'bus/ap/aqmask', setup: 'echo > bus/ap/aqmask', write: 'echo +0X1f', expect: { reads: maskOf([31]) } })
test(attrWrite, { ref: 'Erratum 4', file: 'bus/ap/apmask', setup: FROM_ZERO, write: 'echo +18446744073709551617', expect: { reads: maskOf([1]) } })

test('helper: maskOf agrees with the literal masks of the spec', t => {
  t.is(allBut(5, 6), '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
  t.is(allBut(6), '0xfdffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
  t.is(maskOf([3, 5, 6]), '0x1600000000000000000000000000000000000000000000000000000000000000\n')
  t.is(maskOf([4, 11, 71]), '0x0810000000000000010000000000000000000000000000000000000000000000\n')
  t.is(allBut(4, 0x47, 0xab, 0xff), '0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe\n')
  t.is(allBut(0x10), '0xffff7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
  t.is(maskOf(range(0, 15)), '0xffff000000000000000000000000000000000000000000000000000000000000\n')
})

test('§10.20 echo -4,-0x47,-0xab,-0xff > aqmask moves domains 4 and 71 to vfio_ap', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo -4,-0x47,-0xab,-0xff > bus/ap/aqmask')
    await reads(t, m, {
      'bus/ap/aqmask': '0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe\n',
      'bus/ap/apmask': ALL_ONES,
      'bus/ap/bindings': '9/9 (complete)\n'
    })
    await driversAre(t, m, (_a, d) => d === 0x0b ? 'cex4queue' : 'vfio_ap')
  })
})

const U = '6b1c8c34-7a3e-4e1d-9a52-0f3e2d1c4b5a'
const MATRIX = 'devices/vfio_ap/matrix'
const CREATE = `${MATRIX}/mdev_supported_types/vfio_ap-passthrough/create`
/** §10.21 setup: after §10.8, mdev U with adapter 5 and domain 4 (APQN 05.0004). */
const SETUP_21 = `echo -5,-6 > bus/ap/apmask && echo ${U} > ${CREATE} && ` +
  `echo 5 > ${MATRIX}/${U}/assign_adapter && echo 4 > ${MATRIX}/${U}/assign_domain`
const IN_USE_LINE = `vfio_ap_mdev ${U}: Can not reserve queue 05.0004 for host driver: in use by mdev`

async function inUseLines (m: Mounted): Promise<string[]> {
  return (await m.dmesg()).split('\n').filter(l => l.includes('Can not reserve queue'))
}

test('§10.21 echo +5 > apmask while 05.0004 is assigned to an mdev → EBUSY, logged once', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, SETUP_21)
    const apmask = allBut(5, 6)
    await reads(t, m, { 'bus/ap/apmask': apmask })
    await refused(t, m, 'echo +5 > bus/ap/apmask', 'EBUSY')
    await reads(t, m, { 'bus/ap/apmask': apmask, 'bus/ap/aqmask': ALL_ONES })
    await driversAre(t, m, a => a === 3 ? 'cex4queue' : 'vfio_ap')
    const lines = await inUseLines(m)
    t.is(lines.length, 1, `one line per conflicting APQN:\n${lines.join('\n')}`)
    t.true(lines.some(l => l.endsWith(IN_USE_LINE)), `dmesg has "${IN_USE_LINE}":\n${lines.join('\n')}`)
  })
})

test('§10.21 (6.19+) the in-use check also refuses +5 when aqmask bit 4 is clear', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, SETUP_21)
    await ok(t, m, 'echo -4 > bus/ap/aqmask')
    await refused(t, m, 'echo +5 > bus/ap/apmask', 'EBUSY')
    await reads(t, m, { 'bus/ap/apmask': allBut(5, 6), 'bus/ap/aqmask': allBut(4) })
    const lines = await inUseLines(m)
    t.is(lines.length, 1, lines.join('\n'))
    t.true(lines.some(l => l.endsWith(IN_USE_LINE)), lines.join('\n'))
  })
})

test('§10.22 a no-op mask write succeeds without rebinding', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo -5 > bus/ap/apmask')
    // the rebinding of the first write re-arms "bindings complete": the next scan counts it (§7.5)
    await ok(t, m, 'echo 1 > bus/ap/scans')
    await reads(t, m, { 'bus/ap/bindings_complete_count': '2\n' })
    const dmesg = await m.dmesg()

    await ok(t, m, 'echo -5 > bus/ap/apmask')
    await reads(t, m, { 'bus/ap/apmask': allBut(5), 'bus/ap/bindings': '9/9 (complete)\n' })
    await driversAre(t, m, a => a === 5 ? 'vfio_ap' : 'cex4queue')
    // nothing was re-probed, so nothing re-armed the bindings-complete state
    await ok(t, m, 'echo 1 > bus/ap/scans')
    await reads(t, m, { 'bus/ap/bindings_complete_count': '2\n' })
    t.is(await m.dmesg(), dmesg, 'no kernel log output')
  })
})

// =======================================================================================
// §10.23–28: scalar bus attributes

const AP_DOMAIN = 'bus/ap/ap_domain'
test(attrWrite, { ref: '§10.23', file: AP_DOMAIN, write: 'echo 3', expect: { reads: '3\n' } })
test(attrWrite, { ref: '§10.23', file: AP_DOMAIN, write: 'echo 85', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.23', file: AP_DOMAIN, write: 'echo 84', expect: { reads: '84\n' } })
test(attrWrite, { ref: '§10.23', file: AP_DOMAIN, write: 'echo -1', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.23', file: AP_DOMAIN, write: 'echo 0x0b', expect: { reads: '11\n' } })
test(attrWrite, { ref: '§10.23', file: AP_DOMAIN, setup: 'echo -11 > bus/ap/aqmask', write: 'echo 11', expect: { errno: 'EINVAL' } })
// §1.3 sscanf("%i") details and Erratum 5
test(attrWrite, { ref: '§1.3', file: AP_DOMAIN, write: 'echo 5abc', expect: { reads: '5\n' } })
test(attrWrite, { ref: '§1.3', file: AP_DOMAIN, write: 'echo +5', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§1.3', file: AP_DOMAIN, write: 'echo 010', expect: { reads: '8\n' } })
test(attrWrite, { ref: 'Erratum 5', file: AP_DOMAIN, setup: 'echo 11 > bus/ap/ap_domain', write: 'echo 4294967300', expect: { reads: '4\n' } })

const CONFIG_TIME = 'bus/ap/config_time'
test(attrWrite, { ref: '§10.24', file: CONFIG_TIME, write: 'echo 4', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.24', file: CONFIG_TIME, write: 'echo 121', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.24', file: CONFIG_TIME, write: 'echo 60', expect: { reads: '60\n' } })
test(attrWrite, { ref: '§10.24', file: CONFIG_TIME, write: 'echo +60', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§1.3', file: CONFIG_TIME, write: 'echo 5', expect: { reads: '5\n' } })
test(attrWrite, { ref: '§1.3', file: CONFIG_TIME, write: 'echo 120', expect: { reads: '120\n' } })
test(attrWrite, { ref: '§1.3', file: CONFIG_TIME, write: 'echo "  60"', expect: { reads: '60\n' } })
test(attrWrite, { ref: '§1.3', file: CONFIG_TIME, write: 'echo 60abc', expect: { reads: '60\n' } })

test('§1.3 config_time reads 30 and poll_timeout 250000 on an LPAR', async t => {
  await withHost(t, BOOT_F1, async m => {
    await reads(t, m, { 'bus/ap/config_time': '30\n', 'bus/ap/poll_timeout': '250000\n', 'bus/ap/poll_thread': '0\n' })
  })
})

const POLL_TIMEOUT = 'bus/ap/poll_timeout'
test(attrWrite, { ref: '§10.25', file: POLL_TIMEOUT, write: 'echo 0', expect: { reads: '0\n' } })
test(attrWrite, { ref: '§10.25', file: POLL_TIMEOUT, write: 'echo 120000000001', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.25', file: POLL_TIMEOUT, setup: 'echo 1000 > bus/ap/poll_timeout', write: 'echo 0x3d090', expect: { reads: '250000\n' } })
test(attrWrite, { ref: '§10.25', file: POLL_TIMEOUT, write: 'echo 1.5', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§1.3', file: POLL_TIMEOUT, write: 'echo 120000000000', expect: { reads: '120000000000\n' } })
test(attrWrite, { ref: '§1.3', file: POLL_TIMEOUT, write: 'echo +300000', expect: { reads: '300000\n' } })
test(attrWrite, { ref: '§1.3', file: POLL_TIMEOUT, write: 'echo 99999999999999999999', expect: { errno: 'ERANGE' } })

const POLL_THREAD = 'bus/ap/poll_thread'
const NO_IRQ: Boot = { topologyYaml: f1With({ interrupts: false }) }
test(attrWrite, { ref: '§10.26 (interrupts on)', file: POLL_THREAD, write: 'echo 1', expect: { reads: '0\n' }, also: { 'bus/ap/ap_interrupts': '1\n' } })
test(attrWrite, { ref: '§10.26 (interrupts on)', file: POLL_THREAD, write: 'echo maybe', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.26 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, write: 'echo y', expect: { reads: '1\n' }, also: { 'bus/ap/ap_interrupts': '0\n' } })
test(attrWrite, { ref: '§10.26 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, write: 'echo maybe', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.26 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, setup: 'echo y > bus/ap/poll_thread', write: 'echo 0', expect: { reads: '0\n' } })
test(attrWrite, { ref: 'Erratum 2 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, write: 'echo enable', expect: { reads: '1\n' } })
test(attrWrite, { ref: 'Erratum 2 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, setup: 'echo 1 > bus/ap/poll_thread', write: 'echo disable', expect: { reads: '0\n' } })
test(attrWrite, { ref: '§1.3 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, write: 'echo on', expect: { reads: '1\n' } })
test(attrWrite, { ref: '§1.3 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, write: 'echo " 1"', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§1.3 (interrupts off)', boot: NO_IRQ, file: POLL_THREAD, write: 'echo', expect: { errno: 'EINVAL' } })
test(attrWrite, {
  ref: '§1.3 (ap.useirq=0)',
  boot: { topologyYaml: f1With({ kernel_params: { 'ap.useirq': false } }) },
  file: POLL_THREAD,
  write: 'echo 1',
  expect: { reads: '1\n' },
  also: { 'bus/ap/ap_interrupts': '0\n' }
})

test('§10.27 any write to scans runs exactly one synchronous scan', async t => {
  await withHost(t, BOOT_F1, async m => {
    const n = Number.parseInt(await m.read('bus/ap/scans'), 10)
    await ok(t, m, 'echo 2 > bus/ap/scans')
    await reads(t, m, { 'bus/ap/scans': `${n + 1}\n` })
    await ok(t, m, 'echo 0 > bus/ap/scans')
    await reads(t, m, { 'bus/ap/scans': `${n + 2}\n`, 'bus/ap/bindings': '9/9 (complete)\n' })
  })
})

const READ_ONLY: Array<[string, string]> = [
  ['§10.28', 'bus/ap/bindings'],
  ['§10.28', `${qdir(3, 4)}/config`],
  ['§1.1', 'bus/ap/ap_adapter_mask'],
  ['§1.1', 'bus/ap/ap_usage_domain_mask'],
  ['§1.1', 'bus/ap/ap_control_domain_mask'],
  ['§1.1', 'bus/ap/ap_interrupts'],
  ['§1.1', 'bus/ap/ap_max_domain_id'],
  ['§1.1', 'bus/ap/ap_max_adapter_id'],
  ['§1.1', 'bus/ap/bindings_complete_count'],
  ['§1.1', 'bus/ap/features'],
  ['§2.2', 'devices/ap/card03/hwtype'],
  ['§2.4', `${qdir(3, 4)}/interrupt`]
]
for (const [ref, file] of READ_ONLY) {
  test(attrWrite, { ref, file, write: 'echo 1', expect: { errno: 'EACCES' } })
}

// =======================================================================================
// §10.29–31: card attributes, online, config

test('§10.29 card03 attributes (CEX8 CCA)', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat devices/ap/card03/{hwtype,raw_hwtype,modalias,ap_functions,type,config,chkstop,online,max_msg_size}'),
      '14\n14\nap:t0E\n0x92800000\nCEX8C\n1\n0\n1\n12288\n')
  })
})

test('§10.30 card online=0 takes all its queues offline; queue online=1 refused while the card is offline', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo 0 > devices/ap/card05/online')
    const offline: Record<string, string> = { 'devices/ap/card05/online': '0\n' }
    for (const d of F1_DOMAINS) offline[`${qdir(5, d)}/online`] = '0\n'
    await reads(t, m, offline)
    await reads(t, m, { 'devices/ap/card03/online': '1\n', [`${qdir(3, 4)}/online`]: '1\n', [`${qdir(6, 4)}/online`]: '1\n' })

    await refused(t, m, `echo 1 > ${qdir(5, 4)}/online`, 'EINVAL')
    await reads(t, m, offline)

    await ok(t, m, 'echo 1 > devices/ap/card05/online')
    const online: Record<string, string> = { 'devices/ap/card05/online': '1\n' }
    for (const d of F1_DOMAINS) online[`${qdir(5, d)}/online`] = '1\n'
    await reads(t, m, online)
  })
})

test('§2.2 card and queue ap_functions print 8 uppercase hex digits', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat devices/ap/card05/ap_functions devices/ap/card06/ap_functions'), '0x86000000\n0xEA000000\n')
    await reads(t, m, { [`${qdir(6, 0x47)}/ap_functions`]: '0xEA000000\n', 'devices/ap/card06/type': 'CEX8A\n' })
  })
})

test(attrWrite, { ref: '§2.3', file: 'devices/ap/card05/online', write: 'echo 2', expect: { errno: 'EINVAL' } })

for (const host of ['zvm', 'kvm']) {
  test(attrWrite, {
    ref: `§10.31 (${host} guest)`,
    boot: { topologyYaml: f1With({ host }) },
    file: 'devices/ap/card03/config',
    write: 'echo 0',
    expect: { errno: 'EOPNOTSUPP' },
    also: { 'devices/ap/card03/online': '1\n', [`${qdir(3, 4)}/config`]: '1\n' }
  })
}

test('§10.31 (LPAR) card config=0 deconfigures the card and, after the scan, its queues', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo 0 > devices/ap/card03/config')
    await reads(t, m, { 'devices/ap/card03/config': '0\n', 'devices/ap/card03/online': '0\n' })
    await ok(t, m, 'echo 1 > bus/ap/scans')
    const deconfigured: Record<string, string> = { 'devices/ap/card03/config': '0\n', 'devices/ap/card03/online': '0\n' }
    for (const d of F1_DOMAINS) {
      deconfigured[`${qdir(3, d)}/config`] = '0\n'
      deconfigured[`${qdir(3, d)}/online`] = '0\n'
    }
    await reads(t, m, deconfigured)
    // devices are not removed, other cards untouched
    t.deepEqual(await queueDrivers(m), Object.fromEntries(F1_QUEUES.map(([a, d]) => [qn(a, d), 'cex4queue'])))
    await reads(t, m, { 'devices/ap/card05/config': '1\n', [`${qdir(5, 4)}/config`]: '1\n' })

    await refused(t, m, `echo 1 > ${qdir(3, 4)}/online`, 'ENODEV')
    await refused(t, m, 'echo 2 > devices/ap/card03/config', 'EINVAL')
    await reads(t, m, deconfigured)

    // reconfiguring: the zcrypt online flags were untouched, so everything reads 1 again
    await ok(t, m, 'echo 1 > devices/ap/card03/config')
    await ok(t, m, 'echo 1 > bus/ap/scans')
    const configured: Record<string, string> = { 'devices/ap/card03/config': '1\n', 'devices/ap/card03/online': '1\n' }
    for (const d of F1_DOMAINS) {
      configured[`${qdir(3, d)}/config`] = '1\n'
      configured[`${qdir(3, d)}/online`] = '1\n'
    }
    await reads(t, m, configured)
  })
})

test(attrWrite, { ref: '§5.1', file: 'devices/ap/card03/config', write: 'echo +0', expect: { errno: 'EINVAL' } })

// =======================================================================================
// §10.34–36: bind/unbind, driver_override

test('§10.34 manual unbind/bind of a queue, and refused binds', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, 'echo 03.000b > bus/ap/drivers/cex4queue/unbind')
    await reads(t, m, { 'bus/ap/bindings': '8/9\n' })
    t.deepEqual(await present(m, qdir(3, 0x0b), ['driver', 'online', 'load', 'mkvps']), [], 'unbound queue has no driver link, no zcrypt files')
    t.false((await boundTo(m, 'cex4queue')).includes('03.000b'))

    await refused(t, m, 'echo 03.000b > bus/ap/drivers/vfio_ap/bind', 'ENODEV')
    await reads(t, m, { 'bus/ap/bindings': '8/9\n' })
    t.deepEqual(await present(m, qdir(3, 0x0b), ['driver']), [])

    await ok(t, m, 'echo 03.000b > bus/ap/drivers/cex4queue/bind')
    await reads(t, m, { 'bus/ap/bindings': '9/9 (complete)\n', [`${qdir(3, 0x0b)}/online`]: '1\n' })
    t.is(await ok(t, m, `readlink ${qdir(3, 0x0b)}/driver`), '../../../../bus/ap/drivers/cex4queue\n')

    await refused(t, m, 'echo 03.000b > bus/ap/drivers/cex4queue/bind', 'EBUSY')
    await refused(t, m, 'echo card03 > bus/ap/drivers/vfio_ap/bind', 'ENODEV')
    await refused(t, m, 'echo 99.0001 > bus/ap/drivers/vfio_ap/bind', 'ENODEV')
    await refused(t, m, 'echo 99.0001 > bus/ap/drivers/cex4queue/bind', 'ENODEV')
    await reads(t, m, { 'bus/ap/bindings': '9/9 (complete)\n' })
    await driversAre(t, m, () => 'cex4queue')
    t.is(await ok(t, m, 'readlink devices/ap/card03/driver'), '../../../bus/ap/drivers/cex4card\n')
  })
})

test('§3.1 device, subsystem and driver links are relative and exact', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'readlink bus/ap/devices/card03 bus/ap/devices/03.0004 devices/ap/card03/subsystem ' +
      'devices/ap/card03/03.0004/subsystem devices/ap/card03/driver bus/ap/drivers/cex4card/card03 bus/ap/drivers/cex4queue/03.0004 ' +
      'bus/ap/drivers/cex4queue/module bus/ap/drivers/vfio_ap/module'),
    '../../../devices/ap/card03\n../../../devices/ap/card03/03.0004\n../../../bus/ap\n../../../../bus/ap\n' +
    '../../../bus/ap/drivers/cex4card\n../../../../devices/ap/card03\n../../../../devices/ap/card03/03.0004\n' +
    '../../../../module/zcrypt_cex4\n../../../../module/vfio_ap\n')
    t.is(await ok(t, m, 'realpath --relative-to=. bus/ap/devices/05.0047'), 'devices/ap/card05/05.0047\n')
  })
})

test('§1.1 §2 §3.2 attribute modes as in sysfs; write-only files refuse reads', async t => {
  await withHost(t, BOOT_F1, async m => {
    const files = [
      'bus/ap/ap_domain', 'bus/ap/ap_control_domain_mask', 'bus/ap/ap_usage_domain_mask', 'bus/ap/ap_adapter_mask',
      'bus/ap/config_time', 'bus/ap/poll_thread', 'bus/ap/ap_interrupts', 'bus/ap/poll_timeout',
      'bus/ap/ap_max_domain_id', 'bus/ap/ap_max_adapter_id', 'bus/ap/apmask', 'bus/ap/aqmask', 'bus/ap/scans',
      'bus/ap/bindings', 'bus/ap/bindings_complete_count', 'bus/ap/features',
      'bus/ap/drivers_autoprobe', 'bus/ap/drivers_probe', 'bus/ap/uevent',
      'bus/ap/drivers/cex4queue/bind', 'bus/ap/drivers/cex4queue/unbind',
      'devices/ap/card03/config', 'devices/ap/card03/request_count', 'devices/ap/card03/online', 'devices/ap/card03/type',
      `${qdir(3, 4)}/config`, `${qdir(3, 4)}/reset`, `${qdir(3, 4)}/driver_override`, `${qdir(3, 4)}/online`, `${qdir(3, 4)}/mkvps`
    ]
    t.is(await ok(t, m, `stat -c '%a %n' ${files.join(' ')}`), [
      '644', '444', '444', '444', '644', '644', '444', '644', '444', '444', '644', '644', '644', '444', '444', '444',
      '644', '200', '200', '200', '200',
      '644', '644', '644', '444',
      '444', '644', '644', '644', '444'
    ].map((mode, i) => `${mode} ${files[i]}\n`).join(''))
    const r = await m.sh('cat bus/ap/drivers/vfio_ap/bind')
    t.true(r.code !== 0 && /^cat: bus\/ap\/drivers\/vfio_ap\/bind: Permission denied$/m.test(r.stderr), show('cat bus/ap/drivers/vfio_ap/bind', r))
    await reads(t, m, { 'devices/ap/uevent': '' })
  })
})

test('§3.3 unbind from the wrong driver and drivers_probe of an unknown name → ENODEV', async t => {
  await withHost(t, BOOT_F1, async m => {
    await refused(t, m, 'echo 03.0004 > bus/ap/drivers/vfio_ap/unbind', 'ENODEV')
    await refused(t, m, 'echo 99.0001 > bus/ap/drivers/cex4queue/unbind', 'ENODEV')
    await refused(t, m, 'echo 99.0001 > bus/ap/drivers_probe', 'ENODEV')
    await ok(t, m, 'echo 03.0004 > bus/ap/drivers_probe')
    await reads(t, m, { 'bus/ap/bindings': '9/9 (complete)\n', 'bus/ap/drivers_autoprobe': '1\n' })
    await driversAre(t, m, () => 'cex4queue')
  })
})

const OVERRIDE = 'bus/ap/devices/03.0004/driver_override'

test('§10.35 driver_override moves a queue on reprobe and locks the masks', async t => {
  await withHost(t, BOOT_F1, async m => {
    await reads(t, m, { [OVERRIDE]: '\n' })
    await ok(t, m, `echo vfio_ap > ${OVERRIDE}`)
    await reads(t, m, { [OVERRIDE]: 'vfio_ap\n' })
    t.is(await ok(t, m, `readlink ${qdir(3, 4)}/driver`), '../../../../bus/ap/drivers/cex4queue\n', 'no rebind by itself')

    await ok(t, m, 'echo 03.0004 > bus/ap/drivers/cex4queue/unbind; echo 03.0004 > bus/ap/drivers_probe')
    t.is(await ok(t, m, `readlink ${qdir(3, 4)}/driver`), '../../../../bus/ap/drivers/vfio_ap\n')
    await driversAre(t, m, (a, d) => a === 3 && d === 4 ? 'vfio_ap' : 'cex4queue')
    await reads(t, m, { 'bus/ap/bindings': '9/9 (complete)\n', 'bus/ap/apmask': ALL_ONES })

    await refused(t, m, 'echo -1 > bus/ap/apmask', 'EINVAL')
    await refused(t, m, 'echo -1 > bus/ap/aqmask', 'EINVAL')
    await reads(t, m, { 'bus/ap/apmask': ALL_ONES, 'bus/ap/aqmask': ALL_ONES, [OVERRIDE]: 'vfio_ap\n' })

    await ok(t, m, `echo > ${OVERRIDE}`)
    await reads(t, m, { [OVERRIDE]: '\n' })
    await ok(t, m, 'echo -1 > bus/ap/apmask')
    await reads(t, m, { 'bus/ap/apmask': allBut(1) })
    // the revise pass after the mask change: 03.0004 is reserved for the default driver
    // again and has no override, so it goes back to cex4queue (§1.4 step 5)
    await driversAre(t, m, () => 'cex4queue')
  })
})

test('§10.35 (6.19+) an override names the only driver that may bind', async t => {
  await withHost(t, BOOT_F1, async m => {
    await ok(t, m, `echo vfio_ap > ${OVERRIDE}`)
    await ok(t, m, 'echo 03.0004 > bus/ap/drivers/cex4queue/unbind')
    await refused(t, m, 'echo 03.0004 > bus/ap/drivers/cex4queue/bind', 'ENODEV')
    await ok(t, m, 'echo 03.0004 > bus/ap/drivers/vfio_ap/bind')
    t.is(await ok(t, m, `readlink ${qdir(3, 4)}/driver`), '../../../../bus/ap/drivers/vfio_ap\n')
  })
})

test(attrWrite, { ref: '§10.36', file: OVERRIDE, setup: 'echo -5 > bus/ap/apmask', write: 'echo vfio_ap', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: '§10.36', file: OVERRIDE, setup: 'echo -0x47 > bus/ap/aqmask', write: 'echo vfio_ap', expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: 'Erratum 3', file: OVERRIDE, write: "/usr/bin/printf 'a\\nb'", expect: { reads: 'a\n' } })
test(attrWrite, { ref: 'Erratum 3', file: OVERRIDE, write: "printf '%4095s' x", expect: { errno: 'EINVAL' } })
test(attrWrite, { ref: 'Erratum 3', file: OVERRIDE, setup: `echo vfio_ap > ${OVERRIDE}`, write: "/usr/bin/printf '\\nvfio_ap'", expect: { reads: '\n' } })

// =======================================================================================
// §10.37–39: queue attributes, mkvps, uevent files

test('§10.37 queue reset and interrupt', async t => {
  await withHost(t, BOOT_F1, async m => {
    await reads(t, m, { [`${qdir(3, 4)}/reset`]: 'No Reset Timer set.\n' })
    await ok(t, m, `echo 1 > ${qdir(3, 4)}/reset`)
    await reads(t, m, { [`${qdir(3, 4)}/interrupt`]: 'Interrupts enabled.\n' })
  })
})

test('§2.4 queue interrupt reads "Interrupts disabled." without adapter interrupts', async t => {
  await withHost(t, NO_IRQ, async m => {
    await reads(t, m, { [`${qdir(3, 4)}/interrupt`]: 'Interrupts disabled.\n' })
  })
})

const CCA_MKVPS_LINE = [
  ...['AES', 'APKA'].flatMap(k => [
    new RegExp(`^${k} NEW: ((empty|partial|full) 0x[0-9a-f]{16}|- -)$`),
    new RegExp(`^${k} CUR: ((invalid|valid) 0x[0-9a-f]{16}|- -)$`),
    new RegExp(`^${k} OLD: ((invalid|valid) 0x[0-9a-f]{16}|- -)$`)
  ]),
  /^ASYM NEW: ((empty|partial|full) 0x[0-9a-f]{32}|- -)$/,
  /^ASYM CUR: ((invalid|valid) 0x[0-9a-f]{32}|- -)$/,
  /^ASYM OLD: ((invalid|valid) 0x[0-9a-f]{32}|- -)$/
]

test('§10.38 CCA mkvps has the nine register lines', async t => {
  await withHost(t, BOOT_F1, async m => {
    const text = await m.read(`${qdir(3, 4)}/mkvps`)
    t.true(text.endsWith('\n'), JSON.stringify(text))
    const lines = text.split('\n').slice(0, -1)
    t.is(lines.length, 9, text)
    lines.forEach((line, i) => { t.regex(line, CCA_MKVPS_LINE[i] ?? /^$/, `line ${i + 1}`) })
    t.true(text.startsWith('AES NEW: empty 0x'), text)
  })
})

test('§10.38 EP11 mkvps online and offline', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.regex(await m.read(`${qdir(5, 4)}/mkvps`), /^WK CUR: valid 0x[0-9a-f]{64}\nWK NEW: empty -\n$/)
    await ok(t, m, `echo 0 > ${qdir(5, 4)}/online`)
    await reads(t, m, {
      [`${qdir(5, 4)}/online`]: '0\n',
      [`${qdir(5, 4)}/mkvps`]: 'WK CUR: - -\nWK NEW: - -\n',
      [`${qdir(5, 4)}/op_modes`]: '\n'
    })
  })
})

test('§10.39 card uevent file', async t => {
  await withHost(t, BOOT_F1, async m => {
    t.is(await ok(t, m, 'cat devices/ap/card03/uevent'),
      'DEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000E\nMODALIAS=ap:t0E\nMODE=cca\n')
  })
})

test('§2.1 queue uevent files (no DEV_TYPE/MODALIAS on queues)', async t => {
  await withHost(t, BOOT_F1, async m => {
    await reads(t, m, {
      [`${qdir(3, 4)}/uevent`]: 'DEVTYPE=ap_queue\nDRIVER=cex4queue\nMODE=cca\n',
      [`${qdir(6, 0x47)}/uevent`]: 'DEVTYPE=ap_queue\nDRIVER=cex4queue\nMODE=accel\n',
      'devices/ap/card05/uevent': 'DEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000E\nMODALIAS=ap:t0E\nMODE=ep11\n'
    })
  })
})

// =======================================================================================
// §10.40: kernel parameters

test('§10.40 ap.apmask=0xffff ap.aqmask=0x40 at boot', async t => {
  await withHost(t, { topologyYaml: f1With({ kernel_params: { 'ap.apmask': '0xffff', 'ap.aqmask': '0x40' } }) }, async m => {
    await reads(t, m, {
      'bus/ap/apmask': '0xffff000000000000000000000000000000000000000000000000000000000000\n',
      'bus/ap/aqmask': '0x4000000000000000000000000000000000000000000000000000000000000000\n',
      'bus/ap/bindings': '9/9 (complete)\n',
      // no usage domain of F1 (4, 11, 71) is in aqmask {1}: nothing to auto-select (§1.3)
      'bus/ap/ap_domain': '-1\n'
    })
    await driversAre(t, m, () => 'vfio_ap')
  })
})

test('§10.40 an invalid ap.apmask=0xZZ leaves apmask all zeros', async t => {
  await withHost(t, { topologyYaml: f1With({ kernel_params: { 'ap.apmask': '0xZZ' } }) }, async m => {
    await reads(t, m, { 'bus/ap/apmask': ALL_ZEROS, 'bus/ap/aqmask': ALL_ONES, 'bus/ap/bindings': '9/9 (complete)\n' })
    await driversAre(t, m, () => 'vfio_ap')
  })
})

test('§5.4 ap.apmask=+0-15 is relative to an all-zero mask', async t => {
  await withHost(t, { topologyYaml: f1With({ kernel_params: { 'ap.apmask': '+0-15' } }) }, async m => {
    await reads(t, m, { 'bus/ap/apmask': maskOf(range(0, 15)) })
  })
})
