/**
 * The AP bus model (lib/ap/*) in-process, through `host.read`/`host.write` exactly as
 * `cat`/`echo` reach it: the /sys/bus/ap attributes, the mask stores and their side
 * effects, bind/unbind, card/queue stores and kernel parameters. Tables follow
 * /work/shared/spec/ap-bus.md §1, §2.4, §3.3, §5.1 and the §10 scenarios on fixture F1;
 * its Errata win. Every refused write is checked for its errno, for an unchanged sysfs tree
 * (every readable attribute, link and directory listing compared before/after) and for no
 * uevent.
 */
import test, { type ExecutionContext } from 'ava'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { SysfsError, type Errno } from '../../lib/errors.js'
import { Host } from '../../lib/host.js'
import { Sysfs } from '../../lib/sysfs.js'
import { topologyFrom } from '../../lib/topology.js'
import { changes, snapshot } from '../helpers/tree.js'

// ---------------------------------------------------------------------------------------
// Fixture F1 and its variants

const F1 = parseYaml(readFileSync(fileURLToPath(new URL('../../../test/fixtures/f1.yaml', import.meta.url)), 'utf8')) as Record<string, unknown>

const VARIANTS: Record<string, Record<string, unknown>> = {
  F1: {},
  'F1 no interrupts': { interrupts: false },
  'F1 useirq=0': { kernel_params: { 'ap.useirq': false } },
  'F1 z/VM': { host: 'zvm' },
  'F1 no QCI': { qci: false },
  'F1 QCI without APXA': { qci: { features: ['APSC', 'QACT', 'RC8A'], max_adapter_id: 255, max_domain_id: 84 } },
  'F1 APXA with na=nd=0': { qci: { features: ['APSC', 'APXA'], max_adapter_id: 0, max_domain_id: 0 } },
  'F1 no QCI features': { qci: { features: [], max_adapter_id: 255, max_domain_id: 84 } },
  'F1 SE features': { qci: { features: ['APSB', 'RC8A', 'APSC', 'QACT', 'APXA'], max_adapter_id: 255, max_domain_id: 84 } },
  'F1 no adapters': { adapters: [] }
}
type Variant = keyof typeof VARIANTS

const boot = (variant: Variant = 'F1', patch: Record<string, unknown> = {}): Host =>
  new Host(topologyFrom({ ...F1, ...VARIANTS[variant], ...patch }, variant))

const BUS = 'bus/ap'
const Q = (apqn: string): string => `devices/ap/card${apqn.slice(0, 2)}/${apqn}`
const C = (id: string): string => `devices/ap/card${id}`

const H = (digits: string): string => '0x' + digits.padEnd(64, '0')
const F = (n: number): string => 'f'.repeat(n)
const ZERO = H('')
const ALL = H(F(64))

const show = (s: string): string => JSON.stringify(s)


const lastSeq = (host: Host): number => host.uevents.records().at(-1)?.seq ?? 0
const lastKlog = (host: Host): number => host.klog.records().at(-1)?.seq ?? 0

/**
 * Writes `input` (one write(2)); `expected` is an errno, or 'ok' (the full byte count must
 * come back). A refused write must leave the tree unchanged and send no uevent.
 */
function write (t: ExecutionContext, host: Host, path: string, input: string, expected: Errno | 'ok', what = `echo ${show(input)} > ${path}`): void {
  if (expected === 'ok') {
    t.is(host.write(path, input), input.length, `${what}: returns the byte count`)
    return
  }
  const before = snapshot(host)
  const seq = lastSeq(host)
  const e = t.throws(() => host.write(path, input), { instanceOf: SysfsError }, `${what}: expected ${expected}`)
  t.is(e?.code, expected, what)
  t.deepEqual(changes(before, snapshot(host)), [], `${what}: nothing changed`)
  t.deepEqual(host.uevents.records(seq), [], `${what}: no uevent`)
}

/** Expects `open` to refuse with `code`. */
function refused (t: ExecutionContext, fn: () => unknown, code: Errno, what: string): void {
  const e = t.throws(fn, { instanceOf: SysfsError }, what)
  t.is(e?.code, code, what)
}

const linkTarget = (host: Host, path: string): string | undefined => {
  try { return new Sysfs(host.root).readlink(path) } catch { return undefined }
}
const ls = (host: Host, path: string): string[] => new Sysfs(host.root).readdir(path).map(e => e.name)
const exists = (host: Host, path: string): boolean => { try { new Sysfs(host.root).stat(path); return true } catch { return false } }

// ---------------------------------------------------------------------------------------
// Reads after boot (scenarios 1–7) and their variants

const readCase = test.macro({
  exec (t, variant: Variant, path: string, expected: string) { t.is(boot(variant).read(path), expected) },
  title: (_p, variant: Variant, path: string, expected: string) => `${variant}: cat ${path} -> ${show(expected)}`
})

