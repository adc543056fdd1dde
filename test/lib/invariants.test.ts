/**
 * The kernel's invariants, property-based: seeded random sequences of every operation the
 * model has — apmask/aqmask writes in both grammars (valid and not), mdev create/remove,
 * the six assign/unassign stores, ap_config, bind/unbind/drivers_probe, driver_override,
 * card and queue online, card config, guest start/stop, changes of the machine's AP
 * configuration, and writes through a file opened before another operation — on hosts of
 * every kernel profile and a handful of topologies, with these checked after EVERY step:
 *
 *   1. no APQN is in two mdevs' matrices;
 *   2. after a successful mask write no host-owned queue is bound to vfio_ap and no
 *      non-host-owned one to cex4queue (ap-bus.md §1.4 step 5);
 *   3. guest_matrix ⊆ matrix ∩ host configuration, and (6.8+: whole-matrix filter) every
 *      APQN of it is a queue bound to vfio_ap (vfio-ap.md §3.2); a running guest has exactly
 *      that configuration (a subset while a blocked `remove` strips it);
 *   4. a refused operation changes nothing: `JSON.stringify(host.snapshot())` is the same
 *      before and after, except that EADDRINUSE/EBUSY refusals log exactly the warning lines
 *      vfio-ap.md §4.3 names (computed here from the pre-state); its errno is one the specs
 *      document for the file (test/helpers/errnos.ts);
 *   5. available_instances + the number of mdevs = 65536;
 *   6. the sysfs tree agrees with the model: bus/ap/devices, the drivers' device links,
 *      every device's `driver` link and driver attributes, bindings, apmask/aqmask, each
 *      mdev's matrix/guest_matrix/control_domains/ap_config against an independent
 *      formatter, queue `status`, the mdev listings and IOMMU groups;
 *   7. a write through a held fd whose file went away in between (its mdev removed or
 *      re-created, its queue gone, zcrypt's `online` gone with the binding) is ENODEV and
 *      changes nothing; one whose file is still there behaves as a fresh write;
 *   8. at the end of each sequence: a snapshot restored into a new host is the same host
 *      (same snapshot, same tree).
 *
 * The logs (klog, uevents) are append-only rings, so (4) compares them by length and last
 * sequence number instead of re-serialising thousands of records at every step.
 *
 * Reproduce a failure with the seed (and path) fast-check prints:
 *   APSIM_FC_SEED=<seed> [APSIM_FC_PATH=<path>] npx ava build/test/lib/invariants.test.js
 * APSIM_FC_RUNS overrides the number of sequences (default 1000, 100+ steps each).
 */
import test from 'ava'
import fc from 'fast-check'
import { type Errno, isSysfsError } from '../../lib/errors.js'
import { parseLparCommands } from '../../lib/control.js'
import { Host } from '../../lib/host.js'
import { Queue } from '../../lib/ap/device.js'
import { hex2mask, type Mask, parseApMask } from '../../lib/mask.js'
import { cstr, kstrtoull } from '../../lib/parse.js'
import { PROFILE_NAMES, profile as profileOf, type KernelProfile } from '../../lib/profiles.js'
import { type Node, O_WRONLY, Sysfs } from '../../lib/sysfs.js'
import { loadTopology, type Topology } from '../../lib/topology.js'
import type { Mdev, VfioAp } from '../../lib/vfio/vfio-ap.js'
import { openErrnos, storeErrnos } from '../helpers/errnos.js'

// ---------------------------------------------------------------------------------------
// Hosts

const TOPOLOGIES: Record<string, string> = {
  // the kernel documentation's LPAR (fixture TG)
  tg: `host: lpar
qci: { features: [APSC, APXA, QACT, RC8A], max_adapter_id: 63, max_domain_id: 255 }
adapters: [{ id: 4, type: CEX5, mode: cca }, { id: 5, type: CEX5, mode: cca }, { id: 6, type: CEX5, mode: accel }]
usage_domains: [0x04, 0x47, 0xab, 0xff]
control_domains: [0x04, 0x47, 0xab, 0xff]
`,
  // ap-bus.md fixture F1: Na 255, Nd 84, CEX8 in the three modes, plus a card newer than CEX8
  f1: `host: lpar
qci: { features: [APSC, APXA, QACT, RC8A], max_adapter_id: 255, max_domain_id: 84 }
adapters: [{ id: 3, type: CEX8, mode: cca }, { id: 5, type: CEX8, mode: ep11 }, { id: 6, type: CEX8, mode: accel }, { id: 7, raw_type: 15, mode: cca }]
usage_domains: [4, 11, 0x47]
control_domains: [4, 11, 0x47, 0xab]
`,
  // no APXA: ids up to 63/15; masks from the kernel command line
  noapxa: `host: lpar
qci: { features: [APSC, QACT] }
adapters: [{ id: 1, type: CEX4, mode: accel }, { id: 4, type: CEX7, mode: cca }, { id: 5, type: CEX6, mode: ep11, config: false }]
usage_domains: [1, 4, 11]
control_domains: [1, 2, 4]
kernel_params: { ap.apmask: "0xf3", ap.aqmask: "+0-255,-11" }
`,
  // a z/VM guest: no SCLP reconfiguration (config writes are EOPNOTSUPP)
  zvm: `host: zvm
qci: { features: [APSC, APXA, QACT], max_adapter_id: 63, max_domain_id: 255 }
adapters: [{ id: 4, type: CEX6, mode: cca }, { id: 5, type: CEX6, mode: accel, chkstop: true }]
usage_domains: [4, 0x47]
kernel_params: { ap.apmask: "-5", ap.domain: 4 }
`,
  // no QCI: vfio_ap's host configuration is all zero, guest_matrix always empty
  noqci: `host: lpar
qci: { available: false }
adapters: [{ id: 4, type: CEX5, mode: cca }, { id: 5, type: CEX5, mode: accel }]
usage_domains: [4, 11]
`,
  // zcrypt only: vfio_ap not loaded, unreserved queues stay unbound
  novfio: `host: lpar
qci: { features: [APSC, APXA, QACT, RC8A], max_adapter_id: 63, max_domain_id: 255 }
adapters: [{ id: 4, type: CEX5, mode: cca }, { id: 5, type: CEX7, mode: ep11 }]
usage_domains: [4, 0xab]
modules: [zcrypt_cex4]
`
}
const TOPOLOGY_NAMES = Object.keys(TOPOLOGIES)
const parsedTopologies = new Map<string, Topology>(TOPOLOGY_NAMES.map(n => [n, loadTopology(TOPOLOGIES[n], n)]))

