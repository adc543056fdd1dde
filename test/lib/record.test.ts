/**
 * lib/record.ts (`apsim record`): a topology recorded from a host's sysfs tree. Unit tests on
 * hand-written trees (what a real /sys shows), round trips through an in-process Host, and
 * the whole path through the CLI: mount a fixture, copy the attribute files a recorder reads
 * into a plain directory, `apsim record` it, mount the recorded topology and compare.
 */
import test from 'ava'
import { mkdirSync, mkdtempSync, promises as fsp, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { Host } from '../../lib/host.js'
import { maskIds, RecordError, recordTopology } from '../../lib/record.js'
import { Sysfs } from '../../lib/sysfs.js'
import { loadTopology, topologyFrom } from '../../lib/topology.js'
import { apsim, mountHost, requireFuse, type Mounted } from '../helpers/mount.js'

const fixtureFile = (name: string): string => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url))

/** A reader and lister over a map of relative paths to contents (directories implied). */
function tree (files: Record<string, string>): { read: (p: string) => string | undefined, list: (d: string) => string[] | undefined } {
  return {
    read: p => files[p],
    list: d => {
      const prefix = d + '/'
      const names = new Set<string>()
      for (const f of Object.keys(files)) if (f.startsWith(prefix)) names.add(f.slice(prefix.length).split('/')[0])
      return names.size === 0 ? undefined : [...names]
    }
  }
}

const ONES = '0x' + 'f'.repeat(64)
const mask = (ids: number[]): string => {
  const bits = new Array<number>(256).fill(0)
  for (const i of ids) bits[i] = 1
  let s = '0x'
  for (let k = 0; k < 64; k++) s += (bits[4 * k] * 8 + bits[4 * k + 1] * 4 + bits[4 * k + 2] * 2 + bits[4 * k + 3]).toString(16)
  return s
}

/** What an LPAR with QCI shows: card 0x03 (CEX8C, queues 03.0004, 03.000b), card 0x05 (CEX8P, deconfigured). */
const LPAR: Record<string, string> = {
  'bus/ap/ap_max_adapter_id': '255\n',
  'bus/ap/ap_max_domain_id': '84\n',
  'bus/ap/features': 'APSC APXA QACT RC8A\n',
  'bus/ap/ap_adapter_mask': mask([3, 5]) + '\n',
  'bus/ap/ap_usage_domain_mask': mask([4, 11]) + '\n',
  'bus/ap/ap_control_domain_mask': mask([4, 11, 12]) + '\n',
  'bus/ap/poll_timeout': '250000\n',
  'bus/ap/ap_interrupts': '1\n',
  'bus/ap/apmask': ONES + '\n',
  'bus/ap/aqmask': ONES + '\n',
  'bus/ap/drivers/cex4card/bind': '',
  'bus/ap/drivers/cex4queue/bind': '',
  'bus/ap/drivers/vfio_ap/bind': '',
  'devices/ap/card03/raw_hwtype': '14\n',
  'devices/ap/card03/ap_functions': '0x92800000\n',
  'devices/ap/card03/depth': '8\n',
  'devices/ap/card03/max_msg_size': '12288\n',
  'devices/ap/card03/config': '1\n',
  'devices/ap/card03/chkstop': '0\n',
  'devices/ap/card03/serialnr': '93AAC03S\n',
  'devices/ap/card03/03.0004/ap_functions': '0x9280C001\n',
  'devices/ap/card03/03.000b/ap_functions': '0x9280C001\n',
  'devices/ap/card05/raw_hwtype': '14\n',
  'devices/ap/card05/ap_functions': '0x86000000\n',
  'devices/ap/card05/depth': '4\n',
  'devices/ap/card05/max_msg_size': '49152\n',
  'devices/ap/card05/config': '0\n',
  'devices/ap/card05/chkstop': '0\n',
  'devices/ap/card05/05.0004/ap_functions': '0x86000000\n',
  'devices/ap/card05/05.000b/ap_functions': '0x86000000\n',
  'devices/ap/uevent': ''
}

test('maskIds reads the 64-digit masks bit 0 leftmost', t => {
  t.deepEqual(maskIds('0x' + '0'.repeat(64)), [])
  t.deepEqual(maskIds('0x8000000000000000000000000000000000000000000000000000000000000001\n'), [0, 255])
  t.deepEqual(maskIds(mask([4, 0x47, 0xab, 0xff])), [4, 0x47, 0xab, 0xff])
  t.throws(() => maskIds('not supported'), { instanceOf: RecordError })
})