for (const [variant, path, expected] of [
  ['F1', `${BUS}/apmask`, ALL + '\n'],
  ['F1', `${BUS}/aqmask`, ALL + '\n'],
  ['F1', `${BUS}/ap_adapter_mask`, '0x1600000000000000000000000000000000000000000000000000000000000000\n'],
  ['F1', `${BUS}/ap_usage_domain_mask`, '0x0810000000000000010000000000000000000000000000000000000000000000\n'],
  ['F1', `${BUS}/ap_control_domain_mask`, '0x0810000000000000010000000000000000000000000000000000000000000000\n'],
  ['F1', `${BUS}/ap_max_adapter_id`, '255\n'],
  ['F1', `${BUS}/ap_max_domain_id`, '84\n'],
  ['F1', `${BUS}/features`, 'APSC APXA QACT RC8A\n'],
  ['F1', `${BUS}/bindings`, '9/9 (complete)\n'],
  ['F1', `${BUS}/bindings_complete_count`, '1\n'],
  ['F1', `${BUS}/scans`, '1\n'],
  ['F1', `${BUS}/ap_domain`, '4\n'],
  ['F1', `${BUS}/config_time`, '30\n'],
  ['F1', `${BUS}/poll_thread`, '0\n'],
  ['F1', `${BUS}/ap_interrupts`, '1\n'],
  ['F1', `${BUS}/poll_timeout`, '250000\n'],
  ['F1', `${BUS}/drivers_autoprobe`, '1\n'],
  ['F1', 'devices/ap/uevent', ''],
  ['F1 no interrupts', `${BUS}/ap_interrupts`, '0\n'],
  ['F1 useirq=0', `${BUS}/ap_interrupts`, '0\n'],
  ['F1 z/VM', `${BUS}/poll_timeout`, '1500000\n'],
  ['F1 no QCI', `${BUS}/ap_max_adapter_id`, '63\n'],
  ['F1 no QCI', `${BUS}/ap_max_domain_id`, '15\n'],
  ['F1 no QCI', `${BUS}/ap_adapter_mask`, 'not supported\n'],
  ['F1 no QCI', `${BUS}/ap_usage_domain_mask`, 'not supported\n'],
  ['F1 no QCI', `${BUS}/ap_control_domain_mask`, 'not supported\n'],
  ['F1 no QCI', `${BUS}/features`, '-\n'],
  ['F1 QCI without APXA', `${BUS}/ap_max_adapter_id`, '63\n'],
  ['F1 QCI without APXA', `${BUS}/ap_max_domain_id`, '15\n'],
  ['F1 QCI without APXA', `${BUS}/features`, 'APSC QACT RC8A\n'],
  ['F1 APXA with na=nd=0', `${BUS}/ap_max_adapter_id`, '63\n'],
  ['F1 APXA with na=nd=0', `${BUS}/ap_max_domain_id`, '15\n'],
  ['F1 no QCI features', `${BUS}/features`, ''],
  ['F1 SE features', `${BUS}/features`, 'APSC APXA QACT RC8A APSB\n'],
  ['F1 no adapters', `${BUS}/bindings`, '0/0 (complete)\n'],
  ['F1 no adapters', `${BUS}/ap_domain`, '-1\n'],
  // scenario 29 and 39 (card attributes)
  ['F1', `${C('03')}/hwtype`, '14\n'],
  ['F1', `${C('03')}/raw_hwtype`, '14\n'],
  ['F1', `${C('03')}/modalias`, 'ap:t0E\n'],
  ['F1', `${C('03')}/ap_functions`, '0x92800000\n'],
  ['F1', `${C('03')}/type`, 'CEX8C\n'],
  ['F1', `${C('03')}/config`, '1\n'],
  ['F1', `${C('03')}/chkstop`, '0\n'],
  ['F1', `${C('03')}/online`, '1\n'],
  ['F1', `${C('03')}/max_msg_size`, '12288\n'],
  ['F1', `${C('05')}/type`, 'CEX8P\n'],
  ['F1', `${C('06')}/type`, 'CEX8A\n'],
  ['F1', `${C('03')}/uevent`, 'DEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000E\nMODALIAS=ap:t0E\nMODE=cca\n'],
  // scenario 37 (queue attributes)
  ['F1', `${Q('03.0004')}/reset`, 'No Reset Timer set.\n'],
  ['F1', `${Q('03.0004')}/interrupt`, 'Interrupts enabled.\n'],
  ['F1', `${Q('03.0004')}/config`, '1\n'],
  ['F1', `${Q('03.0004')}/online`, '1\n'],
  ['F1', `${Q('03.0004')}/request_count`, '0\n'],
  ['F1', `${Q('03.0004')}/driver_override`, '\n'],
  ['F1', `${Q('03.0004')}/ap_functions`, '0x92800000\n']
] as Array<[Variant, string, string]>) test(readCase, variant, path, expected)

test('F1 boots 9 queue devices, all on cex4queue, cards on cex4card (scenario 6)', t => {
  const host = boot()
  const devices = ls(host, `${BUS}/devices`)
  t.deepEqual(devices, ['card03', '03.0004', '03.000b', '03.0047', 'card05', '05.0004', '05.000b', '05.0047', 'card06', '06.0004', '06.000b', '06.0047'])
  t.is(linkTarget(host, `${BUS}/devices/card03`), '../../../devices/ap/card03')
  t.is(linkTarget(host, `${BUS}/devices/03.0004`), '../../../devices/ap/card03/03.0004')
  t.is(linkTarget(host, `${C('03')}/driver`), '../../../bus/ap/drivers/cex4card')
  t.is(linkTarget(host, `${Q('06.0047')}/driver`), '../../../../bus/ap/drivers/cex4queue')
  t.is(linkTarget(host, `${Q('06.0047')}/subsystem`), '../../../../bus/ap')
  t.deepEqual(ls(host, `${BUS}/drivers/vfio_ap`), ['bind', 'unbind', 'uevent', 'module'])
})

// ---------------------------------------------------------------------------------------
// EACCES from open, even for root (scenario 28)

const eaccesCase = test.macro({
  exec (t, mode: 'read' | 'write', path: string) {
    const host = boot()
    const before = snapshot(host)
    if (mode === 'write') refused(t, () => host.write(path, '1\n'), 'EACCES', `echo 1 > ${path}`)
    else refused(t, () => host.read(path), 'EACCES', `cat ${path}`)
    t.deepEqual(changes(before, snapshot(host)), [])
  },
  title: (_p, mode: 'read' | 'write', path: string) => `${mode === 'read' ? 'cat' : 'echo 1 >'} ${path} -> EACCES`
})

for (const path of [
  'ap_control_domain_mask', 'ap_usage_domain_mask', 'ap_adapter_mask', 'ap_interrupts', 'ap_max_domain_id',
  'ap_max_adapter_id', 'bindings', 'bindings_complete_count', 'features'
]) test(eaccesCase, 'write', `${BUS}/${path}`)
for (const path of [
  `${Q('03.0004')}/config`, `${Q('03.0004')}/chkstop`, `${Q('03.0004')}/interrupt`, `${Q('03.0004')}/ap_functions`,
  `${Q('03.0004')}/mkvps`, `${Q('03.0004')}/load`, `${Q('03.0004')}/requestq_count`, `${C('03')}/hwtype`, `${C('03')}/type`,
  `${C('03')}/chkstop`, `${C('03')}/ap_functions`, `${C('03')}/load`, 'module/ap/parameters/apmask'
]) test(eaccesCase, 'write', path)
for (const path of [
  `${BUS}/drivers_probe`, `${BUS}/uevent`, `${BUS}/drivers/cex4queue/bind`, `${BUS}/drivers/cex4queue/unbind`,
  `${BUS}/drivers/vfio_ap/bind`, `${BUS}/drivers/cex4card/uevent`
]) test(eaccesCase, 'read', path)

