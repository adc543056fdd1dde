/**
 * The vfio_ap model (lib/vfio/*) in-process, through `host.read`/`host.write`: the mdev type
 * directory and `create`, the six assign/unassign stores (every kstrtoul path, the error
 * order EINVAL/ERANGE → ENODEV → EADDRNOTAVAIL → EADDRINUSE), `matrix`/`guest_matrix`/
 * `control_domains` formats incl. the 4095-byte cap, `ap_config` and its splitter quirks,
 * `remove`, queue `status` and the in-use protection of the AP masks. Tables follow
 * /work/shared/spec/vfio-ap.md §1–§5 and the §9 scenarios without a guest (fixture TG,
 * newest profile); its Errata win. The guest-attached scenarios live in vfio-guest.test.ts.
 *
 * Every refused write is checked for its errno, an unchanged sysfs tree (every readable
 * attribute, link and listing compared before/after) and no new kernel log line unless the
 * spec names one.
 */
import test, { type ExecutionContext } from 'ava'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { SysfsError, type Errno } from '../../lib/errors.js'
import { Host } from '../../lib/host.js'
import { Sysfs } from '../../lib/sysfs.js'
import { loadTopology, topologyFrom } from '../../lib/topology.js'
import { changes, snapshot } from '../helpers/tree.js'

const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url)), 'utf8')
const TG_YAML = fixture('tg.yaml')

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const U2 = '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b'
const U3 = '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b'
const U5 = 'a1b2c3d4-e5f6-4789-8abc-def012345678'
const U6 = 'b2c3d4e5-f6a7-4890-9bcd-ef0123456789'
const U8 = 'c3d4e5f6-a7b8-4901-8cde-f01234567890'