test('an LPAR with QCI: features, Na/Nd, adapters with the queue facility word, QCI domains, modules', t => {
  const { read, list } = tree(LPAR)
  const r = recordTopology(read, list)
  t.deepEqual(r.topology, {
    host: 'lpar',
    qci: { available: true, features: ['APSC', 'APXA', 'QACT', 'RC8A'], max_adapter_id: 255, max_domain_id: 84 },
    interrupts: true,
    adapters: [
      { id: 3, type: 'CEX8', mode: 'cca', functions: 0x9280C001, depth: 8, serial: '93AAC03S', config: true, chkstop: false },
      { id: 5, type: 'CEX8', mode: 'ep11', functions: 0x86000000, depth: 4, ml: 12, config: false, chkstop: false }
    ],
    usage_domains: [4, 11],
    control_domains: [4, 11, 12],
    modules: ['zcrypt_cex4', 'vfio_ap']
  })
  t.deepEqual(r.notes, [])
  t.notThrows(() => topologyFrom(r.topology))
})

test('no QCI: qci unavailable, usage domains from the queue names; z/VM from poll_timeout; masks as kernel parameters', t => {
  const files: Record<string, string> = {
    ...LPAR,
    'bus/ap/ap_max_adapter_id': '63\n',
    'bus/ap/ap_max_domain_id': '15\n',
    'bus/ap/features': '-\n',
    'bus/ap/ap_adapter_mask': 'not supported\n',
    'bus/ap/ap_usage_domain_mask': 'not supported\n',
    'bus/ap/ap_control_domain_mask': 'not supported\n',
    'bus/ap/poll_timeout': '1500000\n',
    'bus/ap/ap_interrupts': '0\n',
    'bus/ap/apmask': mask([3]) + '\n',
    'bus/ap/aqmask': mask([0, 1, 2, 3, 4]) + '\n'
  }
  delete files['bus/ap/drivers/vfio_ap/bind']
  const { read, list } = tree(files)
  const r = recordTopology(read, list)
  t.like(r.topology, {
    host: 'zvm',
    qci: { available: false },
    interrupts: false,
    usage_domains: [4, 11],
    kernel_params: { 'ap.apmask': mask([3]), 'ap.aqmask': mask([0, 1, 2, 3, 4]) },
    modules: ['zcrypt_cex4']
  })
  t.false('control_domains' in r.topology)
})

test('a raw type above CEX8 is raw_type; a card without a mode bit is left out with a note', t => {
  const { read, list } = tree({
    ...LPAR,
    'devices/ap/card03/raw_hwtype': '15\n',
    'devices/ap/card05/ap_functions': '0x80000000\n',
    'devices/ap/card05/05.0004/ap_functions': '0x80000000\n',
    'devices/ap/card05/05.000b/ap_functions': '0x80000000\n'
  })
  const r = recordTopology(read, list)
  const adapters = r.topology.adapters as Array<Record<string, unknown>>
  t.deepEqual(adapters.map(a => [a.id, a.type, a.raw_type]), [[3, undefined, 15]])
  t.true(r.notes.some(n => n.includes('card05') && n.includes('no mode bit')), r.notes.join('\n'))
  t.true(r.notes.some(n => n.includes('ap_adapter_mask') && n.includes('5')), r.notes.join('\n'))
})

test('a tree without an AP bus is a RecordError that says so', t => {
  const { read, list } = tree({ 'class/net/lo/mtu': '65536\n' })
  const e = t.throws(() => recordTopology(read, list), { instanceOf: RecordError })
  t.regex(e?.message ?? '', /cannot read bus\/ap\/ap_max_adapter_id: is this a \/sys tree of a host with an AP bus\?/)
})

// ---------------------------------------------------------------------------------------
// Round trips through an in-process host

/** A reader and lister over a Host's own tree (what its /sys shows). */
function hostTree (h: Host): { read: (p: string) => string | undefined, list: (d: string) => string[] | undefined } {
  const fs = new Sysfs(h.root)
  return {
    read: p => { try { return h.read(p) } catch { return undefined } },
    list: d => { try { return fs.readdir(d).map(e => e.name) } catch { return undefined } }
  }
}