// ---------------------------------------------------------------------------------------
// apmask / aqmask stores (§1.4, scenarios 8–20, 28)

const maskStore = test.macro({
  exec (t, which: 'apmask' | 'aqmask', from: string, input: string, expected: string | Errno) {
    const host = boot()
    const path = `${BUS}/${which}`
    if (from !== ALL) host.write(path, from + '\n')
    t.is(host.read(path), from + '\n', 'starting mask')
    if (expected.startsWith('0x')) {
      t.is(host.write(path, input), input.length, 'the full byte count, trailing newline and bytes after a NUL included')
      t.is(host.read(path), expected + '\n')
      t.is(host.read(path).length, 67)
    } else {
      write(t, host, path, input, expected as Errno)
      t.is(host.read(path), from + '\n', 'mask unchanged')
    }
  },
  title: (_p, which: string, from: string, input: string, expected: string) =>
    `${which} ${from === ALL ? 'all' : from === ZERO ? 'zero' : from.slice(0, 8)}: write ${show(input)} -> ${expected.startsWith('0x') ? expected.slice(0, 12) + '…' : expected}`
})

for (const [which, from, input, expected] of [
  ['apmask', ALL, '-5,-6\n', H('f9' + F(62))],
  ['apmask', H('f9' + F(62)), '+5\n', H('fd' + F(62))],
  ['apmask', ALL, '0x41\n', H('41')],
  ['apmask', ALL, '41\n', H('41')],
  ['apmask', ALL, 'x41\n', H('41')],
  ['apmask', ALL, '0X41\n', 'EINVAL'],
  ['apmask', ALL, '0x' + F(65) + '\n', 'EINVAL'],
  ['apmask', ZERO, '0x' + F(64) + '\n', ALL],
  ['apmask', ALL, '0xff \n', 'EINVAL'],
  ['apmask', ALL, '0xff\n\n', 'EINVAL'],
  ['apmask', ALL, '0xff', H('ff')],
  ['apmask', ALL, '0xff\r\n', 'EINVAL'],
  ['apmask', ALL, '\n', ZERO],
  ['apmask', ALL, '0x\n', ZERO],
  ['apmask', ALL, 'x', ZERO],
  ['apmask', ALL, '0\n', ZERO],
  ['apmask', ALL, '5\n', H('5')],
  ['apmask', ALL, '0xff\0garbage', H('ff')],
  ['apmask', ALL, '\0garbage', ZERO],
  ['apmask', ZERO, '+0-15\n', H(F(4))],
  ['apmask', ZERO, '+010\n', H('008')],
  ['apmask', ZERO, '+08\n', 'EINVAL'],
  ['apmask', ZERO, '+1+2\n', H('6')],
  ['apmask', ZERO, '+1, +2\n', 'EINVAL'],
  ['apmask', ZERO, '+1,,+2,\n', H('6')],
  ['apmask', ALL, '-3\n\n', H('e' + F(63))],
  ['apmask', ZERO, '+5-3\n', 'EINVAL'],
  ['apmask', ZERO, '+3-1\n', 'EINVAL'],
  ['apmask', ZERO, '+256\n', 'EINVAL'],
  ['apmask', ALL, '+5 \n', 'EINVAL'],
  ['apmask', ZERO, '+0-255\n', ALL],
  ['apmask', ALL, '-0x10\n', H(F(4) + '7' + F(59))],
  ['apmask', ZERO, '+18446744073709551617\n', H('4')],
  ['apmask', ZERO, '+18446744073709551872\n', 'EINVAL'],
  ['apmask', ALL, ' -1\n', 'EINVAL'],
  ['apmask', ALL, '-1 \n', 'EINVAL'],
  ['apmask', ALL, '-0x\n', 'EINVAL'],
  ['apmask', ALL, '0x\x11\n', 'EINVAL'],
  ['apmask', ZERO, '+\x11\n', 'EINVAL'],
  ['aqmask', ALL, '-4,-0x47,-0xab,-0xff\n', '0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe'],
  ['aqmask', ALL, '0x40\n', H('4')],
  ['aqmask', ALL, '0X40\n', 'EINVAL'],
  ['aqmask', ALL, '-256\n', 'EINVAL'],
  ['aqmask', ZERO, '+0-15,-8-15\n', H('ff')],
  ['aqmask', ALL, '\n', ZERO]
] as Array<['apmask' | 'aqmask', string, string, string]>) test(maskStore, which, from, input, expected)

test('a zero-length write to apmask returns 0 and never reaches the parser (§1.4 rule 6)', t => {
  const host = boot()
  const before = snapshot(host)
  const seq = lastSeq(host)
  t.is(host.write(`${BUS}/apmask`, ''), 0)
  t.deepEqual(changes(before, snapshot(host)), [])
  t.deepEqual(host.uevents.records(seq), [])
})