const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`
const BUS = 'bus/ap'
const Q = (apqn: string): string => `devices/ap/card${apqn.slice(0, 2)}/${apqn}`

const CONFIG: Record<string, Array<[string, string]>> = {
  [U1]: [['assign_adapter', '5'], ['assign_adapter', '6'], ['assign_domain', '4'], ['assign_domain', '0xab']],
  [U2]: [['assign_adapter', '5'], ['assign_domain', '0x47'], ['assign_domain', '0xff']],
  [U3]: [['assign_adapter', '6'], ['assign_domain', '0x47'], ['assign_domain', '0xff']]
}
const U1_MATRIX = '05.0004\n05.00ab\n06.0004\n06.00ab\n'

const H = (digits: string): string => '0x' + digits.padEnd(64, '0')
const ZERO = H('')
const show = (s: string): string => JSON.stringify(s.length > 70 ? `${s.slice(0, 30)}…${s.slice(-20)} (${s.length} bytes)` : s)

/** Fixture TG, `echo -5,-6 > /sys/bus/ap/apmask`, then the named mdevs created in order and configured as §9.1. */
function tg (opts: { create?: string[], configure?: string[], apmask?: string[] } = {}): Host {
  const host = new Host(loadTopology(TG_YAML, 'tg.yaml'))
  host.write(`${BUS}/apmask`, '-5,-6\n')
  for (const m of opts.apmask ?? []) host.write(`${BUS}/apmask`, m)
  for (const u of opts.create ?? []) host.write(`${T}/create`, `${u}\n`)
  for (const u of opts.configure ?? []) for (const [attr, v] of CONFIG[u]) host.write(`${M}/${u}/${attr}`, `${v}\n`)
  return host
}


const klogSeq = (host: Host): number => host.klog.records().at(-1)?.seq ?? 0
const klogSince = (host: Host, seq: number): string[] => host.klog.records(seq).map(r => r.text)

/**
 * One write(2). 'ok': the full byte count comes back (and, when `log` is given, exactly
 * those kernel log lines appear). An errno: the tree is unchanged and the kernel log got
 * exactly `log` (default: nothing).
 */
function write (t: ExecutionContext, host: Host, path: string, input: string, expected: Errno | 'ok', log?: string[], what = `echo ${show(input)} > ${path}`): void {
  const k = klogSeq(host)
  if (expected === 'ok') {
    t.is(host.write(path, input), input.length, `${what}: returns the byte count`)
    if (log !== undefined) t.deepEqual(klogSince(host, k), log, `${what}: kernel log`)
    return
  }
  const before = snapshot(host)
  const e = t.throws(() => host.write(path, input), { instanceOf: SysfsError }, `${what}: expected ${expected}`)
  t.is(e?.code, expected, what)
  t.deepEqual(changes(before, snapshot(host), show), [], `${what}: nothing changed`)
  t.deepEqual(klogSince(host, k), log ?? [], `${what}: kernel log`)
}

const echo = (t: ExecutionContext, host: Host, path: string, v: string, expected: Errno | 'ok' = 'ok', log?: string[]): void =>
  write(t, host, path, `${v}\n`, expected, log, `echo ${v} > ${path}`)

const fsOf = (host: Host): Sysfs => new Sysfs(host.root)
const exists = (host: Host, path: string): boolean => { try { fsOf(host).stat(path); return true } catch { return false } }

function refused (t: ExecutionContext, fn: () => unknown, code: Errno, what: string): void {
  t.is(t.throws(fn, { instanceOf: SysfsError }, what)?.code, code, what)
}

// ---------------------------------------------------------------------------------------
// §1: the matrix device and the type directory (scenarios 1, 2, 9)

test('scenario 1/2: type attributes and matrix features', t => {
  const host = tg()
  t.is(host.read(`${T}/name`), 'VFIO AP Passthrough Device\n')
  t.is(host.read(`${T}/device_api`), 'vfio-ap\n')
  t.is(host.read(`${T}/available_instances`), '65536\n')
  t.is(host.read(`${M}/features`), 'guest_matrix hotplug ap_config\n')
  t.false(exists(host, `${T}/description`), 'vfio_ap has no description')
  t.deepEqual(fsOf(host).readdir(T).map(e => e.name), ['name', 'device_api', 'available_instances', 'create', 'devices'])
  t.deepEqual(fsOf(host).readdir(`${T}/devices`), [])
  t.deepEqual(fsOf(host).readdir('bus/matrix/drivers/vfio_ap').map(e => e.name).filter(n => n === 'bind' || n === 'unbind'), [], 'no bind/unbind on the matrix bus driver')
  t.is(fsOf(host).readlink(`${M}/driver`), '../../../bus/matrix/drivers/vfio_ap')
  t.is(fsOf(host).readlink(`${M}/subsystem`), '../../../bus/matrix')
  t.is(fsOf(host).readlink('class/mdev_bus/matrix'), '../../devices/vfio_ap/matrix')
  t.is(fsOf(host).readlink('bus/matrix/devices/matrix'), '../../../devices/vfio_ap/matrix')
})

const eacces = test.macro({
  exec (t, mode: 'read' | 'write', file: string) {
    const host = tg({ create: [U1] })
    const path = file.replace('$U', `${M}/${U1}`).replace('$T', T).replace('$M', M)
    const before = snapshot(host)
    if (mode === 'read') refused(t, () => host.read(path), 'EACCES', `cat ${path}`)
    else refused(t, () => host.write(path, '1\n'), 'EACCES', `echo 1 > ${path}`)
    t.deepEqual(changes(before, snapshot(host), show), [])
  },
  title: (_p, mode: 'read' | 'write', file: string) => `${mode === 'read' ? 'cat' : 'echo 1 >'} ${file} -> EACCES (also as root)`
})

for (const f of ['$T/create', '$U/assign_adapter', '$U/unassign_adapter', '$U/assign_domain', '$U/unassign_domain', '$U/assign_control_domain', '$U/unassign_control_domain', '$U/remove']) test(eacces, 'read', f)
for (const f of ['$T/name', '$T/device_api', '$T/available_instances', '$U/matrix', '$U/guest_matrix', '$U/control_domains', '$M/features']) test(eacces, 'write', f)

// ---------------------------------------------------------------------------------------
// create (§1.3, scenarios 3–7)

const createCase = test.macro({
  exec (t, input: string, expected: string | Errno) {
    const host = tg()
    if (expected.length === 36) {
      t.is(host.write(`${T}/create`, input), input.length)
      t.true(exists(host, `${M}/${expected}`), 'directory named by the lowercase UUID')
      t.is(fsOf(host).readlink(`${T}/devices/${expected}`), `../../../${expected}`)
      t.is(fsOf(host).readlink(`bus/mdev/devices/${expected}`), `../../../devices/vfio_ap/matrix/${expected}`)
      t.is(fsOf(host).readlink(`${M}/${expected}/mdev_type`), '../mdev_supported_types/vfio_ap-passthrough')
      t.is(host.read(`${T}/available_instances`), '65535\n')
      t.deepEqual(fsOf(host).readdir(`${T}/devices`).map(e => e.name), [expected])
      for (const f of ['matrix', 'guest_matrix', 'control_domains']) t.is(host.read(`${M}/${expected}/${f}`), '', `fresh ${f} is empty`)
      refused(t, () => host.write(`${T}/create`, `${expected}\n`), 'EEXIST', 'the same UUID again')
      refused(t, () => host.write(`${T}/create`, `${expected.toUpperCase()}\n`), 'EEXIST', 'the same UUID in uppercase')
    } else {
      write(t, host, `${T}/create`, input, expected as Errno)
      t.is(host.read(`${T}/available_instances`), '65536\n')
    }
  },
  title: (_p, input: string, expected: string) => `create ${show(input)} (${input.length} bytes) -> ${expected.length === 36 ? 'ok' : expected}`
})

for (const [input, expected] of [
  [`${U1}\n`, U1],
  [U1, U1],
  [`${U2}X`, U2],
  [`${U2}\0`, U2],
  [`${U2} `, U2],
  ['8A9B5D1E-0000-4000-8000-00000000ABCD\n', '8a9b5d1e-0000-4000-8000-00000000abcd'],
  ['00000000-0000-0000-0000-000000000000\n', '00000000-0000-0000-0000-000000000000'],
  ['ffffffff-ffff-ffff-ffff-ffffffffffff\n', 'ffffffff-ffff-ffff-ffff-ffffffffffff'],
  ['1234\n', 'EINVAL'],
  [`{${U1}}\n`, 'EINVAL'],
  [`${U1}\r\n`, 'EINVAL'],
  [`${U1}\n\n`, 'EINVAL'],
  [U1.slice(0, 35), 'EINVAL'],
  [`${U1.slice(0, 35)}\n`, 'EINVAL'],
  [` ${U1}`, 'EINVAL'],
  [`${U1.slice(0, 8)}0${U1.slice(9)}\n`, 'EINVAL'],
  [`${U1.slice(0, 7)}-${U1.slice(7, 8)}${U1.slice(9)}\n`, 'EINVAL'],
  [`g${U1.slice(1)}\n`, 'EINVAL'],
  [`${U1.slice(0, 35)}z\n`, 'EINVAL'],
  [`${U1.slice(0, 10)}\0${U1.slice(11)}\n`, 'EINVAL'],
  [U1.replace(/-/g, '') + '----\n', 'EINVAL'],
  ['\n', 'EINVAL']
] as Array<[string, string]>) test(createCase, input, expected)

test('create: a zero-length write creates nothing', t => {
  const host = tg()
  t.is(host.write(`${T}/create`, ''), 0)
  t.is(host.read(`${T}/available_instances`), '65536\n')
})

test('create: mdevs list sorted; each create takes one instance', t => {
  const host = tg({ create: [U3, U1, U2] })
  t.is(host.read(`${T}/available_instances`), '65533\n')
  t.deepEqual(fsOf(host).readdir(`${T}/devices`).map(e => e.name), [U1, U2, U3].sort())
  t.deepEqual(fsOf(host).readdir('bus/mdev/devices').map(e => e.name), [U1, U2, U3].sort())
})

// ---------------------------------------------------------------------------------------
// §2.2 number parsing, for all six assign/unassign attributes (scenarios 18–22)

const U64_MAX = (1n << 64n) - 1n

/** Inputs and the value kstrtoul(…, 0) gives (or its errno), shared by the six stores. */
const NUMBERS: Array<[string, bigint | Errno]> = [
  ['5\n', 5n],
  ['5', 5n],
  ['+5\n', 5n],
  ['0\n', 0n],
  ['010\n', 8n],
  ['077\n', 63n],
  ['0100\n', 64n],
  ['0x1f\n', 31n],
  ['0X1f\n', 31n],
  ['+0X1f\n', 31n],
  ['0x3f', 63n],
  ['63\n', 63n],
  ['64\n', 64n],
  ['255\n', 255n],
  ['0xff\n', 255n],
  ['256\n', 256n],
  ['0x100\n', 256n],
  ['5\0junk', 5n],
  ['18446744073709551615\n', U64_MAX],
  ['0xffffffffffffffff\n', U64_MAX],
  ['08\n', 'EINVAL'],
  ['09\n', 'EINVAL'],
  ['0099\n', 'EINVAL'],
  [' 5\n', 'EINVAL'],
  ['5 \n', 'EINVAL'],
  ['\t5\n', 'EINVAL'],
  ['-1\n', 'EINVAL'],
  ['-0\n', 'EINVAL'],
  ['\n', 'EINVAL'],
  ['5\n\n', 'EINVAL'],
  ['5\r\n', 'EINVAL'],
  ['5,6\n', 'EINVAL'],
  ['5 6\n', 'EINVAL'],
  ['0x\n', 'EINVAL'],
  ['0x', 'EINVAL'],
  ['abc\n', 'EINVAL'],
  ['1.5\n', 'EINVAL'],
  ['\0' + '5\n', 'EINVAL'],
  ['5\x10\n', 'EINVAL'],
  // a syntax error wins over the range: the whole buffer is parsed first
  ['256 \n', 'EINVAL'],
  ['0x100\n\n', 'EINVAL'],
  ['-256\n', 'EINVAL'],
  ['99999999999999999999\n', 'ERANGE'],
  ['99999999999999999999 ', 'ERANGE'],
  ['99999999999999999999\n\n', 'ERANGE'],
  ['0x10000000000000000\n', 'ERANGE'],
  ['18446744073709551616\n', 'ERANGE']
]

type Attr = 'assign_adapter' | 'unassign_adapter' | 'assign_domain' | 'unassign_domain' | 'assign_control_domain' | 'unassign_control_domain'
const ATTRS: Attr[] = ['assign_adapter', 'unassign_adapter', 'assign_domain', 'unassign_domain', 'assign_control_domain', 'unassign_control_domain']

const idText = (attr: Attr, id: number): string => attr.endsWith('adapter')
  ? `${id.toString(16).padStart(2, '0')}.\n`
  : attr.endsWith('control_domain') ? `${id.toString(16).padStart(4, '0')}\n` : `.${id.toString(16).padStart(4, '0')}\n`

const numberCase = test.macro({
  exec (t, attr: Attr, input: string, value: bigint | Errno) {
    const host = tg({ create: [U5] })
    const max = attr.endsWith('adapter') ? 63n : 255n
    const expected: Errno | 'ok' = typeof value === 'bigint' ? (value > max ? 'ENODEV' : 'ok') : value
    write(t, host, `${M}/${U5}/${attr}`, input, expected)
    const shown = attr.endsWith('control_domain') ? 'control_domains' : 'matrix'
    const text = host.read(`${M}/${U5}/${shown}`)
    if (expected === 'ok' && attr.startsWith('assign')) t.is(text, idText(attr, Number(value)))
    else t.is(text, '', 'nothing assigned')
  },
  title: (_p, attr: Attr, input: string, value: bigint | Errno) => {
    const max = attr.endsWith('adapter') ? 63n : 255n
    const expected = typeof value === 'bigint' ? (value > max ? 'ENODEV' : `ok (${value})`) : value
    return `${attr} ${show(input)} -> ${expected}`
  }
})

for (const attr of ATTRS) for (const [input, value] of NUMBERS) test(numberCase, attr, input, value)

test('zero-length writes to the assign attributes return 0 without a store', t => {
  const host = tg({ create: [U5] })
  const before = snapshot(host)
  for (const attr of ATTRS) t.is(host.write(`${M}/${U5}/${attr}`, ''), 0, attr)
  t.deepEqual(changes(before, snapshot(host), show), [])
})

test('maximum ids follow the host: F1 (na 255, nd 84) allows adapter 255 and refuses domain 85', t => {
  const f1 = parseYaml(fixture('f1.yaml')) as Record<string, unknown>
  const host = new Host(topologyFrom(f1, 'f1.yaml'))
  host.write(`${BUS}/apmask`, '-0-255\n')
  host.write(`${T}/create`, `${U5}\n`)
  const u = `${M}/${U5}`
  echo(t, host, `${u}/assign_adapter`, '255')
  echo(t, host, `${u}/assign_adapter`, '256', 'ENODEV')
  echo(t, host, `${u}/assign_domain`, '84')
  echo(t, host, `${u}/assign_domain`, '85', 'ENODEV')
  echo(t, host, `${u}/assign_control_domain`, '85', 'ENODEV')
  echo(t, host, `${u}/unassign_domain`, '85', 'ENODEV')
  echo(t, host, `${u}/assign_control_domain`, '84')
  t.is(host.read(`${u}/matrix`), 'ff.0054\n')
  t.is(host.read(`${u}/control_domains`), '0054\n')
  // ap_config: a control domain above adm_max (= aqm_max) -> ENODEV
  write(t, host, `${u}/ap_config`, `0x,0x,${H('0'.repeat(21) + '4')}\n`, 'ENODEV')
  write(t, host, `${u}/ap_config`, `0x,0x,${H('0'.repeat(21) + '8')}\n`, 'ok')
  t.is(host.read(`${u}/control_domains`), '0054\n')
})

test('without QCI the limits are 63/15 (vfio-ap.md §2.3)', t => {
  const host = new Host(topologyFrom({ ...(parseYaml(TG_YAML) as Record<string, unknown>), qci: false }))
  host.write(`${T}/create`, `${U5}\n`)
  echo(t, host, `${M}/${U5}/assign_domain`, '15')
  echo(t, host, `${M}/${U5}/assign_domain`, '16', 'ENODEV')
  echo(t, host, `${M}/${U5}/assign_control_domain`, '16', 'ENODEV')
  echo(t, host, `${M}/${U5}/assign_adapter`, '64', 'ENODEV')
})

// ---------------------------------------------------------------------------------------
// Assignment semantics and error order (§2.4–§2.7, scenarios 10–19, 23, 24, 39, 50)

test('scenario 10/11/12: matrix is adapter-major; guest_matrix identical without a guest', t => {
  const host = tg({ create: [U1, U2, U3], configure: [U1, U2, U3] })
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX)
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX)
  t.is(host.read(`${M}/${U2}/matrix`), '05.0047\n05.00ff\n')
  t.is(host.read(`${M}/${U3}/matrix`), '06.0047\n06.00ff\n')
})

test('scenario 13/14: only adapters -> "AA." lines; only domains -> ".DDDD" lines', t => {
  const host = tg({ create: [U5, U6] })
  echo(t, host, `${M}/${U5}/assign_adapter`, '6')
  echo(t, host, `${M}/${U5}/assign_adapter`, '5')
  t.is(host.read(`${M}/${U5}/matrix`), '05.\n06.\n')
  echo(t, host, `${M}/${U6}/assign_domain`, '0x47')
  echo(t, host, `${M}/${U6}/assign_domain`, '4')
  t.is(host.read(`${M}/${U6}/matrix`), '.0004\n.0047\n')
})

test('scenario 15: a shared APQN -> EADDRINUSE, logged on the assigning mdev', t => {
  const host = tg({ create: [U2, U3], configure: [U2] })
  echo(t, host, `${M}/${U3}/assign_domain`, '0x47')
  echo(t, host, `${M}/${U3}/assign_domain`, '0xff')
  echo(t, host, `${M}/${U3}/assign_adapter`, '5', 'EADDRINUSE', [
    `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`,
    `vfio_ap_mdev ${U3}: Userspace may not assign queue 05.00ff to mdev: already assigned to ${U2}`
  ])
  t.is(host.read(`${M}/${U3}/matrix`), '.0047\n.00ff\n')
  echo(t, host, `${M}/${U3}/assign_adapter`, '6')
})

test('scenario 16/17: a host-owned APQN -> EADDRNOTAVAIL without a log line; any adapter goes while no domain is assigned', t => {
  const a = tg({ create: [U5] })
  echo(t, a, `${M}/${U5}/assign_domain`, '4')
  echo(t, a, `${M}/${U5}/assign_adapter`, '4', 'EADDRNOTAVAIL')
  t.is(a.read(`${M}/${U5}/matrix`), '.0004\n')
  const b = tg({ create: [U5] })
  echo(t, b, `${M}/${U5}/assign_adapter`, '4')
  t.is(b.read(`${M}/${U5}/matrix`), '04.\n')
  echo(t, b, `${M}/${U5}/assign_domain`, '4', 'EADDRNOTAVAIL')
  t.is(b.read(`${M}/${U5}/matrix`), '04.\n')
  echo(t, b, `${M}/${U5}/assign_adapter`, '0x3f', 'ok', [])
  t.is(b.read(`${M}/${U5}/matrix`), '04.\n3f.\n', 'adapters absent from the host can be assigned (over-provisioning)')
})

test('scenario 18/19: the range checks', t => {
  const host = tg({ create: [U5] })
  const u = `${M}/${U5}`
  echo(t, host, `${u}/assign_adapter`, '63')
  echo(t, host, `${u}/assign_adapter`, '64', 'ENODEV')
  echo(t, host, `${u}/unassign_adapter`, '63')
  echo(t, host, `${u}/assign_domain`, '0xff')
  echo(t, host, `${u}/assign_domain`, '0x100', 'ENODEV')
  echo(t, host, `${u}/assign_control_domain`, '256', 'ENODEV')
  echo(t, host, `${u}/assign_control_domain`, '255')
  echo(t, host, `${u}/unassign_adapter`, '64', 'ENODEV')
  echo(t, host, `${u}/unassign_adapter`, '7')
  t.is(host.read(`${u}/matrix`), '.00ff\n')
  t.is(host.read(`${u}/control_domains`), '00ff\n')
})

test('error order: ENODEV before EADDRNOTAVAIL; ERANGE before ENODEV', t => {
  const host = tg({ create: [U5] })
  const u = `${M}/${U5}`
  echo(t, host, `${u}/assign_domain`, '4')
  echo(t, host, `${u}/assign_adapter`, '64', 'ENODEV')
  echo(t, host, `${u}/assign_adapter`, '0x10000000000000000', 'ERANGE')
  echo(t, host, `${u}/assign_adapter`, '4', 'EADDRNOTAVAIL')
})

test('error order: EADDRNOTAVAIL before EADDRINUSE (assign_domain over host-owned and shared APQNs)', t => {
  const host = tg({ create: [U2, U3], configure: [U2] })
  const u = `${M}/${U3}`
  echo(t, host, `${u}/assign_adapter`, '4')
  echo(t, host, `${u}/assign_adapter`, '5')
  t.is(host.read(`${u}/matrix`), '04.\n05.\n')
  echo(t, host, `${u}/assign_domain`, '0x47', 'EADDRNOTAVAIL')
  echo(t, host, `${u}/assign_domain`, '0x100', 'ENODEV')
  echo(t, host, `${u}/unassign_adapter`, '4')
  echo(t, host, `${u}/assign_domain`, '0x47', 'EADDRINUSE', [`vfio_ap_mdev ${U3}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`])
})

test('scenario 23: re-assigning an assigned id succeeds silently', t => {
  const host = tg({ create: [U1], configure: [U1] })
  const before = snapshot(host)
  const k = klogSeq(host)
  for (const [attr, v] of CONFIG[U1]) echo(t, host, `${M}/${U1}/${attr}`, v)
  t.deepEqual(changes(before, snapshot(host), show), [])
  t.deepEqual(klogSince(host, k), [])
})

test('unassign: removes the id; unassigning an unassigned id is a no-op success', t => {
  const host = tg({ create: [U1], configure: [U1] })
  const u = `${M}/${U1}`
  echo(t, host, `${u}/unassign_domain`, '0x47')
  t.is(host.read(`${u}/matrix`), U1_MATRIX)
  echo(t, host, `${u}/unassign_domain`, '0xab')
  t.is(host.read(`${u}/matrix`), '05.0004\n06.0004\n')
  echo(t, host, `${u}/unassign_adapter`, '5')
  t.is(host.read(`${u}/matrix`), '06.0004\n')
  echo(t, host, `${u}/unassign_domain`, '4')
  t.is(host.read(`${u}/matrix`), '06.\n')
  echo(t, host, `${u}/unassign_adapter`, '6')
  t.is(host.read(`${u}/matrix`), '')
})

test('scenario 24/50: control domains may be shared and over-provisioned; listed as 4 hex digits', t => {
  const host = tg({ create: [U1, U2], configure: [U1, U2] })
  echo(t, host, `${M}/${U1}/assign_control_domain`, '0x47')
  echo(t, host, `${M}/${U2}/assign_control_domain`, '0x47')
  echo(t, host, `${M}/${U1}/assign_control_domain`, '0x10')
  t.is(host.read(`${M}/${U1}/control_domains`), '0010\n0047\n')
  t.is(host.read(`${M}/${U2}/control_domains`), '0047\n')
  echo(t, host, `${M}/${U1}/assign_control_domain`, '4', 'ok', [])
  t.is(host.read(`${M}/${U1}/control_domains`), '0004\n0010\n0047\n', 'host-owned control domains are not refused')
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX, 'control domains are not part of matrix')
  const fresh = tg({ create: [U1], configure: [U1] })
  t.is(fresh.read(`${M}/${U1}/control_domains`), '')
  echo(t, fresh, `${M}/${U1}/unassign_control_domain`, '0xab')
  t.is(fresh.read(`${M}/${U1}/control_domains`), '')
})

test('scenario 39: a domain outside the host configuration is assigned but not passed through', t => {
  const host = tg({ create: [U1], configure: [U1] })
  echo(t, host, `${M}/${U1}/assign_domain`, '0x10')
  t.is(host.read(`${M}/${U1}/matrix`), '05.0004\n05.0010\n05.00ab\n06.0004\n06.0010\n06.00ab\n')
  t.is(host.read(`${M}/${U1}/guest_matrix`), U1_MATRIX)
})

test('queue status: unassigned / assigned (no guest); absent on queues vfio_ap does not own', t => {
  const host = tg({ create: [U1], configure: [U1] })
  t.is(host.read(`${Q('05.0004')}/status`), 'assigned\n')
  t.is(host.read(`${Q('06.00ab')}/status`), 'assigned\n')
  t.is(host.read(`${Q('05.0047')}/status`), 'unassigned\n')
  refused(t, () => host.read(`${Q('04.0004')}/status`), 'ENOENT', '04.0004 is on the default driver')
  refused(t, () => host.write(`${Q('05.0004')}/status`, '1\n'), 'EACCES', 'status is read-only')
})

// ---------------------------------------------------------------------------------------
// §2.9: the 4095-byte cap (scenario 43)

test('scenario 43: 512 APQNs -> 4095 bytes, the last line without its newline', t => {
  const host = tg({ apmask: ['-0-63\n'], create: [U8] })
  for (let a = 0; a < 32; a++) host.write(`${M}/${U8}/assign_adapter`, `${a}\n`)
  for (let d = 0; d < 16; d++) host.write(`${M}/${U8}/assign_domain`, `${d}\n`)
  const text = host.read(`${M}/${U8}/matrix`)
  t.is(text.length, 4095)
  t.is(text.slice(-8), '\n1f.000f')
  t.is(text.split('\n').length, 512)
  t.true(text.startsWith('00.0000\n00.0001\n'))
  echo(t, host, `${M}/${U8}/assign_domain`, '16')
  const more = host.read(`${M}/${U8}/matrix`)
  t.is(more.length, 4095, 'still capped with 544 APQNs')
  t.is(more.slice(-8), '\n1e.0001', 'adapter-major order decides what is cut')
})

test('the 4095-byte cap: 64 adapters x 256 domains', t => {
  const host = tg({ apmask: ['0x\n'], create: [U8] })
  const ff = `0x${'f'.repeat(16)},0x${'f'.repeat(64)},0x\n`
  write(t, host, `${M}/${U8}/ap_config`, ff, 'ok')
  t.is(host.read(`${M}/${U8}/matrix`).length, 4095)
  t.is(host.read(`${M}/${U8}/ap_config`), `${H('f'.repeat(16))},0x${'f'.repeat(64)},${ZERO}\n`)
})

test('control_domains is never capped: 256 domains are 1280 bytes (§2.8)', t => {
  const host = tg({ create: [U8] })
  write(t, host, `${M}/${U8}/ap_config`, `0x,0x,0x${'f'.repeat(64)}\n`, 'ok')
  const text = host.read(`${M}/${U8}/control_domains`)
  t.is(text.length, 1280)
  t.true(text.startsWith('0000\n0001\n'))
  t.true(text.endsWith('00fe\n00ff\n'))
})

// ---------------------------------------------------------------------------------------
// §5 ap_config (scenarios 8, 30–34)

const U1_AP_CONFIG = '0x0600000000000000000000000000000000000000000000000000000000000000,0x0800000000000000000000000000000000000000001000000000000000000000,0x0000000000000000000000000000000000000000000000000000000000000000\n'

test('scenario 8/30: ap_config reads three 66-byte masks, 201 bytes', t => {
  const host = tg({ create: [U1] })
  t.is(host.read(`${M}/${U1}/ap_config`), `${ZERO},${ZERO},${ZERO}\n`)
  t.is(host.read(`${M}/${U1}/ap_config`).length, 201)
  for (const [attr, v] of CONFIG[U1]) host.write(`${M}/${U1}/${attr}`, `${v}\n`)
  t.is(host.read(`${M}/${U1}/ap_config`), U1_AP_CONFIG)
})

interface ApConfigResult { matrix: string, control_domains: string }

const apConfigCase = test.macro({
  exec (t, input: string, expected: ApConfigResult | Errno) {
    const host = tg({ create: [U1], configure: [U1] })
    host.write(`${M}/${U1}/assign_control_domain`, '4\n')
    const u = `${M}/${U1}`
    if (typeof expected === 'string') {
      write(t, host, `${u}/ap_config`, input, expected)
      t.is(host.read(`${u}/matrix`), U1_MATRIX)
      t.is(host.read(`${u}/control_domains`), '0004\n')
      return
    }
    write(t, host, `${u}/ap_config`, input, 'ok')
    t.is(host.read(`${u}/matrix`), expected.matrix)
    t.is(host.read(`${u}/control_domains`), expected.control_domains)
  },
  title: (_p, input: string, expected: ApConfigResult | Errno) => `ap_config write ${show(input)} -> ${typeof expected === 'string' ? expected : show(expected.matrix + '|' + expected.control_domains)}`
})

const CFG_TAIL = U1_AP_CONFIG.slice(0, 200)
for (const [input, expected] of [
  // scenario 31, 34
  ['0x04,0x08,0x08\n', { matrix: '05.0004\n', control_domains: '0004\n' }],
  ['0x06,0x08', 'EINVAL'],
  ['0x06,0x08\n', { matrix: '05.0004\n06.0004\n', control_domains: '' }],
  ['0X06,0x08,0x\n', 'EINVAL'],
  ['0x06,0x08,0x,junk\n', { matrix: '05.0004\n06.0004\n', control_domains: '' }],
  ['0x06,0x08,0x,0X,0xZZ\n', { matrix: '05.0004\n06.0004\n', control_domains: '' }],
  ['0x06,0x08,0x08', { matrix: '05.0004\n06.0004\n', control_domains: '0004\n' }],
  ['0x06\n', 'EINVAL'],
  ['0x06', 'EINVAL'],
  ['0x06,', 'EINVAL'],
  [',,\n', { matrix: '', control_domains: '' }],
  [',,', { matrix: '', control_domains: '' }],
  ['0x,0x,0x\n', { matrix: '', control_domains: '' }],
  ['x06,x08,x\n', { matrix: '05.0004\n06.0004\n', control_domains: '' }],
  ['06,08,08\n', { matrix: '05.0004\n06.0004\n', control_domains: '0004\n' }],
  ['0x06\n0x08\n0x08\n', { matrix: '05.0004\n06.0004\n', control_domains: '0004\n' }],
  [',', 'EINVAL'],
  ['\n', 'EINVAL'],
  ['0x06 ,0x08,0x\n', 'EINVAL'],
  [' 0x06,0x08,0x\n', 'EINVAL'],
  ['0x06,0x08\r\n', 'EINVAL'],
  ['0x06,0x08,0x\r\n', 'EINVAL'],
  ['0x06,0x08,0x\n\n', { matrix: '05.0004\n06.0004\n', control_domains: '' }],
  ['0x06;0x08;0x\n', 'EINVAL'],
  ['0x06,0x08,0x\x11\n', 'EINVAL'],
  [`0x${'0'.repeat(65)},0x08,0x\n`, 'EINVAL'],
  ['0x06,0x08,0x\0junk', { matrix: '05.0004\n06.0004\n', control_domains: '' }],
  ['0x06\0,0x08,0x\n', 'EINVAL'],
  // the current configuration again is a no-op success
  [U1_AP_CONFIG.replace(/,0x0{64}\n$/, `,${H('08')}\n`), { matrix: U1_MATRIX, control_domains: '0004\n' }],
  // §5.2 step 1: only the first 201 bytes are parsed, the full count is returned
  [`${U1_AP_CONFIG}garbage that is ignored`, { matrix: U1_MATRIX, control_domains: '' }],
  [`${CFG_TAIL},junk`, { matrix: U1_MATRIX, control_domains: '' }],
  [`${CFG_TAIL}0`, 'EINVAL'],
  [`${CFG_TAIL}00`, 'EINVAL'],
  [`${CFG_TAIL}\n0x${'f'.repeat(70)}`, { matrix: U1_MATRIX, control_domains: '' }],
  // validation: host-owned first, then sharing (none here), then the range (scenario 33 order)
  ['0x08,0x08,0x\n', 'EADDRNOTAVAIL'],
  [`${H('06' + '0'.repeat(14) + '8')},0x08,0x\n`, 'EADDRNOTAVAIL'],
  ['0x0e,0x08,0x\n', 'EADDRNOTAVAIL']
] as Array<[string, ApConfigResult | Errno]>) test(apConfigCase, input, expected)

test('scenario 32: ap_config adding a shared APQN -> EADDRINUSE, all three masks unchanged', t => {
  const host = tg({ create: [U1, U2], configure: [U1, U2] })
  host.write(`${M}/${U1}/assign_control_domain`, '4\n')
  const cfg = host.read(`${M}/${U1}/ap_config`)
  write(t, host, `${M}/${U1}/ap_config`, '0x06,0x0800000000000000010000000000000000000000001000000000000000000000,0x\n', 'EADDRINUSE', [
    `vfio_ap_mdev ${U1}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`
  ])
  t.is(host.read(`${M}/${U1}/ap_config`), cfg)
})

test('scenario 33: ap_config over apm_max -> ENODEV only after the ownership and sharing checks', t => {
  const A = '0x0600000000000000800000000000000000000000000000000000000000000000'
  const D4AB = '0x0800000000000000000000000000000000000000001000000000000000000000'
  const D47 = '0x0800000000000000010000000000000000000000001000000000000000000000'
  const host = tg({ create: [U1, U2], configure: [U1, U2] })
  write(t, host, `${M}/${U1}/ap_config`, `${A},${D4AB},0x\n`, 'EADDRNOTAVAIL', [], 'adapter 64 still host-owned')
  host.write(`${BUS}/apmask`, '-64\n')
  write(t, host, `${M}/${U1}/ap_config`, `${A},${D4AB},0x\n`, 'ENODEV')
  write(t, host, `${M}/${U1}/ap_config`, `${A},${D47},0x\n`, 'EADDRINUSE', [
    `vfio_ap_mdev ${U1}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`
  ])
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX)
})

test('ap_config: EINVAL (syntax) comes before every validation', t => {
  const host = tg({ create: [U1, U2], configure: [U1, U2] })
  write(t, host, `${M}/${U1}/ap_config`, '0x08,0x08,0X\n', 'EINVAL')
  write(t, host, `${M}/${U1}/ap_config`, '0x06,0x08000000000000000100\n0x', 'EADDRINUSE', [
    `vfio_ap_mdev ${U1}: Userspace may not assign queue 05.0047 to mdev: already assigned to ${U2}`
  ])
})

test('ap_config: a zero-length write changes nothing', t => {
  const host = tg({ create: [U1], configure: [U1] })
  t.is(host.write(`${M}/${U1}/ap_config`, ''), 0)
  t.is(host.read(`${M}/${U1}/matrix`), U1_MATRIX)
})

// ---------------------------------------------------------------------------------------
// §2.10 remove (scenario 44)

const removeCase = test.macro({
  exec (t, input: string, expected: 'removed' | 'kept' | Errno) {
    const host = tg({ create: [U1], configure: [U1] })
    if (expected === 'removed' || expected === 'kept') write(t, host, `${M}/${U1}/remove`, input, 'ok')
    else write(t, host, `${M}/${U1}/remove`, input, expected)
    t.is(exists(host, `${M}/${U1}`), expected !== 'removed')
  },
  title: (_p, input: string, expected: string) => `remove write ${show(input)} -> ${expected}`
})

for (const [input, expected] of [
  ['0\n', 'kept'],
  ['0', 'kept'],
  ['00\n', 'kept'],
  ['0x0\n', 'kept'],
  ['+0\n', 'kept'],
  ['1\n', 'removed'],
  ['1', 'removed'],
  ['2\n', 'removed'],
  ['0x10\n', 'removed'],
  ['+1\n', 'removed'],
  ['18446744073709551615\n', 'removed'],
  ['yes\n', 'EINVAL'],
  ['-1\n', 'EINVAL'],
  [' 1\n', 'EINVAL'],
  ['1 \n', 'EINVAL'],
  ['1\n\n', 'EINVAL'],
  ['\n', 'EINVAL'],
  ['08\n', 'EINVAL'],
  ['99999999999999999999\n', 'EINVAL'],
  ['0x10000000000000000\n', 'EINVAL']
] as Array<[string, 'removed' | 'kept' | Errno]>) test(removeCase, input, expected)

test('scenario 44: removal takes the directory and every link; the UUID can be created again', t => {
  const host = tg({ create: [U1, U2], configure: [U1] })
  echo(t, host, `${M}/${U1}/remove`, '0')
  t.is(host.read(`${T}/available_instances`), '65534\n')
  echo(t, host, `${M}/${U1}/remove`, '1')
  t.is(host.read(`${T}/available_instances`), '65535\n')
  for (const p of [`${M}/${U1}`, `${T}/devices/${U1}`, `bus/mdev/devices/${U1}`, `bus/mdev/drivers/vfio_ap_mdev/${U1}`]) t.false(exists(host, p), p)
  t.deepEqual(fsOf(host).readdir(`${T}/devices`).map(e => e.name), [U2])
  t.is(host.read(`${Q('05.0004')}/status`), 'unassigned\n')
  echo(t, host, `${T}/create`, U1)
  t.is(host.read(`${M}/${U1}/matrix`), '', 'a re-created mdev starts empty')
  echo(t, host, `${M}/${U1}/assign_adapter`, '5')
  echo(t, host, `${M}/${U1}/assign_domain`, '4')
})

// ---------------------------------------------------------------------------------------
// §4.1 in-use protection of apmask/aqmask (scenarios 25–29)

test('scenario 25: +5 > apmask -> EBUSY, logged only for the newest overlapping mdev (U2)', t => {
  const host = tg({ create: [U1, U2, U3], configure: [U1, U2, U3] })
  write(t, host, `${BUS}/apmask`, '+5\n', 'EBUSY', [
    `vfio_ap_mdev ${U2}: Can not reserve queue 05.0047 for host driver: in use by mdev`,
    `vfio_ap_mdev ${U2}: Can not reserve queue 05.00ff for host driver: in use by mdev`
  ])
  t.is(host.read(`${BUS}/apmask`), '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
})

test('scenario 26/27: clearing is never refused; setting bits no mdev uses succeeds', t => {
  const host = tg({ create: [U1, U2, U3], configure: [U1, U2, U3] })
  write(t, host, `${BUS}/apmask`, '-4\n', 'ok')
  for (const d of ['0004', '0047', '00ab', '00ff']) t.is(host.read(`${Q(`04.${d}`)}/status`), 'unassigned\n')
  write(t, host, `${BUS}/apmask`, '+4\n', 'ok')
  for (const d of ['0004', '0047', '00ab', '00ff']) {
    t.false(exists(host, `${Q(`04.${d}`)}/status`))
    t.is(fsOf(host).readlink(`${Q(`04.${d}`)}/driver`), '../../../../bus/ap/drivers/cex4queue')
  }
})

test('scenario 28: mask syntax errors -> EINVAL', t => {
  const host = tg()
  for (const v of ['+5 ', '+256', '+3-1']) write(t, host, `${BUS}/apmask`, `${v}\n`, 'EINVAL')
})

test('scenario 29: aqmask in-use refusal names the mdev that holds the domain', t => {
  const host = tg({ create: [U1], configure: [U1] })
  write(t, host, `${BUS}/aqmask`, '-0x47\n', 'ok')
  host.write(`${T}/create`, `${U6}\n`)
  echo(t, host, `${M}/${U6}/assign_adapter`, '4')
  echo(t, host, `${M}/${U6}/assign_domain`, '0x47')
  write(t, host, `${BUS}/aqmask`, '+0x47\n', 'EBUSY', [`vfio_ap_mdev ${U6}: Can not reserve queue 04.0047 for host driver: in use by mdev`])
})

test('mask in-use check ignores control domains', t => {
  const host = tg({ create: [U5] })
  host.write(`${BUS}/aqmask`, '-0x10\n')
  echo(t, host, `${M}/${U5}/assign_control_domain`, '0x10')
  write(t, host, `${BUS}/aqmask`, '+0x10\n', 'ok')
})

test('create: the 65537th mdev is refused with EUSERS; removing one frees an instance and its IOMMU group', t => {
  const host = tg()
  const uuid = (i: number): string => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`
  for (let i = 0; i < 65536; i++) host.write(`${T}/create`, uuid(i))
  t.is(host.read(`${T}/available_instances`), '0\n')
  refused(t, () => host.write(`${T}/create`, uuid(65536)), 'EUSERS', 'create beyond 65536 mdevs')
  host.write(`${M}/${uuid(7)}/remove`, '1')
  t.is(host.read(`${T}/available_instances`), '1\n')
  host.write(`${T}/create`, uuid(65536))
  t.is(new Sysfs(host.root).readlink(`${M}/${uuid(65536)}/iommu_group`), '../../../../kernel/iommu_groups/7')
})