/** The bus attributes and cards a recorded topology must reproduce. */
function observed (h: Host): Record<string, string> {
  const out: Record<string, string> = {}
  const { read, list } = hostTree(h)
  for (const a of ['ap_max_adapter_id', 'ap_max_domain_id', 'features', 'ap_adapter_mask', 'ap_usage_domain_mask', 'ap_control_domain_mask',
    'poll_timeout', 'ap_interrupts', 'apmask', 'aqmask', 'ap_domain', 'bindings']) out[`bus/ap/${a}`] = read(`bus/ap/${a}`) ?? '(none)'
  out['bus/ap/drivers'] = (list('bus/ap/drivers') ?? []).join(' ')
  for (const c of (list('devices/ap') ?? []).filter(n => n.startsWith('card'))) {
    for (const a of ['hwtype', 'raw_hwtype', 'ap_functions', 'depth', 'max_msg_size', 'config', 'chkstop', 'type', 'serialnr', 'online']) out[`${c}/${a}`] = read(`devices/ap/${c}/${a}`) ?? '(none)'
    const queues = (list(`devices/ap/${c}`) ?? []).filter(n => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(n))
    out[`${c}/queues`] = queues.join(' ')
    for (const q of queues) out[`${c}/${q}/ap_functions`] = read(`devices/ap/${c}/${q}/ap_functions`) ?? '(none)'
  }
  return out
}

const roundTrip = test.macro({
  exec (t, yaml: string) {
    const original = new Host(loadTopology(yaml))
    const { read, list } = hostTree(original)
    const r = recordTopology(read, list)
    const copy = new Host(topologyFrom(r.topology))
    t.deepEqual(observed(copy), observed(original))
  },
  title: (name = '') => `round trip through a Host: ${name}`
})

test('f1 fixture', roundTrip, readFileSync(fixtureFile('f1.yaml'), 'utf8'))
test('tg fixture', roundTrip, readFileSync(fixtureFile('tg.yaml'), 'utf8'))
test('no QCI, z/VM, kernel masks, a deconfigured and a checkstopped card, ml and serials', roundTrip, `
host: zvm
qci: { available: false }
interrupts: false
adapters:
  - { id: 1, type: CEX6, mode: cca, serial: 93AAX01S, ml: 8 }
  - { id: 2, type: CEX7, mode: ep11, config: false }
  - { id: 9, type: CEX4, mode: accel, chkstop: true, depth: 3 }
usage_domains: [1, 2, 14]
kernel_params: { ap.apmask: "0x4000", ap.aqmask: "0x6" }
modules: [zcrypt_cex4]
`)
test('QCI without APXA and a future card type', roundTrip, `
qci: { features: [APSC, QACT] }
adapters:
  - { id: 4, raw_type: 15, mode: cca }
  - { id: 5, type: CEX8, mode: accel, functions: 0xEA00C000 }
usage_domains: [0, 15]
control_domains: [0, 7, 15]
`)

test('a Secure Execution guest is recorded as one; its queues\' bind states are not part of the topology', t => {
  const original = new Host(loadTopology(`
host: kvm
secure_execution: true
qci: { features: [APSC, APXA, QACT, RC8A, APSB] }
adapters: [{ id: 4, type: CEX8, mode: ep11 }, { id: 5, type: CEX8, mode: accel }]
usage_domains: [4]
modules: [zcrypt_cex4]
`))
  original.write('devices/ap/card04/04.0004/se_bind', '1')
  const { read, list } = hostTree(original)
  const r = recordTopology(read, list)
  t.like(r.topology, { host: 'kvm', secure_execution: true })
  t.deepEqual((r.topology.adapters as Array<{ functions: number }>).map(a => a.functions), [0x86000000, 0xea000000])
  t.true(r.notes.some(n => /Secure Execution guest/.test(n)))
  const copy = new Host(topologyFrom(r.topology))
  t.is(copy.read('devices/ap/card04/04.0004/se_bind'), 'unbound\n')
  t.is(copy.read('devices/ap/card05/05.0004/ap_functions'), '0xEA008000\n')
})

// ---------------------------------------------------------------------------------------
// Through the CLI, from a plain-file copy of a mount