const UUIDS = [
  '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f',
  '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b',
  '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b',
  'c5d6e7f8-a9b0-4c1d-9e2f-3a4b5c6d7e8f'
]
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`
const MAX_MDEVS = 65536

// ---------------------------------------------------------------------------------------
// Operations

type Op =
  | { idle: true }
  | { w: string, d: string }
  | { start: string, uuid: string }
  | { stop: string }
  | { lpar: string }
  /** Open `held` for writing, run `then`, write `d` through the fd opened before it. */
  | { held: string, d: string, then: Op }

const show = (op: Op): string => {
  if ('w' in op) return `printf %s ${JSON.stringify(op.d)} > ${op.w}`
  if ('start' in op) return `guest start ${op.start} ${op.uuid}`
  if ('stop' in op) return `guest stop ${op.stop}`
  if ('lpar' in op) return `lpar ${JSON.stringify(op.lpar)}`
  if ('held' in op) return `exec 3> ${op.held}; [${show(op.then)}]; printf %s ${JSON.stringify(op.d)} >&3`
  return 'idle'
}

const h2 = (n: number): string => n.toString(16).padStart(2, '0')
const h4 = (n: number): string => n.toString(16).padStart(4, '0')

/**
 * Ids beyond what the host has: the topologies' ids, the edges (0, the maxima 15/63/84/255
 * and one above them).
 */
const A_POOL = [0, 1, 3, 4, 5, 6, 7, 15, 63, 64, 255]
const D_POOL = [0, 1, 2, 4, 11, 15, 0x20, 0x47, 84, 85, 0xab, 0xff]
const adapterId = fc.constantFrom(...A_POOL)
const domainId = fc.constantFrom(...D_POOL)
const uuid = fc.constantFrom(...UUIDS)

/**
 * A reference to something the host has when the step runs, so that most operations hit
 * an existing mdev, queue or card: `<kind:k:f>`. With k % 10 < 8 it names the
 * (k / 10)-th live one, else one from the pools above (maybe absent); f picks the radix a
 * number is written in. The steps a failure prints are resolved.
 */
type RefKind = 'mdev' | 'q' | 'qpath' | 'card' | 'aid' | 'did' | 'cid' | 'aset' | 'dset'
const ref = (kind: RefKind, formats = 5): fc.Arbitrary<string> => fc.tuple(fc.nat({ max: 9999 }), fc.integer({ min: 0, max: formats - 1 })).map(([k, f]) => `<${kind}:${k}:${f}>`)

/** A number as user space writes it: decimal, 0x hex, 0X hex, octal, with a + sign. */
const numFormat = (v: number, f: number): string =>
  [`${v}`, `0x${v.toString(16)}`, `0X${v.toString(16).toUpperCase()}`, v === 0 ? '0' : `0${v.toString(8)}`, `+${v}`][f]

function resolve (host: Host, text: string): string {
  return text.replace(/<(\w+):(\d+):(\d)>/g, (_all, kind: RefKind, ks: string, fs: string) => {
    const k = Number(ks)
    const f = Number(fs)
    const j = Math.floor(k / 10)
    const pick = <T>(live: T[], fallback: T): T => k % 10 < 8 && live.length > 0 ? live[j % live.length] : fallback
    const a = A_POOL[j % A_POOL.length]
    const d = D_POOL[Math.floor(j / A_POOL.length) % D_POOL.length]
    const queues = [...host.bus.allQueues()]
    const subset = (live: number[], pool: number[]): string => {
      const from = live.length > 0 && k % 10 < 8 ? live : pool
      const chosen = from.filter((_x, i) => (j >> i) & 1)
      return f % 2 === 0 ? hexOf(chosen) : `0x${hexDigits(chosen).replace(/0+$/, '')}`
    }
    switch (kind) {
      case 'mdev': return pick(host.vfio?.uuids() ?? [], UUIDS[j % UUIDS.length])
      case 'q': return pick(queues.map(q => q.name), `${h2(a)}.${h4(d)}`)
      case 'qpath': return pick(queues.map(q => q.treePath), `devices/ap/card${h2(a)}/${h2(a)}.${h4(d)}`)
      case 'card': return pick(host.bus.sortedCards().map(c => c.name), `card${h2(a)}`)
      case 'aid': return numFormat(pick([...host.bus.lpar.adapters.keys()].sort((x, y) => x - y), a), f)
      case 'did': return numFormat(pick(host.bus.qci.aqm.ids(), d), f)
      case 'cid': return numFormat(pick(host.bus.qci.adm.ids(), d), f)
      case 'aset': return subset([...host.bus.lpar.adapters.keys()].sort((x, y) => x - y), A_POOL)
      case 'dset': return subset(host.bus.qci.aqm.ids(), D_POOL)
    }
    return _all
  })
}

/** What an assign/unassign/ap_domain store gets: mostly `echo N`, sometimes printf or junk. */
const numText = (id: RefKind): fc.Arbitrary<string> => fc.oneof(
  { weight: 8, arbitrary: ref(id).map(s => `${s}\n`) },
  { weight: 1, arbitrary: ref(id) },
  { weight: 2, arbitrary: fc.constantFrom('', '\n', '-1\n', '08\n', ' 5\n', '5\n\n', '5,6\n', '0x\n', '99999999999999999999\n', '0x10000000000000000\n', '5\0junk', 'junk\n', '4 \n', '+\n', '0X1f\n', '64\n', '256\n', '0x100\n') }
)

const HEX = '0123456789abcdefABCDEF'
/** An absolute mask: 0x/x/no prefix, hex digits (a few ids, or random up to 66 digits), optional newline. */
const absoluteMask = (id: fc.Arbitrary<number>): fc.Arbitrary<string> => fc.tuple(
  fc.constantFrom('0x', 'x', ''),
  fc.oneof(
    fc.uniqueArray(id, { maxLength: 4 }).map(ids => hexDigits(ids).replace(/0+$/, '')),
    fc.string({ unit: fc.constantFrom(...HEX, 'f', 'f', 'f', 'f'), maxLength: 64 }),
    fc.constantFrom('f'.repeat(65), '0'.repeat(65)),
    fc.constantFrom('ff'.repeat(32), 'f'.repeat(63) + 'e', '')
  ),
  fc.constantFrom('\n', '')
).map(([p, digits, nl]) => p + digits + nl)

/** A relative mask: terms +N, -N, +A-B, -A-B in any radix, separated by runs of , and \n. */
const relativeMask = (id: RefKind, pool: fc.Arbitrary<number>): fc.Arbitrary<string> => fc.array(
  fc.tuple(fc.constantFrom('+', '-'), ref(id, 4), fc.option(fc.tuple(fc.oneof(pool, fc.constant(255)), fc.integer({ min: 0, max: 3 })).map(([v, f]) => numFormat(v, f)), { freq: 6 }), fc.constantFrom(',', '', ',\n', ',,', '\n')),
  { minLength: 1, maxLength: 4 }
).map(terms => terms.map(([s, a, b, sep]) => `${s}${a}${b === null ? '' : `-${b}`}${sep}`).join('')).chain(s => fc.constantFrom(s, `${s}\n`))

/** Valid and invalid mask writes: a bad character spliced into either grammar. */
const maskText = (id: RefKind, pool: fc.Arbitrary<number>): fc.Arbitrary<string> => fc.oneof(
  { weight: 5, arbitrary: relativeMask(id, pool) },
  { weight: 3, arbitrary: absoluteMask(pool) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.oneof(relativeMask(id, pool), absoluteMask(pool)), fc.nat(), fc.constantFrom(' ', 'X', 'g', '\r', '\n\n', '\0', ',', '+', '-', '0X'))
      .map(([s, at, bad]) => {
        // never inside a <reference>
        const cuts = [0, ...[...s.matchAll(/<[^>]*>|[^<]/g)].map(m => m.index + m[0].length)]
        const i = cuts[at % cuts.length]
        return s.slice(0, i) + bad + s.slice(i)
      })
  }
)

/** 64 hex digits of a 256-bit mask with these ids set (id 0 = MSB of the first digit). */
function hexDigits (ids: Iterable<number>): string {
  const nibbles = new Array<number>(64).fill(0)
  for (const id of ids) nibbles[id >> 2] |= 8 >> (id & 3)
  return nibbles.map(n => n.toString(16)).join('')
}
const hexOf = (ids: Iterable<number>): string => `0x${hexDigits(ids)}`

const apConfigField = (set: RefKind): fc.Arbitrary<string> => fc.oneof(
  { weight: 6, arbitrary: ref(set) },
  { weight: 1, arbitrary: fc.constantFrom('', '0x', 'x', '0X06', 'zz', '0x' + 'f'.repeat(65), '0x06 ', '0x0000000000000001') }
)
const apConfigText = fc.tuple(apConfigField('aset'), apConfigField('dset'), apConfigField('dset'), fc.integer({ min: 0, max: 9 }))
  .map(([a, d, c, form]) => [`${a},${d},${c}\n`, `${a},${d},${c}\n`, `${a},${d},${c}\n`, `${a},${d},${c}\n`, `${a},${d},${c}`, `${a},${d}\n`, `${a},${d}`, `${a}\n`, `${a},${d},${c},junk\n`, `${a},${d},${c}\r\n`][form])

const devName = fc.oneof({ weight: 6, arbitrary: ref('q') }, { weight: 2, arbitrary: ref('card') }, { weight: 1, arbitrary: fc.constantFrom('99.0001', 'card99', '', 'ap', '04.0004 ', '04.04') })
  .chain(n => fc.constantFrom(`${n}\n`, n))
const guestName = fc.constantFrom('g1', 'g2', 'g3', '-bad', 'a b')

const lparLine = fc.oneof(
  fc.tuple(fc.oneof(adapterId, fc.constantFrom(2, 8)), fc.constantFrom('CEX4', 'CEX5', 'CEX7', 'CEX8', '15', '9', 'CEX9'), fc.constantFrom('accel', 'cca', 'ep11', 'rsa'))
    .map(([a, ty, mo]) => `add-adapter ${a} ${ty} ${mo}`),
  ref('aid').map(a => `remove-adapter ${a}`),
  fc.tuple(fc.constantFrom('configure', 'checkstop'), ref('aid'), fc.constantFrom('on', 'off', '1', '0', 'maybe')).map(([c, a, v]) => `${c} ${a} ${v}`),
  fc.tuple(fc.constantFrom('add-usage-domain', 'add-control-domain'), domainId).map(([c, d]) => `${c} ${d}`),
  ref('did').map(d => `remove-usage-domain ${d}`),
  ref('cid').map(d => `remove-control-domain ${d}`),
  fc.constantFrom('scan', 'bogus 1', 'add-adapter 4', 'remove-adapter 0x100', '# a comment')
)

const w = (path: fc.Arbitrary<string>, data: fc.Arbitrary<string>): fc.Arbitrary<Op> => fc.tuple(path, data).map(([p, d]) => ({ w: p, d }))
const mdevFile = (file: string): fc.Arbitrary<string> => ref('mdev').map(u => `${M}/${u}/${file}`)

/**
 * A write through a file opened before another operation: mostly the removals and changes
 * that take files away (mdev remove, adapters and domains leaving the LPAR, mask writes that
 * move queues between drivers, a re-create), with the files they take.
 */
const heldOp: fc.Arbitrary<Op> = fc.tuple(
  fc.oneof(
    mdevFile('assign_adapter'), mdevFile('assign_domain'), mdevFile('unassign_domain'), mdevFile('ap_config'), mdevFile('remove'),
    ref('qpath').map(q => `${q}/driver_override`), ref('qpath').map(q => `${q}/online`), ref('card').map(c => `devices/ap/${c}/online`), ref('qpath').map(q => `${q}/reset`)
  ),
  fc.constantFrom('5\n', '4\n', '0x47\n', '1\n', '0\n', 'vfio_ap\n', '0x06,0x08,0x\n'),
  fc.oneof(
    { weight: 3, arbitrary: w(mdevFile('remove'), fc.constant('1\n')) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom('remove-adapter', 'configure'), ref('aid')).map(([c, a]): Op => ({ lpar: c === 'configure' ? `configure ${a} off` : `${c} ${a}` })) },
    { weight: 1, arbitrary: ref('did').map((d): Op => ({ lpar: `remove-usage-domain ${d}` })) },
    { weight: 2, arbitrary: w(fc.constantFrom('bus/ap/apmask', 'bus/ap/aqmask'), fc.constantFrom('0x\n', '-4\n', '+4\n', '-5,-6\n', '0xff\n')) },
    { weight: 1, arbitrary: w(fc.constant(`${T}/create`), uuid.map(u => `${u}\n`)) },
    { weight: 1, arbitrary: w(fc.constantFrom('cex4queue', 'vfio_ap').map(d => `bus/ap/drivers/${d}/unbind`), ref('q').map(q => `${q}\n`)) },
    { weight: 1, arbitrary: guestName.map((n): Op => ({ stop: n })) }
  )
).map(([held, d, then]): Op => ({ held, d, then }))

const op: fc.Arbitrary<Op> = fc.oneof(
  { withCrossShrink: true },
  // first, so that shrinking turns irrelevant steps into it
  { weight: 1, arbitrary: fc.constant<Op>({ idle: true }) },
  { weight: 8, arbitrary: w(fc.constant('bus/ap/apmask'), maskText('aid', adapterId)) },
  { weight: 6, arbitrary: w(fc.constant('bus/ap/aqmask'), maskText('did', domainId)) },
  {
    weight: 7,
    arbitrary: w(fc.constant(`${T}/create`), fc.oneof(
      { weight: 8, arbitrary: uuid.map(u => `${u}\n`) },
      { weight: 2, arbitrary: uuid.chain(u => fc.constantFrom(u, `${u}x`, `${u.toUpperCase()}\n`, `{${u}}\n`, `${u}\r\n`, '1234\n', `${u.slice(1)}\n`)) }
    ))
  },
  { weight: 2, arbitrary: w(mdevFile('remove'), fc.constantFrom('1\n', '1\n', '0\n', 'yes\n', '0x1\n', '')) },
  { weight: 9, arbitrary: w(mdevFile('assign_adapter'), numText('aid')) },
  { weight: 9, arbitrary: w(mdevFile('assign_domain'), numText('did')) },
  { weight: 3, arbitrary: w(mdevFile('assign_control_domain'), numText('cid')) },
  { weight: 4, arbitrary: w(mdevFile('unassign_adapter'), numText('aid')) },
  { weight: 4, arbitrary: w(mdevFile('unassign_domain'), numText('did')) },
  { weight: 2, arbitrary: w(mdevFile('unassign_control_domain'), numText('cid')) },
  { weight: 4, arbitrary: w(mdevFile('ap_config'), apConfigText) },
  { weight: 5, arbitrary: w(fc.constantFrom('cex4queue', 'vfio_ap', 'cex4card').chain(d => fc.constantFrom(`bus/ap/drivers/${d}/bind`, `bus/ap/drivers/${d}/unbind`)), devName) },
  { weight: 2, arbitrary: w(fc.constant('bus/ap/drivers_probe'), devName) },
  { weight: 3, arbitrary: w(ref('qpath').map(q => `${q}/driver_override`), fc.constantFrom('vfio_ap\n', 'vfio_ap\n', 'cex4queue\n', '\n', 'junk\n', 'cex4card', 'vfio_ap\ncex4queue', '\0vfio_ap', 'x'.repeat(4095))) },
  { weight: 3, arbitrary: w(fc.oneof(ref('card').map(c => `devices/ap/${c}/online`), ref('qpath').map(q => `${q}/online`)), fc.constantFrom('0\n', '1\n', '1\n', '2\n', 'x\n', ' 1\n', '1', '-1\n')) },
  { weight: 3, arbitrary: w(ref('card').map(c => `devices/ap/${c}/config`), fc.constantFrom('0\n', '1\n', '1\n', '2\n', 'on\n')) },
  { weight: 1, arbitrary: w(fc.constantFrom('bus/ap/scans', 'bus/ap/drivers_autoprobe', 'bus/ap/ap_domain'), fc.oneof(fc.constantFrom('1\n', '0\n'), numText('did'))) },
  { weight: 1, arbitrary: w(ref('qpath').map(q => `${q}/reset`), fc.constant('1\n')) },
  { weight: 1, arbitrary: w(fc.oneof(ref('qpath'), ref('card').map(c => `devices/ap/${c}`), ref('mdev').map(u => `${M}/${u}`)).map(d => `${d}/power/control`), fc.constantFrom('on\n', 'auto\n', 'off\n')) },
  { weight: 4, arbitrary: fc.tuple(guestName, fc.oneof({ weight: 9, arbitrary: ref('mdev') }, { weight: 1, arbitrary: fc.constant('00000000-0000-0000-0000-000000000000') })).map(([n, u]): Op => ({ start: n, uuid: u })) },
  { weight: 3, arbitrary: guestName.map((n): Op => ({ stop: n })) },
  { weight: 5, arbitrary: fc.array(lparLine, { minLength: 1, maxLength: 3 }).map((l): Op => ({ lpar: l.join('\n') })) },
  { weight: 4, arbitrary: heldOp }
)

/** The operation with its references resolved against the host as it is now. */
function concrete (host: Host, o: Op): Op {
  if ('w' in o) return { w: resolve(host, o.w), d: resolve(host, o.d) }
  if ('start' in o) return { start: o.start, uuid: resolve(host, o.uuid) }
  if ('lpar' in o) return { lpar: resolve(host, o.lpar) }
  if ('held' in o) return { held: resolve(host, o.held), d: o.d, then: o.then }
  return o
}

interface Run { topology: string, kernel: string, ops: Op[] }
const STEPS = { minLength: 102, maxLength: 120 }
const runArb: fc.Arbitrary<Run> = fc.record({
  topology: fc.constantFrom('tg', 'tg', 'tg', 'f1', 'f1', 'noapxa', 'zvm', 'noqci', 'novfio'),
  kernel: fc.constantFrom(...PROFILE_NAMES),
  ops: fc.array(op, STEPS)
})

// ---------------------------------------------------------------------------------------
// Invariants

class Violation extends Error {}
function check (ok: boolean, what: string): void { if (!ok) throw new Violation(what) }
function same<T> (actual: T, expected: T, what: string): void {
  if (actual !== expected) throw new Violation(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
}

/** The matrix formatter of vfio-ap.md §2.9, written from the spec. */
function matrixText (apm: number[], aqm: number[], amax: number, dmax: number): string {
  const as = apm.filter(a => a <= amax)
  const ds = aqm.filter(d => d <= dmax)
  let out = ''
  if (as.length > 0 && ds.length > 0) for (const a of as) for (const d of ds) out += `${h2(a)}.${h4(d)}\n`
  else if (as.length > 0) out = as.map(a => `${h2(a)}.\n`).join('')
  else out = ds.map(d => `.${h4(d)}\n`).join('')
  return out.slice(0, 4095)
}

const subset = (a: Mask, b: Mask): boolean => a.andNot(b).isEmpty()
const ids = (m: Mask): string => `{${m.ids().join(',')}}`

function entryNames (fs: Sysfs, path: string): string[] { return fs.readdir(path).map(e => e.name) }

/** The node at `path` (no links followed; every path here is a real one), without the cost of an exception. */
function nodeAt (root: Node, path: string): Node | undefined {
  let n: Node | undefined = root
  for (const part of path.split('/')) {
    if (n === undefined || n.kind !== 'dir') return undefined
    n = n.lookup(part)
  }
  return n
}

function linkTarget (root: Node, path: string): string | undefined {
  const n = nodeAt(root, path)
  return n === undefined ? undefined : n.kind === 'link' ? n.target : `(${n.kind})`
}

const exists = (root: Node, path: string): boolean => nodeAt(root, path) !== undefined

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface After { maskWrite: boolean }

/** Invariants 1, 2, 3, 5 and 6 on the host as it is now. */
function invariants (host: Host, fs: Sysfs, p: KernelProfile, after: After): void {
  const bus = host.bus
  const v = host.vfio
  const queues = [...bus.allQueues()]
  const cards = bus.sortedCards()

  // 6: devices, drivers and their links
  const devNames = cards.flatMap(c => [c.name, ...c.sortedQueues().map(q => q.name)])
  same(entryNames(fs, 'bus/ap/devices').join(' '), devNames.join(' '), 'bus/ap/devices lists the model\'s devices')
  for (const d of bus.drivers) {
    const listed = entryNames(fs, `bus/ap/drivers/${d.name}`).filter(n => !['bind', 'unbind', 'uevent', 'module'].includes(n))
    const bound = cards.flatMap(c => [c, ...c.sortedQueues()]).filter(x => x.driver === d.name).map(x => x.name)
    same(listed.join(' '), bound.join(' '), `bus/ap/drivers/${d.name} lists the devices bound to it`)
  }
  for (const dev of [...cards, ...queues]) {
    const dir = nodeAt(host.root, dev.treePath)
    if (dir?.kind !== 'dir') throw new Violation(`${dev.treePath} is not a directory`)
    const driver = dir.lookup('driver')
    same(driver?.kind === 'link' ? driver.target : driver?.kind, dev.driver === undefined ? undefined : `bus/ap/drivers/${dev.driver}`, `${dev.name}/driver`)
    if (dev instanceof Queue) {
      same(dir.lookup('online') !== undefined, dev.driver === 'cex4queue', `${dev.name}/online exists iff bound to cex4queue`)
      same(dir.lookup('status') !== undefined, dev.driver === 'vfio_ap' && p.queueStatus, `${dev.name}/status exists iff bound to vfio_ap`)
    } else {
      same(dir.lookup('online') !== undefined, dev.driver === 'cex4card', `${dev.name}/online exists iff bound to cex4card`)
    }
  }
  if (p.scansAndBindings) {
    const bound = queues.filter(q => q.driver !== undefined).length
    same(host.read('bus/ap/bindings'), `${bound}/${queues.length}${bus.scans >= 1n && bound === queues.length ? ' (complete)' : ''}\n`, 'bus/ap/bindings')
  }
  same(host.read('bus/ap/apmask'), `${hexOf(bus.apmask.ids())}\n`, 'bus/ap/apmask')
  same(host.read('bus/ap/aqmask'), `${hexOf(bus.aqmask.ids())}\n`, 'bus/ap/aqmask')

  // 2: after a successful mask write, ownership and binding agree
  if (after.maskWrite) {
    for (const q of queues) {
      const owned = bus.apmask.has(q.apid) && bus.aqmask.has(q.apqi)
      check(q.driverOverride === undefined, `${q.name} has driver_override ${String(q.driverOverride)} after a successful mask write`)
      check(!(owned && q.driver === 'vfio_ap'), `${q.name} is host-owned but bound to vfio_ap after a mask write`)
      check(!(!owned && q.driver === 'cex4queue'), `${q.name} is not host-owned but bound to cex4queue after a mask write`)
    }
  }

  if (v === undefined) {
    check(!exists(host.root, 'devices/vfio_ap'), 'no vfio_ap tree without the module')
    return
  }
  const mdevs = v.mdevs

  // 1: no APQN in two matrices
  for (let i = 0; i < mdevs.length; i++) {
    for (let j = i + 1; j < mdevs.length; j++) {
      const a = mdevs[i].apm.and(mdevs[j].apm)
      const d = mdevs[i].aqm.and(mdevs[j].aqm)
      check(a.isEmpty() || d.isEmpty(), `mdevs ${mdevs[i].uuid} and ${mdevs[j].uuid} share adapters ${ids(a)} x domains ${ids(d)}`)
    }
  }

  // 5 and 6: the mdev listings
  const listed = entryNames(fs, M).filter(n => UUID_RE.test(n))
  same(listed.length, v.count, 'mdev directories = mdevs')
  same(Number(host.read(`${T}/available_instances`)) + listed.length, MAX_MDEVS, 'available_instances + mdevs')
  const uuids = mdevs.map(m => m.uuid).sort()
  same(listed.join(' '), uuids.join(' '), `${M} lists the mdevs`)
  same(entryNames(fs, `${T}/devices`).join(' '), uuids.join(' '), 'the type\'s devices/')
  same(entryNames(fs, 'bus/mdev/devices').join(' '), uuids.join(' '), 'bus/mdev/devices')
  same(entryNames(fs, 'kernel/iommu_groups').length, mdevs.length, 'one IOMMU group per mdev')

  const guests = new Set<string>()
  for (const m of mdevs) {
    const dir = `${M}/${m.uuid}`
    same(host.read(`${dir}/matrix`), matrixText(m.apm.ids(), m.aqm.ids(), v.apmMax, v.aqmMax), `${m.uuid}/matrix`)
    same(host.read(`${dir}/control_domains`), m.adm.ids().filter(d => d <= v.aqmMax).map(d => `${h4(d)}\n`).join(''), `${m.uuid}/control_domains`)
    if (p.dynamicConfig) same(host.read(`${dir}/guest_matrix`), matrixText(m.shadow.apm.ids(), m.shadow.aqm.ids(), v.apmMax, v.aqmMax), `${m.uuid}/guest_matrix`)
    if (p.apConfig) same(host.read(`${dir}/ap_config`), `${hexOf(m.apm.ids())},${hexOf(m.aqm.ids())},${hexOf(m.adm.ids())}\n`, `${m.uuid}/ap_config`)
    same(exists(host.root, `${dir}/remove`), !m.removing, `${m.uuid}/remove exists iff no remove is waiting`)
    same(linkTarget(host.root, `${dir}/iommu_group`), `kernel/iommu_groups/${m.iommuGroup}`, `${m.uuid}/iommu_group`)
    check(m.apm.ids().every(a => a <= v.apmMax) && m.aqm.ids().every(d => d <= v.aqmMax) && m.adm.ids().every(d => d <= v.aqmMax), `${m.uuid}: an assigned id above the maximum`)

    // 3: the guest view
    if (p.dynamicConfig) {
      const q = bus.qci
      const hostApm = q.available ? q.apm : undefined
      check(subset(m.shadow.apm, m.apm) && subset(m.shadow.aqm, m.aqm) && subset(m.shadow.adm, m.adm), `${m.uuid}: guest_matrix ${ids(m.shadow.apm)}x${ids(m.shadow.aqm)} adm ${ids(m.shadow.adm)} not within the matrix ${ids(m.apm)}x${ids(m.aqm)} adm ${ids(m.adm)}`)
      if (hostApm === undefined) {
        check(m.shadow.apm.isEmpty() && m.shadow.aqm.isEmpty() && m.shadow.adm.isEmpty(), `${m.uuid}: a guest view without QCI`)
      } else {
        check(subset(m.shadow.apm, q.apm) && subset(m.shadow.aqm, q.aqm) && subset(m.shadow.adm, q.adm), `${m.uuid}: guest_matrix ${ids(m.shadow.apm)}x${ids(m.shadow.aqm)} adm ${ids(m.shadow.adm)} outside the host configuration ${ids(q.apm)}x${ids(q.aqm)} adm ${ids(q.adm)}`)
      }
      if (p.filterWholeMatrix) {
        for (const a of m.shadow.apm.ids()) {
          for (const d of m.shadow.aqm.ids()) {
            const qq = bus.queue(a, d)
            check(qq !== undefined && qq.driver === 'vfio_ap', `${m.uuid}: guest_matrix has ${h2(a)}.${h4(d)}, which is ${qq === undefined ? 'not a queue' : `bound to ${String(qq.driver)}`}`)
          }
        }
      }
    }
    if (m.guest !== undefined) {
      check(!guests.has(m.guest), `guest ${m.guest} holds two mdevs`)
      guests.add(m.guest)
      const g = m.guestApcb
      check(g !== undefined, `${m.uuid}: guest ${m.guest} without an AP configuration`)
      if (g !== undefined) {
        const inner = subset(g.apm, m.shadow.apm) && subset(g.aqm, m.shadow.aqm) && subset(g.adm, m.shadow.adm)
        const equal = g.apm.equals(m.shadow.apm) && g.aqm.equals(m.shadow.aqm) && g.adm.equals(m.shadow.adm)
        check(m.removing ? inner : equal, `${m.uuid}: guest ${m.guest} has ${ids(g.apm)}x${ids(g.aqm)} adm ${ids(g.adm)}, guest_matrix is ${ids(m.shadow.apm)}x${ids(m.shadow.aqm)} adm ${ids(m.shadow.adm)}`)
      }
    } else {
      check(m.guestApcb === undefined && !m.removing, `${m.uuid}: no guest, but a guest configuration or a waiting remove`)
    }
  }
  same(host.guests().map(g => g.name).join(' '), [...guests].sort((a, b) => a.localeCompare(b)).join(' '), 'the guest list')

  // 6: queue status (vfio-ap.md §6)
  if (p.queueStatus) {
    for (const q of queues) {
      if (q.driver !== 'vfio_ap') continue
      const owner = mdevs.find(m => m.apm.has(q.apid) && m.aqm.has(q.apqi))
      const expected = owner === undefined
        ? 'unassigned'
        : owner.guest === undefined
          ? 'assigned'
          : !p.filterWholeMatrix || (owner.shadow.apm.has(q.apid) && owner.shadow.aqm.has(q.apqi)) ? 'in use' : 'assigned'
      same(host.read(`${q.treePath}/status`), `${expected}\n`, `${q.name}/status`)
    }
  }
}

// ---------------------------------------------------------------------------------------
// Refusals: the state before and after, and the log lines a refusal may add

interface Pre { rest: string, klog: number, klogLen: number, uevents: number, ueventsLen: number }

function pre (host: Host): Pre {
  const s = host.snapshot()
  return {
    rest: JSON.stringify({ ...s, klog: undefined, uevents: undefined }),
    klog: s.klog.at(-1)?.seq ?? 0,
    klogLen: s.klog.length,
    uevents: s.uevents.at(-1)?.seq ?? 0,
    ueventsLen: s.uevents.length
  }
}

const apqn = (a: number, d: number): string => `${h2(a)}.${h4(d)}`

/** vfio-ap.md §4.3: the first overlapping mdev in list order (newest first), one line per APQN, adapter-major. */
function firstOverlap (v: VfioAp, skip: Mdev | undefined, apm: Mask, aqm: Mask): { x: Mdev, apqns: string[] } | undefined {
  for (const x of v.mdevs) {
    if (x === skip) continue
    const oa = apm.and(x.apm)
    const od = aqm.and(x.aqm)
    if (oa.isEmpty() || od.isEmpty()) continue
    return { x, apqns: oa.ids().flatMap(a => od.ids().map(d => apqn(a, d))) }
  }
  return undefined
}

/** The masks an ap_config write proposes (vfio-ap.md §5.2: 201 bytes, strsep at , or \n, three fields). */
function apConfigProposal (buf: string): [Mask, Mask] {
  let rest: string | undefined = cstr(buf).slice(0, 201)
  const field = (): Mask => {
    if (rest === undefined) throw new Violation('ap_config EADDRINUSE with a field missing')
    const i = rest.search(/[,\n]/)
    const text = i < 0 ? rest : rest.slice(0, i)
    rest = i < 0 ? undefined : rest.slice(i + 1)
    return hex2mask(text)
  }
  const apm = field()
  const aqm = field()
  return [apm, aqm]
}

/** The kernel log lines the refused `op` must have added (errno already known). */
function expectedRefusalLog (host: Host, p: KernelProfile, op: Op, errno: Errno): string[] {
  const v = host.vfio
  if (!('w' in op) || v === undefined) return []
  const path = op.w
  if (errno === 'EADDRINUSE' && p.dynamicConfig) {
    const m = v.mdev(path.split('/')[3])
    if (m === undefined) throw new Violation(`EADDRINUSE from ${path} of no mdev`)
    let apm = m.apm
    let aqm = m.aqm
    if (path.endsWith('/assign_adapter')) apm = apm.clone().set(Number(kstrtoull(op.d)))
    else if (path.endsWith('/assign_domain')) aqm = aqm.clone().set(Number(kstrtoull(op.d)))
    else if (path.endsWith('/ap_config')) [apm, aqm] = apConfigProposal(op.d)
    else throw new Violation(`EADDRINUSE from ${path}`)
    const o = firstOverlap(v, m, apm, aqm)
    if (o === undefined) throw new Violation(`EADDRINUSE from ${path} without an overlapping mdev`)
    return o.apqns.map(q => p.newLogWording
      ? `vfio_ap_mdev ${m.uuid}: Userspace may not assign queue ${q} to mdev: already assigned to ${o.x.uuid}`
      : `vfio_ap_mdev ${o.x.uuid}: Userspace may not re-assign queue ${q} already assigned to ${o.x.uuid}`)
  }
  if (errno === 'EBUSY' && (path === 'bus/ap/apmask' || path === 'bus/ap/aqmask')) {
    const which = path === 'bus/ap/apmask' ? 'apmask' : 'aqmask'
    const bus = host.bus
    const current = bus[which]
    const newly = parseApMask(op.d, current).andNot(current)
    const other = (m: Mask): Mask => p.driverOverride ? hex2mask('f'.repeat(64)) : m
    const o = firstOverlap(v, undefined, which === 'apmask' ? newly : other(bus.apmask), which === 'aqmask' ? newly : other(bus.aqmask))
    if (o === undefined) throw new Violation(`EBUSY from ${path} without an mdev holding a newly reserved APQN`)
    return o.apqns.map(q => p.newLogWording
      ? `vfio_ap_mdev ${o.x.uuid}: Can not reserve queue ${q} for host driver: in use by mdev`
      : `vfio_ap_mdev ${o.x.uuid}: Userspace may not re-assign queue ${q} already assigned to ${o.x.uuid}`)
  }
  return []
}

// ---------------------------------------------------------------------------------------
// Running a sequence

const totals = { sequences: 0, operations: 0, refused: 0, blocked: 0, crashes: 0, violations: 0, errnos: new Map<string, number>(), files: new Map<string, number>() }

type Outcome = { ok: true } | { ok: false, errno: Errno } | { blocked: true }

function apply (host: Host, o: Op): Outcome {
  try {
    if ('w' in o) host.write(o.w, o.d)
    else if ('start' in o) host.startGuest(o.start, o.uuid)
    else if ('stop' in o) host.stopGuest(o.stop)
    else if ('lpar' in o) host.changeLpar(parseLparCommands(o.lpar))
    return { ok: true }
  } catch (e) {
    if (isSysfsError(e)) return { ok: false, errno: e.code }
    if (e instanceof Error && e.message.endsWith('the store blocks; use writeAsync')) return { blocked: true }
    totals.crashes++
    throw new Violation(`the model threw a non-errno exception: ${e instanceof Error ? e.stack ?? e.message : String(e)}`)
  }
}

function allowedErrnos (o: Op, p: KernelProfile): ReadonlySet<Errno> {
  const path = 'w' in o ? o.w : 'lpar' in o ? 'kernel/debug/apsim/lpar' : 'kernel/debug/apsim/guests'
  const store = storeErrnos(path, p)
  if (store === undefined) throw new Violation(`no errno table entry for ${path}`)
  return 'w' in o ? new Set([...store, ...openErrnos]) : store
}

/**
 * The model object a file belongs to (its mdev, queue or card; undefined for bus-wide files)
 * and whether the attribute is there now, from the model: zcrypt's `online` while zcrypt has
 * the device, an mdev's `remove` while no remove is waiting.
 */
function fileOwner (host: Host, path: string): { object: unknown, visible: boolean } {
  let m = /^devices\/vfio_ap\/matrix\/([0-9a-f-]{36})\/(.*)$/.exec(path)
  if (m !== null) {
    const mdev = host.vfio?.mdev(m[1])
    return { object: mdev, visible: mdev !== undefined && (m[2] !== 'remove' || !mdev.removing) }
  }
  m = /^devices\/ap\/card([0-9a-f]{2})(?:\/([0-9a-f]{2})\.([0-9a-f]{4}))?\/(.*)$/.exec(path)
  if (m !== null) {
    const dev = m[2] === undefined ? host.bus.card(parseInt(m[1], 16)) : host.bus.queue(parseInt(m[2], 16), parseInt(m[3], 16))
    const online = m[4] !== 'online' || dev?.driver === (m[2] === undefined ? 'cex4card' : 'cex4queue')
    return { object: dev, visible: dev !== undefined && online }
  }
  return { object: undefined, visible: true }
}

function runSequence (r: Run): void {
  let tick = 0
  const host = new Host({ ...parsedTopologies.get(r.topology)!, kernel: r.kernel }, { clockUsec: () => ++tick * 1000 })
  const p = profileOf(r.kernel)!
  const fs = new Sysfs(host.root)
  const steps: string[] = []
  const fail = (e: unknown): never => {
    totals.violations++
    const shown = steps.filter(s => !s.startsWith('idle')).map((s, i) => `  ${String(i + 1).padStart(3)}. ${s}`).join('\n')
    throw new Error(`${(e as Error).message}\n  topology ${r.topology}, kernel ${r.kernel}; the steps (idle ones left out), the last one broke it:\n${shown}`)
  }
  try {
    invariants(host, fs, p, { maskWrite: false })
  } catch (e) { fail(e) }
  /**
   * One step, checked: `exec` runs it (default: apply). For a write through a held fd,
   * `held` says whether its file went away (ENODEV expected) and whether the operation in
   * between changed anything (else the fd cannot have gone stale).
   */
  const step = (o: Op, exec: () => Outcome = () => apply(host, o), held?: { stale: boolean, between: Outcome }): Outcome => {
    const before = pre(host)
    const waiting = 'stop' in o ? (host.vfio?.mdevs ?? []).filter(m => m.removing && m.guest === o.stop).map(m => m.uuid) : []
    let outcome: Outcome
    try {
      outcome = exec()
    } catch (e) { steps.push(`${show(o)} -> crash`); return fail(e) }
    if (!('idle' in o)) totals.operations++
    steps.push(`${held !== undefined ? '  (held fd) ' : ''}${show(o)} -> ${'blocked' in outcome ? 'blocks' : outcome.ok ? 'ok' : outcome.errno}`)
    try {
      if ('errno' in outcome) {
        totals.refused++
        totals.errnos.set(outcome.errno, (totals.errnos.get(outcome.errno) ?? 0) + 1)
        const file = `${held !== undefined ? 'held ' : ''}${'w' in o ? o.w.split('/').pop() ?? '' : 'lpar' in o ? 'lpar' : 'guests'} ${outcome.errno}`
        totals.files.set(file, (totals.files.get(file) ?? 0) + 1)
        const allowed = allowedErrnos(o, p)
        const stale = held !== undefined && outcome.errno === 'ENODEV'
        check(allowed.has(outcome.errno) || stale, `${outcome.errno} is not among the errnos the spec documents for this file (${[...allowed].join(', ')})`)
        if (stale && !allowed.has('ENODEV')) {
          check(held.stale, 'ENODEV through a held fd whose file is still there')
          check(!('errno' in held.between), 'a held fd went stale although the operation in between was refused')
        }
        const now = pre(host)
        same(now.rest, before.rest, 'a refused operation left the state as it was (snapshot without the logs)')
        same(`${now.uevents}/${now.ueventsLen}`, `${before.uevents}/${before.ueventsLen}`, 'a refused operation sent no uevent')
        const expected = expectedRefusalLog(host, p, o, outcome.errno)
        const added = host.klog.records(before.klog)
        same(JSON.stringify(added.map(x => `${x.level} ${x.text}`)), JSON.stringify(expected.map(x => `warn ${x}`)), 'the kernel log lines a refusal adds')
      } else if ('blocked' in outcome) {
        totals.blocked++
        check('w' in o && o.w.endsWith('/remove') && p.removeBlocks, 'only an mdev remove blocks')
      }
      if (held?.stale === true) check('errno' in outcome && outcome.errno === 'ENODEV', 'a write through an fd whose file went away is ENODEV (kernfs_get_active)')
      invariants(host, fs, p, { maskWrite: 'ok' in outcome && outcome.ok && 'w' in o && o.d.length > 0 && (o.w === 'bus/ap/apmask' || o.w === 'bus/ap/aqmask') })
      // a remove that waited completes when the guest stops
      if ('stop' in o && 'ok' in outcome && outcome.ok) {
        for (const u of waiting) check(host.vfio?.mdev(u) === undefined, `the remove of ${u} waited for guest ${o.stop}, which stopped, but the mdev is still there`)
      }
    } catch (e) { fail(e) }
    return outcome
  }

  for (const symbolic of r.ops) {
    const o = concrete(host, symbolic)
    if (!('held' in o)) { step(o); continue }
    // a write through a file opened before `then`
    let fh: number
    try {
      fh = fs.open(o.held, O_WRONLY)
    } catch (e) {
      if (!isSysfsError(e)) { steps.push(`exec 3> ${o.held} -> crash`); return fail(e) }
      steps.push(`exec 3> ${o.held} -> ${e.code}`)
      try { check(openErrnos.has(e.code), `open ${o.held}: ${e.code}`) } catch (v) { fail(v) }
      continue
    }
    const owner = fileOwner(host, o.held)
    steps.push(`exec 3> ${o.held}`)
    const between = step(concrete(host, o.then))
    const now = fileOwner(host, o.held)
    const stale = now.object !== owner.object || !now.visible
    step({ w: o.held, d: o.d }, () => {
      try {
        const n = fs.write(fh, Buffer.from(o.d, 'latin1'))
        return typeof n === 'number' ? { ok: true } : { blocked: true }
      } catch (e) {
        if (isSysfsError(e)) return { ok: false, errno: e.code }
        throw e
      }
    }, { stale, between })
    fs.release(fh)
  }
  // 8: a snapshot restored into a new host is the same host
  try {
    const state = host.snapshot()
    const copy = Host.fromState(JSON.parse(JSON.stringify(state)), { clockUsec: () => ++tick * 1000 })
    same(JSON.stringify(copy.snapshot()), JSON.stringify(state), 'Host.fromState(snapshot).snapshot() = snapshot')
    invariants(copy, new Sysfs(copy.root), p, { maskWrite: false })
    for (const f of ['bus/ap/bindings', 'bus/ap/apmask', 'bus/ap/aqmask', 'bus/ap/ap_domain', 'bus/ap/ap_adapter_mask', `${T}/available_instances`]) {
      if (exists(host.root, f)) same(copy.read(f), host.read(f), `restored ${f}`)
    }
    for (const m of host.vfio?.mdevs ?? []) {
      for (const f of ['matrix', 'guest_matrix', 'control_domains', 'ap_config']) {
        const path = `${M}/${m.uuid}/${f}`
        if (exists(host.root, path)) same(copy.read(path), host.read(path), `restored ${path}`)
      }
    }
  } catch (e) { steps.push('(snapshot, Host.fromState)'); fail(e) }
  totals.sequences++
}

// ---------------------------------------------------------------------------------------

/**
 * The sequences run in chunks of CHUNK, one ava test each (ava times out a worker that
 * reports nothing for 120 s, and one synchronous property blocks it), chunk k with seed
 * SEED + k. APSIM_FC_SEED=<a chunk's seed> runs that chunk alone; APSIM_FC_PATH replays a
 * counterexample's path directly.
 */
const GIVEN_SEED = process.env.APSIM_FC_SEED
const SEED = GIVEN_SEED !== undefined ? Number(GIVEN_SEED) : (Date.now() ^ (process.pid << 8)) & 0x3fffffff
const RUNS = Number(process.env.APSIM_FC_RUNS ?? 1000)
const CHUNK = 100
const CHUNKS = GIVEN_SEED !== undefined ? 1 : Math.ceil(RUNS / CHUNK)
let startedAt = 0

for (let k = 0; k < CHUNKS; k++) {
  const seed = SEED + k
  const runs = GIVEN_SEED !== undefined ? Number(process.env.APSIM_FC_RUNS ?? CHUNK) : Math.min(CHUNK, RUNS - k * CHUNK)
  test.serial(`the kernel's invariants hold after every step of random operation sequences, under every profile (${k + 1}/${CHUNKS})`, t => {
    startedAt ||= Date.now()
    const path = process.env.APSIM_FC_PATH
    const before = totals.operations
    t.log(`fast-check seed ${seed}${path !== undefined ? `, path ${path}` : ''}: ${runs} sequences of ${STEPS.minLength}-${STEPS.maxLength} steps (APSIM_FC_SEED=${seed} reproduces)`)
    fc.assert(fc.property(runArb, r => { runSequence(r) }), { seed, numRuns: runs, path, includeErrorInReport: true })
    t.true(totals.operations - before >= runs * STEPS.minLength * 0.9, 'enough operations ran')
  })
}

test.after.always(t => {
  t.log(`${totals.sequences} sequences, ${totals.operations} operations (${totals.refused} refused, ${totals.blocked} blocked), ${totals.crashes} crashes, ${totals.violations} invariant violations in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`)
  t.log(`refusals by errno: ${[...totals.errnos].sort((a, b) => b[1] - a[1]).map(([e, n]) => `${e} ${n}`).join(', ')}`)
  t.log(`most refused: ${[...totals.files].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([e, n]) => `${e} ${n}`).join(', ')}`)
  console.log(`invariants: seeds ${SEED}..${SEED + CHUNKS - 1}: ${totals.operations} operations tried in ${totals.sequences} sequences, ${totals.crashes} crashes, ${totals.violations} invariant violations`)
})