test('scenario 8: echo -5,-6 > apmask moves 05.* and 06.* to vfio_ap', t => {
  const host = boot()
  const seq = lastSeq(host)
  t.is(host.write(`${BUS}/apmask`, '-5,-6\n'), 6)
  t.is(host.read(`${BUS}/apmask`), '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
  for (const q of ['05.0004', '05.000b', '05.0047', '06.0004', '06.000b', '06.0047']) {
    t.is(linkTarget(host, `${Q(q)}/driver`), '../../../../bus/ap/drivers/vfio_ap', q)
    for (const gone of ['online', 'load', 'mkvps', 'op_modes']) t.false(exists(host, `${Q(q)}/${gone}`), `${q}/${gone} vanished`)
    t.is(host.read(`${Q(q)}/status`), 'unassigned\n')
    t.is(host.read(`${Q(q)}/request_count`), '-\n')
  }
  for (const q of ['03.0004', '03.000b', '03.0047']) {
    t.is(linkTarget(host, `${Q(q)}/driver`), '../../../../bus/ap/drivers/cex4queue', q)
    t.false(exists(host, `${Q(q)}/status`))
  }
  t.deepEqual(ls(host, `${BUS}/drivers/vfio_ap`).filter(n => n.includes('.')), ['05.0004', '05.000b', '05.0047', '06.0004', '06.000b', '06.0047'])
  t.is(linkTarget(host, `${BUS}/drivers/vfio_ap/05.0004`), '../../../../devices/ap/card05/05.0004')
  t.is(host.read(`${C('05')}/type`), 'CEX8P\n')
  t.is(host.read(`${C('06')}/online`), '1\n')
  t.is(linkTarget(host, `${C('05')}/driver`), '../../../bus/ap/drivers/cex4card')
  const maskEvents = host.uevents.records(seq).filter(e => e.env.some(([k]) => k === 'APMASK'))
  t.deepEqual(maskEvents.map(e => [e.action, e.devpath, e.subsystem, e.env]), [
    ['change', '/devices/ap', 'ap', [['APMASK', '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n']]]
  ], 'one change uevent on /devices/ap whose value ends with a newline')
  t.is(host.read(`${BUS}/bindings`), '9/9 (complete)\n')
})

test('scenario 9: echo +5 > apmask returns 05.* to cex4queue, online again', t => {
  const host = boot()
  host.write(`${BUS}/apmask`, '-5,-6\n')
  t.is(host.write(`${BUS}/apmask`, '+5\n'), 3)
  t.is(host.read(`${BUS}/apmask`), H('fd' + F(62)) + '\n')
  for (const q of ['05.0004', '05.000b', '05.0047']) {
    t.is(linkTarget(host, `${Q(q)}/driver`), '../../../../bus/ap/drivers/cex4queue')
    t.is(host.read(`${Q(q)}/online`), '1\n')
    t.regex(host.read(`${Q(q)}/request_count`), /^\d+\n$/)
    t.false(exists(host, `${Q(q)}/status`))
  }
  t.is(linkTarget(host, `${Q('06.0004')}/driver`), '../../../../bus/ap/drivers/vfio_ap')
})

test('scenario 15: echo > apmask takes every queue away from zcrypt', t => {
  const host = boot()
  t.is(host.write(`${BUS}/apmask`, '\n'), 1)
  t.is(host.read(`${BUS}/apmask`), ZERO + '\n')
  t.deepEqual(ls(host, `${BUS}/drivers/vfio_ap`).filter(n => n.includes('.')).length, 9)
  t.deepEqual(ls(host, `${BUS}/drivers/cex4queue`).filter(n => n.includes('.')), [])
  t.deepEqual(ls(host, `${BUS}/drivers/cex4card`).filter(n => n.startsWith('card')), ['card03', 'card05', 'card06'], 'cards are not subject to the masks')
})

test('scenario 22: a write that does not change the mask succeeds without uevent or rebinding', t => {
  const host = boot()
  host.write(`${BUS}/apmask`, '-5\n')
  const before = snapshot(host)
  const seq = lastSeq(host)
  t.is(host.write(`${BUS}/apmask`, '-5\n'), 3)
  t.is(host.write(`${BUS}/apmask`, H('fb' + F(62)) + '\n'), 67)
  t.is(host.write(`${BUS}/apmask`, '+0-4,+6-255,-5\n'), 15)
  t.deepEqual(host.uevents.records(seq), [])
  t.deepEqual(changes(before, snapshot(host)), [])
})

test('aqmask: -0x47 moves *.0047 to vfio_ap, other domains stay (scenario 20)', t => {
  const host = boot()
  t.is(host.write(`${BUS}/aqmask`, '-4,-0x47,-0xab,-0xff\n'), 21)
  for (const q of ['03.0004', '05.0047', '06.0004']) t.is(linkTarget(host, `${Q(q)}/driver`), '../../../../bus/ap/drivers/vfio_ap', q)
  for (const q of ['03.000b', '05.000b', '06.000b']) t.is(linkTarget(host, `${Q(q)}/driver`), '../../../../bus/ap/drivers/cex4queue', q)
  const ev = host.uevents.records().filter(e => e.env.some(([k]) => k === 'AQMASK'))
  t.deepEqual(ev.at(-1)?.env, [['AQMASK', '0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe\n']])
})

// In-use refusal (scenario 21, vfio-ap.md Errata 2 for the 6.19 rule)

const U = '0b0c0d0e-1111-4222-8333-444455556666'
const MATRIX = 'devices/vfio_ap/matrix'
const TYPE = `${MATRIX}/mdev_supported_types/vfio_ap-passthrough`

function withMdev (aqmask?: string): Host {
  const host = boot()
  host.write(`${BUS}/apmask`, '-5,-6\n')
  if (aqmask !== undefined) host.write(`${BUS}/aqmask`, aqmask)
  host.write(`${TYPE}/create`, U + '\n')
  host.write(`${MATRIX}/${U}/assign_adapter`, '5\n')
  host.write(`${MATRIX}/${U}/assign_domain`, '4\n')
  return host
}

test('scenario 21: +5 > apmask while an mdev holds 05.0004 -> EBUSY, mask unchanged, one log line per APQN', t => {
  const host = withMdev()
  const k = lastKlog(host)
  write(t, host, `${BUS}/apmask`, '+5\n', 'EBUSY')
  t.is(host.read(`${BUS}/apmask`), H('f9' + F(62)) + '\n')
  t.deepEqual(host.klog.records(k).map(r => [r.level, r.text]), [
    ['warn', `vfio_ap_mdev ${U}: Can not reserve queue 05.0004 for host driver: in use by mdev`]
  ])
  // A syntax error is found before the in-use check; clearing is never refused; other adapters are free.
  write(t, host, `${BUS}/apmask`, '+5 \n', 'EINVAL')
  write(t, host, `${BUS}/apmask`, '0xff\n', 'EBUSY', 'absolute mask reserving adapter 5')
  write(t, host, `${BUS}/apmask`, '+6\n', 'ok')
  write(t, host, `${BUS}/apmask`, '-0-4\n', 'ok')
  write(t, host, `${BUS}/aqmask`, '-0-255\n', 'ok')
  write(t, host, `${BUS}/aqmask`, '+4\n', 'EBUSY', 'aqmask reserving domain 4 while adapter 5 is unreserved (6.19: all 256 adapters)')
  write(t, host, `${BUS}/aqmask`, '+5-255\n', 'ok')
})

test('scenario 21 (6.19 rule): EBUSY even when aqmask bit 4 is clear', t => {
  const host = withMdev('-4\n')
  write(t, host, `${BUS}/apmask`, '+5\n', 'EBUSY')
})

// driver_override ↔ masks (scenarios 35, 36; Errata 3)

test('scenario 35: driver_override, drivers_probe, and masks refused while an override exists', t => {
  const host = boot()
  const dov = `${Q('03.0004')}/driver_override`
  write(t, host, dov, 'vfio_ap\n', 'ok')
  t.is(host.read(dov), 'vfio_ap\n')
  t.is(linkTarget(host, `${Q('03.0004')}/driver`), '../../../../bus/ap/drivers/cex4queue', 'setting an override does not rebind')
  write(t, host, `${BUS}/drivers/cex4queue/unbind`, '03.0004\n', 'ok')
  write(t, host, `${BUS}/drivers_probe`, '03.0004\n', 'ok')
  t.is(linkTarget(host, `${Q('03.0004')}/driver`), '../../../../bus/ap/drivers/vfio_ap')
  write(t, host, `${BUS}/apmask`, '-1\n', 'EINVAL')
  write(t, host, `${BUS}/aqmask`, '0x\n', 'EINVAL')
  write(t, host, `${BUS}/apmask`, 'garbage\n', 'EINVAL')
  write(t, host, dov, '\n', 'ok')
  t.is(host.read(dov), '\n')
  write(t, host, `${BUS}/apmask`, '-1\n', 'ok')
})

test('scenario 36: driver_override is refused while a mask is not all ones', t => {
  const host = boot()
  host.write(`${BUS}/apmask`, '-5\n')
  write(t, host, `${Q('03.0004')}/driver_override`, 'vfio_ap\n', 'EINVAL')
  write(t, host, `${Q('03.0004')}/driver_override`, '\n', 'EINVAL')
  host.write(`${BUS}/apmask`, '+5\n')
  write(t, host, `${Q('03.0004')}/driver_override`, 'vfio_ap\n', 'ok')
})

const overrideCase = test.macro({
  exec (t, input: string, expected: string | Errno) {
    const host = boot()
    const path = `${Q('03.0004')}/driver_override`
    if (expected === 'EINVAL') {
      write(t, host, path, input, 'EINVAL')
      return
    }
    write(t, host, path, input, 'ok')
    t.is(host.read(path), expected)
    // An override blocks mask writes exactly when one is set.
    const set = expected !== '\n'
    if (set) write(t, host, `${BUS}/apmask`, '-1\n', 'EINVAL')
    else write(t, host, `${BUS}/apmask`, '-1\n', 'ok')
  },
  title: (_p, input: string, expected: string) => `driver_override write ${show(input.length > 20 ? `${input.slice(0, 8)}…(${input.length} bytes)` : input)} -> ${show(expected)}`
})

for (const [input, expected] of [
  ['vfio_ap\n', 'vfio_ap\n'],
  ['vfio_ap', 'vfio_ap\n'],
  ['cex4queue\n', 'cex4queue\n'],
  ['no_such_driver\n', 'no_such_driver\n'],
  ['a\nb', 'a\n'],
  ['a\n\n', 'a\n'],
  [' vfio_ap \n', ' vfio_ap \n'],
  ['\n', '\n'],
  ['\nvfio_ap', '\n'],
  ['\0vfio_ap', '\n'],
  ['x'.repeat(4094), 'x'.repeat(4094) + '\n'],
  ['x'.repeat(4095), 'EINVAL'],
  ['x'.repeat(4096), 'EINVAL'],
  ['x'.repeat(5000), 'EINVAL']
] as Array<[string, string]>) test(overrideCase, input, expected)

// ---------------------------------------------------------------------------------------
// Scalar bus attributes: ap_domain (%i), config_time (%d), poll_timeout (kstrtoul), poll_thread (kstrtobool)

const scalarCase = test.macro({
  exec (t, variant: Variant, attr: string, input: string, expected: string | Errno) {
    const host = boot(variant)
    const path = `${BUS}/${attr}`
    if (expected.endsWith('\n')) {
      write(t, host, path, input, 'ok')
      t.is(host.read(path), expected)
    } else {
      write(t, host, path, input, expected as Errno)
    }
  },
  title: (_p, variant: Variant, attr: string, input: string, expected: string) =>
    `${variant === 'F1' ? '' : `${variant}: `}${attr} write ${show(input)} -> ${expected.endsWith('\n') ? `reads ${show(expected)}` : expected}`
})

for (const [variant, attr, input, expected] of [
  // ap_domain: sscanf %i; 0 <= value <= ap_max_domain_id (84) and the aqmask bit set (scenario 23)
  ['F1', 'ap_domain', '3\n', '3\n'],
  ['F1', 'ap_domain', '0\n', '0\n'],
  ['F1', 'ap_domain', '84\n', '84\n'],
  ['F1', 'ap_domain', '85\n', 'EINVAL'],
  ['F1', 'ap_domain', '255\n', 'EINVAL'],
  ['F1', 'ap_domain', '-1\n', 'EINVAL'],
  ['F1', 'ap_domain', '-0\n', '0\n'],
  ['F1', 'ap_domain', '0x0b\n', '11\n'],
  ['F1', 'ap_domain', '0X0B\n', '11\n'],
  ['F1', 'ap_domain', '013\n', '11\n'],
  ['F1', 'ap_domain', '08\n', '0\n'],
  ['F1', 'ap_domain', '0x\n', '0\n'],
  ['F1', 'ap_domain', '5abc', '5\n'],
  ['F1', 'ap_domain', '5 6\n', '5\n'],
  ['F1', 'ap_domain', '  7\n', '7\n'],
  ['F1', 'ap_domain', '\t\n7', '7\n'],
  ['F1', 'ap_domain', '+5\n', 'EINVAL'],
  ['F1', 'ap_domain', '\n', 'EINVAL'],
  ['F1', 'ap_domain', 'abc\n', 'EINVAL'],
  ['F1', 'ap_domain', 'x5\n', 'EINVAL'],
  ['F1', 'ap_domain', '- 5\n', 'EINVAL'],
  ['F1', 'ap_domain', '\0' + '5', 'EINVAL'],
  ['F1', 'ap_domain', '\x15\n', 'EINVAL'],
  ['F1', 'ap_domain', '4294967300\n', '4\n'],
  ['F1', 'ap_domain', '4294967295\n', 'EINVAL'],
  ['F1', 'ap_domain', '2147483648\n', 'EINVAL'],
  ['F1 no QCI', 'ap_domain', '15\n', '15\n'],
  ['F1 no QCI', 'ap_domain', '16\n', 'EINVAL'],
  // config_time: sscanf %d, 5..120 (scenario 24)
  ['F1', 'config_time', '4\n', 'EINVAL'],
  ['F1', 'config_time', '5\n', '5\n'],
  ['F1', 'config_time', '60\n', '60\n'],
  ['F1', 'config_time', '120\n', '120\n'],
  ['F1', 'config_time', '121\n', 'EINVAL'],
  ['F1', 'config_time', '0\n', 'EINVAL'],
  ['F1', 'config_time', '-60\n', 'EINVAL'],
  ['F1', 'config_time', '+60\n', 'EINVAL'],
  ['F1', 'config_time', ' 60\n', '60\n'],
  ['F1', 'config_time', '60abc', '60\n'],
  ['F1', 'config_time', '60.5\n', '60\n'],
  ['F1', 'config_time', '010\n', '10\n'],
  ['F1', 'config_time', '0x10\n', 'EINVAL'],
  ['F1', 'config_time', '\n', 'EINVAL'],
  ['F1', 'config_time', 'sixty\n', 'EINVAL'],
  ['F1', 'config_time', '\x160\n', 'EINVAL'],
  ['F1', 'config_time', '4294967356\n', '60\n'],
  // poll_timeout: kstrtoul base 0, <= 120000000000, 0 accepted (scenario 25)
  ['F1', 'poll_timeout', '0\n', '0\n'],
  ['F1', 'poll_timeout', '120000000000\n', '120000000000\n'],
  ['F1', 'poll_timeout', '120000000001\n', 'EINVAL'],
  ['F1', 'poll_timeout', '0x3d090\n', '250000\n'],
  ['F1', 'poll_timeout', '0X3D090', '250000\n'],
  ['F1', 'poll_timeout', '+100\n', '100\n'],
  ['F1', 'poll_timeout', '010\n', '8\n'],
  ['F1', 'poll_timeout', '1.5\n', 'EINVAL'],
  ['F1', 'poll_timeout', '-1\n', 'EINVAL'],
  ['F1', 'poll_timeout', '08\n', 'EINVAL'],
  ['F1', 'poll_timeout', '0x\n', 'EINVAL'],
  ['F1', 'poll_timeout', ' 5\n', 'EINVAL'],
  ['F1', 'poll_timeout', '5 \n', 'EINVAL'],
  ['F1', 'poll_timeout', '5\n\n', 'EINVAL'],
  ['F1', 'poll_timeout', '\n', 'EINVAL'],
  ['F1', 'poll_timeout', '5\x10\n', 'EINVAL'],
  ['F1', 'poll_timeout', '18446744073709551615\n', 'EINVAL'],
  ['F1', 'poll_timeout', '18446744073709551616\n', 'ERANGE'],
  ['F1', 'poll_timeout', '99999999999999999999\n', 'ERANGE'],
  ['F1', 'poll_timeout', '99999999999999999999 ', 'ERANGE'],
  ['F1', 'poll_timeout', '0x10000000000000000\n', 'ERANGE'],
  // poll_thread: kstrtobool (incl. e/E/d/D, Errata 2); with interrupts in use it stays 0 (scenario 26)
  ['F1', 'poll_thread', '1\n', '0\n'],
  ['F1', 'poll_thread', 'y\n', '0\n'],
  ['F1', 'poll_thread', '0\n', '0\n'],
  ['F1', 'poll_thread', 'maybe\n', 'EINVAL'],
  ['F1 no interrupts', 'poll_thread', 'y\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', '1\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', 'Y', '1\n'],
  ['F1 no interrupts', 'poll_thread', 't\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', 'T\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', 'on\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', 'ON\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', 'enable\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', 'E\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', 'yes please\n', '1\n'],
  ['F1 no interrupts', 'poll_thread', '0\n', '0\n'],
  ['F1 no interrupts', 'poll_thread', 'off\n', '0\n'],
  ['F1 no interrupts', 'poll_thread', 'disable\n', '0\n'],
  ['F1 no interrupts', 'poll_thread', 'D\n', '0\n'],
  ['F1 no interrupts', 'poll_thread', 'n\n', '0\n'],
  ['F1 no interrupts', 'poll_thread', 'F\n', '0\n'],
  ['F1 no interrupts', 'poll_thread', '\n', 'EINVAL'],
  ['F1 no interrupts', 'poll_thread', ' 1\n', 'EINVAL'],
  ['F1 no interrupts', 'poll_thread', '2\n', 'EINVAL'],
  ['F1 no interrupts', 'poll_thread', 'o\n', 'EINVAL'],
  ['F1 no interrupts', 'poll_thread', 'maybe\n', 'EINVAL'],
  // drivers_autoprobe: a leading '0' disables, anything else enables
  ['F1', 'drivers_autoprobe', '0\n', '0\n'],
  ['F1', 'drivers_autoprobe', '0junk', '0\n'],
  ['F1', 'drivers_autoprobe', '1\n', '1\n'],
  ['F1', 'drivers_autoprobe', 'no\n', '1\n']
] as Array<[Variant, string, string, string]>) test(scalarCase, variant, attr, input, expected)

test('poll_thread with interrupts: writing 0 after 1 stays 0; without: 1 then 0 stops the thread', t => {
  const irq = boot()
  write(t, irq, `${BUS}/poll_thread`, '1\n', 'ok')
  t.is(irq.read(`${BUS}/poll_thread`), '0\n')
  const noirq = boot('F1 no interrupts')
  write(t, noirq, `${BUS}/poll_thread`, '1\n', 'ok')
  t.is(noirq.read(`${BUS}/poll_thread`), '1\n')
  write(t, noirq, `${BUS}/poll_thread`, 'd\n', 'ok')
  t.is(noirq.read(`${BUS}/poll_thread`), '0\n')
})

test('scenario 23: after -11 > aqmask, 11 > ap_domain is refused; the value is not checked against the QCI usage mask', t => {
  const host = boot()
  write(t, host, `${BUS}/aqmask`, '-11\n', 'ok')
  write(t, host, `${BUS}/ap_domain`, '11\n', 'EINVAL')
  write(t, host, `${BUS}/ap_domain`, '0xb\n', 'EINVAL')
  write(t, host, `${BUS}/ap_domain`, '12\n', 'ok')
  t.is(host.read(`${BUS}/ap_domain`), '12\n')
})

test('scenario 27: any write to scans rescans once and returns the count', t => {
  const host = boot()
  for (const [i, input] of ['2\n', '0\n', 'anything at all', '\n'].entries()) {
    t.is(host.write(`${BUS}/scans`, input), input.length)
    t.is(host.read(`${BUS}/scans`), `${i + 2}\n`)
  }
  t.is(host.write(`${BUS}/scans`, ''), 0, 'a zero-length write does not scan')
  t.is(host.read(`${BUS}/scans`), '5\n')
})

// ---------------------------------------------------------------------------------------
// bind / unbind / drivers_probe (§3.3, scenario 34)

const bindCase = test.macro({
  exec (t, steps: Array<[string, string, Errno | 'ok']>, bindings: string) {
    const host = boot()
    for (const [file, input, expected] of steps) write(t, host, `${BUS}/${file}`, input, expected)
    t.is(host.read(`${BUS}/bindings`), bindings)
  },
  title: (_p, steps: Array<[string, string, Errno | 'ok']>) => `bind/unbind: ${steps.map(([f, i, e]) => `${show(i)} > ${f} ${e}`).join('; ')}`
})

const CQ = 'drivers/cex4queue'
const VA = 'drivers/vfio_ap'
for (const [steps, bindings] of [
  [[[`${CQ}/unbind`, '03.000b\n', 'ok']], '8/9\n'],
  [[[`${CQ}/unbind`, '03.000b', 'ok']], '8/9\n'],
  [[[`${CQ}/unbind`, '03.000b\n', 'ok'], [`${VA}/bind`, '03.000b\n', 'ENODEV'], [`${CQ}/bind`, '03.000b\n', 'ok'], [`${CQ}/bind`, '03.000b\n', 'EBUSY']], '9/9 (complete)\n'],
  [[[`${VA}/bind`, 'card03\n', 'ENODEV'], [`${CQ}/bind`, '99.0001\n', 'ENODEV'], [`${CQ}/bind`, 'card03\n', 'ENODEV'], ['drivers/cex4card/bind', '03.0004\n', 'ENODEV']], '9/9 (complete)\n'],
  [[[`${CQ}/unbind`, '03.000b\n\n', 'ENODEV'], [`${CQ}/unbind`, ' 03.000b\n', 'ENODEV'], [`${CQ}/unbind`, '03.000B\n', 'ENODEV'], [`${CQ}/unbind`, '3.b\n', 'ENODEV'], [`${CQ}/unbind`, '\n', 'ENODEV']], '9/9 (complete)\n'],
  [[[`${VA}/unbind`, '03.000b\n', 'ENODEV'], ['drivers/cex4card/unbind', '03.000b\n', 'ENODEV'], [`${CQ}/unbind`, 'card03\n', 'ENODEV']], '9/9 (complete)\n'],
  [[[`${CQ}/unbind`, '03.000b\n', 'ok'], [`${CQ}/unbind`, '03.000b\n', 'ENODEV'], ['drivers_probe', '03.000b\n', 'ok']], '9/9 (complete)\n'],
  [[['drivers_probe', '99.0001\n', 'ENODEV'], ['drivers_probe', '03.000b\n', 'ok'], ['drivers_probe', 'card03\n', 'ok']], '9/9 (complete)\n'],
  [[['drivers/cex4card/unbind', 'card03\n', 'ok'], ['drivers/cex4card/bind', 'card03\n', 'ok'], ['drivers/cex4card/bind', 'card03\n', 'EBUSY']], '9/9 (complete)\n'],
  [[['drivers/cex4card/unbind', 'card03\n', 'ok']], '9/9 (complete)\n']
] as Array<[Array<[string, string, Errno | 'ok']>, string]>) test(bindCase, steps, bindings)

test('unbinding a queue from zcrypt removes its zcrypt attributes and leaves it uninitiated', t => {
  const host = boot()
  write(t, host, `${BUS}/${CQ}/unbind`, '03.000b\n', 'ok')
  t.false(exists(host, `${Q('03.000b')}/driver`))
  t.false(exists(host, `${Q('03.000b')}/online`))
  t.false(exists(host, `${Q('03.000b')}/mkvps`))
  t.is(host.read(`${Q('03.000b')}/request_count`), '-\n')
  t.false(ls(host, `${BUS}/${CQ}`).includes('03.000b'))
  write(t, host, `${BUS}/${CQ}/bind`, '03.000b\n', 'ok')
  t.is(host.read(`${Q('03.000b')}/online`), '1\n')
})

// ---------------------------------------------------------------------------------------
// Card config/online and queue online: sscanf %d, 0 or 1 (§2.3, §2.5, §5.1, scenarios 30, 31)

const zeroOneCase = test.macro({
  exec (t, path: string, input: string, expected: string | Errno) {
    const host = boot()
    if (expected.endsWith('\n')) {
      write(t, host, path, input, 'ok')
      t.is(host.read(path), expected)
    } else {
      write(t, host, path, input, expected as Errno)
    }
  },
  title: (_p, path: string, input: string, expected: string) => `${path} write ${show(input)} -> ${expected.endsWith('\n') ? `reads ${show(expected)}` : expected}`
})

for (const [path, input, expected] of [
  [`${C('05')}/online`, '0\n', '0\n'],
  [`${C('05')}/online`, '1\n', '1\n'],
  [`${C('05')}/online`, ' 0\n', '0\n'],
  [`${C('05')}/online`, '0abc', '0\n'],
  [`${C('05')}/online`, '0x1\n', '0\n'],
  [`${C('05')}/online`, '-0\n', '0\n'],
  [`${C('05')}/online`, '2\n', 'EINVAL'],
  [`${C('05')}/online`, '-1\n', 'EINVAL'],
  [`${C('05')}/online`, '+1\n', 'EINVAL'],
  [`${C('05')}/online`, '\n', 'EINVAL'],
  [`${C('05')}/online`, 'on\n', 'EINVAL'],
  [`${C('05')}/online`, '4294967296\n', '0\n'],
  [`${Q('05.0004')}/online`, '0\n', '0\n'],
  [`${Q('05.0004')}/online`, '1\n', '1\n'],
  [`${Q('05.0004')}/online`, '2\n', 'EINVAL'],
  [`${Q('05.0004')}/online`, 'y\n', 'EINVAL'],
  [`${C('03')}/config`, '2\n', 'EINVAL'],
  [`${C('03')}/config`, '+1\n', 'EINVAL'],
  [`${C('03')}/config`, '1abc', '1\n'],
  [`${C('03')}/config`, ' 1\n', '1\n'],
  [`${C('03')}/config`, '0\n', '0\n'],
  [`${C('03')}/config`, '\n', 'EINVAL']
] as Array<[string, string, string]>) test(zeroOneCase, path, input, expected)

test('scenario 30: card online 0 takes its queues offline; queue online 1 is refused while the card is offline', t => {
  const host = boot()
  write(t, host, `${C('05')}/online`, '0\n', 'ok')
  for (const q of ['05.0004', '05.000b', '05.0047']) t.is(host.read(`${Q(q)}/online`), '0\n', q)
  t.is(host.read(`${Q('03.0004')}/online`), '1\n')
  write(t, host, `${Q('05.0004')}/online`, '1\n', 'EINVAL')
  write(t, host, `${C('05')}/online`, '1\n', 'ok')
  for (const q of ['05.0004', '05.000b', '05.0047']) t.is(host.read(`${Q(q)}/online`), '1\n', q)
})

test('scenario 31: card config on z/VM -> EOPNOTSUPP; on an LPAR the card and its queues go to config 0', t => {
  const zvm = boot('F1 z/VM')
  write(t, zvm, `${C('03')}/config`, '0\n', 'EOPNOTSUPP')
  write(t, zvm, `${C('03')}/config`, '1\n', 'ok', 'config 1 when already 1 does not ask SCLP')

  const host = boot()
  write(t, host, `${C('03')}/config`, '0\n', 'ok')
  t.is(host.read(`${C('03')}/config`), '0\n')
  t.is(host.read(`${C('03')}/online`), '0\n')
  for (const q of ['03.0004', '03.000b', '03.0047']) {
    t.is(host.read(`${Q(q)}/config`), '0\n', q)
    t.is(host.read(`${Q(q)}/online`), '0\n', q)
  }
  write(t, host, `${Q('03.0004')}/online`, '1\n', 'ENODEV')
  write(t, host, `${C('03')}/online`, '1\n', 'ENODEV')
  write(t, host, `${C('03')}/config`, '1\n', 'ok')
  t.is(host.read(`${Q('03.0004')}/online`), '1\n')
})

// ---------------------------------------------------------------------------------------
// Kernel parameters (§1.4 "Kernel command line", §1.3 ap.domain, scenario 40)

const paramCase = test.macro({
  exec (t, params: Record<string, unknown>, expected: Record<string, string>) {
    const host = boot('F1', { kernel_params: params })
    for (const [path, text] of Object.entries(expected)) t.is(host.read(path), text, path)
  },
  title: (_p, params: Record<string, unknown>) => `kernel parameters ${JSON.stringify(params)}`
})

for (const [params, expected] of [
  [{ 'ap.apmask': '0xffff', 'ap.aqmask': '0x40' }, {
    [`${BUS}/apmask`]: H(F(4)) + '\n',
    [`${BUS}/aqmask`]: H('4') + '\n',
    'module/ap/parameters/apmask': '0xffff\n',
    'module/ap/parameters/aqmask': '0x40\n'
  }],
  [{ 'ap.apmask': '0xZZ' }, { [`${BUS}/apmask`]: ZERO + '\n', [`${BUS}/aqmask`]: ALL + '\n', 'module/ap/parameters/apmask': '0xZZ\n', 'module/ap/parameters/aqmask': '(null)\n' }],
  [{ 'ap.apmask': '+0-15' }, { [`${BUS}/apmask`]: H(F(4)) + '\n' }],
  [{ 'ap.apmask': '-0' }, { [`${BUS}/apmask`]: ZERO + '\n' }],
  [{ 'ap.aqmask': '+4,+300' }, { [`${BUS}/aqmask`]: ZERO + '\n' }],
  [{ 'ap.apmask': '' }, { [`${BUS}/apmask`]: ZERO + '\n' }],
  [{ 'ap.domain': 11 }, { [`${BUS}/ap_domain`]: '11\n' }],
  [{ 'ap.domain': 3 }, { [`${BUS}/ap_domain`]: '3\n' }],
  [{ 'ap.domain': 85 }, { [`${BUS}/ap_domain`]: '4\n' }],
  [{ 'ap.domain': -2 }, { [`${BUS}/ap_domain`]: '4\n' }],
  [{ 'ap.domain': -1 }, { [`${BUS}/ap_domain`]: '4\n' }],
  [{ 'ap.domain': 4, 'ap.aqmask': '0x40' }, { [`${BUS}/ap_domain`]: '-1\n' }],
  [{ 'ap.aqmask': '-4' }, { [`${BUS}/ap_domain`]: '-1\n' }],
  [{ 'ap.aqmask': '+11' }, { [`${BUS}/ap_domain`]: '11\n' }],
  [{ 'ap.apmask': '0x12' }, { [`${BUS}/ap_domain`]: '4\n' }],
  [{ 'ap.apmask': '0x' }, { [`${BUS}/ap_domain`]: '-1\n' }],
  [{ 'ap.poll_thread': true }, { [`${BUS}/poll_thread`]: '0\n' }]
] as Array<[Record<string, unknown>, Record<string, string>]>) test(paramCase, params, expected)

test('ap.domain that is not valid is logged and becomes -1 before the first scan', t => {
  const host = boot('F1', { kernel_params: { 'ap.domain': 85 } })
  t.true(host.klog.records().some(r => r.text === 'ap: 85 is not a valid cryptographic domain'))
  const ok = boot('F1', { kernel_params: { 'ap.domain': 11 } })
  t.false(ok.klog.records().some(r => r.text.includes('is not a valid cryptographic domain')))
})

test('ap.poll_thread=1 starts the thread only without interrupts', t => {
  t.is(boot('F1 no interrupts', { kernel_params: { 'ap.poll_thread': true } }).read(`${BUS}/poll_thread`), '1\n')
})