/** The attribute files a recorder reads, copied from a mount into a plain directory. */
async function copyTree (m: Mounted, to: string): Promise<void> {
  const copy = async (rel: string): Promise<void> => {
    let text: string
    try { text = await m.read(rel) } catch { return }
    mkdirSync(path.dirname(path.join(to, rel)), { recursive: true })
    writeFileSync(path.join(to, rel), text)
  }
  for (const a of ['ap_max_adapter_id', 'ap_max_domain_id', 'features', 'ap_adapter_mask', 'ap_usage_domain_mask', 'ap_control_domain_mask',
    'poll_timeout', 'ap_interrupts', 'apmask', 'aqmask']) await copy(`bus/ap/${a}`)
  for (const d of await fsp.readdir(path.join(m.dir, 'bus/ap/drivers'))) mkdirSync(path.join(to, 'bus/ap/drivers', d), { recursive: true })
  for (const c of (await fsp.readdir(path.join(m.dir, 'devices/ap'))).filter(n => n.startsWith('card'))) {
    for (const a of ['raw_hwtype', 'ap_functions', 'depth', 'max_msg_size', 'config', 'chkstop', 'serialnr']) await copy(`devices/ap/${c}/${a}`)
    for (const q of (await fsp.readdir(path.join(m.dir, 'devices/ap', c))).filter(n => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(n))) await copy(`devices/ap/${c}/${q}/ap_functions`)
  }
}

/** What `ls`/`cat` show of the bus and the cards through a mount. */
async function shown (m: Mounted): Promise<string> {
  const r = await m.sh('cd bus/ap && for f in ap_max_adapter_id ap_max_domain_id features ap_adapter_mask ap_usage_domain_mask ap_control_domain_mask ' +
    'poll_timeout ap_interrupts apmask aqmask bindings; do echo "$f: $(cat $f)"; done; ls drivers; cd ../../devices/ap && ' +
    'for c in card*; do echo "$c: $(cat $c/raw_hwtype $c/ap_functions $c/depth $c/max_msg_size $c/config $c/chkstop $c/type 2>&1 | tr "\\n" " ")"; ls $c | grep "\\." | tr "\\n" " "; echo; done')
  return r.stdout
}

const throughCli = test.macro({
  async exec (t, topologyYaml: string) {
    requireFuse()
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-record-'))
    const original = await mountHost({ topologyYaml })
    let copy: Mounted | undefined
    try {
      await copyTree(original, path.join(tmp, 'sys'))
      const yaml = await apsim('record', path.join(tmp, 'sys'))
      t.is(yaml.code, 0, yaml.stderr)
      t.regex(yaml.stdout, /^# recorded by apsim record from /)
      const json = await apsim('record', path.join(tmp, 'sys'), '--json')
      t.is(json.code, 0, json.stderr)
      t.deepEqual(parseYaml(yaml.stdout), JSON.parse(json.stdout), 'the YAML and the JSON say the same')
      const out = path.join(tmp, 'recorded.yaml')
      const o = await apsim('record', path.join(tmp, 'sys'), '-o', out)
      t.is(o.code, 0, o.stderr)
      t.is(readFileSync(out, 'utf8'), yaml.stdout)
      copy = await mountHost({ topology: out })
      t.is(await shown(copy), await shown(original))
    } finally {
      await copy?.stop()
      await original.stop()
      rmSync(tmp, { recursive: true, force: true })
    }
  },
  title: (name = '') => `apsim record of a copied mount, mounted again, shows the same bus and cards: ${name}`
})

test('f1 fixture', throughCli, readFileSync(fixtureFile('f1.yaml'), 'utf8'))
test('no QCI, z/VM, kernel masks, deconfigured card', throughCli, `
host: zvm
qci: { available: false }
adapters:
  - { id: 1, type: CEX6, mode: cca, ml: 8 }
  - { id: 2, type: CEX7, mode: ep11, config: false }
usage_domains: [1, 2, 14]
kernel_params: { ap.apmask: "0x4000", ap.aqmask: "0x6" }
`)

test('apsim record of a directory without an AP bus exits 1 with the reason', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-record-'))
  try {
    const r = await apsim('record', tmp)
    t.is(r.code, 1)
    t.is(r.stdout, '')
    t.is(r.stderr, `apsim: ${tmp}: cannot read bus/ap/ap_max_adapter_id: is this a /sys tree of a host with an AP bus?\n`)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
})
