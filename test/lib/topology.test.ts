/**
 * lib/topology.ts: the host description (YAML or JSON) and its validation. Every error is
 * a TopologyError naming the offending field (`adapters[1].mode`) and the reason; defaults
 * fill what a file leaves out.
 */
import test from 'ava'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  DEFAULT_FUNCTIONS, DEFAULT_TOPOLOGY_YAML, defaultTopology, loadTopology, type Topology, TopologyError, topologyFrom
} from '../../lib/topology.js'

const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url)), 'utf8')

// ---------------------------------------------------------------------------------------
// Errors name the field

const badCase = test.macro({
  exec (t, yaml: string, field: string, reason: RegExp) {
    const e = t.throws(() => loadTopology(yaml, 'host.yaml'), { instanceOf: TopologyError })
    t.is(e?.field, field)
    t.regex(e?.reason ?? '', reason)
    t.is(e?.message, `host.yaml: ${field}: ${e?.reason ?? ''}`, 'message = source: field: reason')
  },
  title: (_p, yaml: string, field: string) => `invalid topology: ${field} (${JSON.stringify(yaml.replace(/^adapters:\n  - \{ id: 1, type: CEX8, mode: cca \}\n/, 'adapters: [ok, …] '))})`
})

const adapterIds = (topo: Topology): number[] => topo.adapters.map(a => a.id)

const A = (extra: string): string => `adapters:\n  - { id: 1, type: CEX8, mode: cca }\n  - { ${extra} }\n`

for (const [yaml, field, reason] of [
  // document shape
  ['[1, 2]', '(top level)', /mapping/],
  ['42', '(top level)', /mapping/],
  ['adapters: [', '(file)', /not valid YAML or JSON/],
  ['{"host": "lpar",', '(file)', /not valid YAML or JSON/],
  ['hosts: lpar', 'hosts', /unknown field/],
  // host, interrupts, modules
  ['host: zos', 'host', /one of lpar, zvm, kvm.*"zos"/],
  ['host: 1', 'host', /one of/],
  ['interrupts: yes please', 'interrupts', /true or false/],
  ['interrupts: 1', 'interrupts', /true or false/],
  ['modules: zcrypt_cex4', 'modules', /list/],
  ['modules: [zcrypt_cex4, zcrypt_cex2a]', 'modules[1]', /one of zcrypt_cex4, vfio_ap.*zcrypt_cex2a/],
  // qci
  ['qci: 1', 'qci', /mapping/],
  ['qci: { available: maybe }', 'qci.available', /true or false/],
  ['qci: { features: APXA }', 'qci.features', /list/],
  ['qci: { features: [APSC, XYZ] }', 'qci.features[1]', /one of APSC, APXA, QACT, RC8A, APSB/],
  ['qci: { max_adapter_id: 256 }', 'qci.max_adapter_id', /between 0 and 255, got 256/],
  ['qci: { max_adapter_id: -1 }', 'qci.max_adapter_id', /between 0 and 255/],
  ['qci: { max_domain_id: 1.5 }', 'qci.max_domain_id', /integer/],
  ['qci: { max_domain_id: "84" }', 'qci.max_domain_id', /integer/],
  ['qci: { na: 3 }', 'qci.na', /unknown field/],
  // adapters
  ['adapters: { id: 1 }', 'adapters', /list/],
  ['adapters: [ 5 ]', 'adapters[0]', /mapping/],
  [A('id: 2, type: CEX8, mode: tpm'), 'adapters[1].mode', /one of accel, cca, ep11.*"tpm"/],
  [A('id: 2, type: CEX8'), 'adapters[1].mode', /one of accel, cca, ep11/],
  [A('id: 2, type: CEX9, mode: cca'), 'adapters[1].type', /one of CEX4, CEX5, CEX6, CEX7, CEX8/],
  [A('id: 2, mode: cca'), 'adapters[1].type', /one of/],
  [A('id: 2, type: CEX8, raw_type: 14, mode: cca'), 'adapters[1].raw_type', /either type or raw_type/],
  [A('id: 2, raw_type: 0, mode: cca'), 'adapters[1].raw_type', /between 1 and 255/],
  [A('id: 2, raw_type: 256, mode: cca'), 'adapters[1].raw_type', /between 1 and 255/],
  [A('id: 256, type: CEX8, mode: cca'), 'adapters[1].id', /between 0 and 255, got 256/],
  [A('type: CEX8, mode: cca'), 'adapters[1].id', /integer/],
  [A('id: 1, type: CEX8, mode: cca'), 'adapters[1].id', /adapter 1 is listed twice/],
  [A('id: 2, type: CEX8, mode: cca, functions: 0x100000000'), 'adapters[1].functions', /between 0 and 4294967295/],
  [A('id: 2, type: CEX8, mode: cca, functions: -1'), 'adapters[1].functions', /between/],
  [A('id: 2, type: CEX8, mode: cca, depth: 16'), 'adapters[1].depth', /between 0 and 15/],
  [A('id: 2, type: CEX8, mode: cca, ml: 16'), 'adapters[1].ml', /between 0 and 15/],
  [A('id: 2, type: CEX8, mode: cca, serial: 1234'), 'adapters[1].serial', /string/],
  [A('id: 2, type: CEX8, mode: cca, config: 0'), 'adapters[1].config', /true or false/],
  [A('id: 2, type: CEX8, mode: cca, chkstop: "no"'), 'adapters[1].chkstop', /true or false/],
  [A('id: 2, type: CEX8, mode: cca, colour: red'), 'adapters[1].colour', /unknown field/],
  // domains
  ['usage_domains: 4', 'usage_domains', /list of ids/],
  ['usage_domains: [4, 256]', 'usage_domains[1]', /between 0 and 255/],
  ['usage_domains: [4, x]', 'usage_domains[1]', /integer/],
  ['usage_domains: [4, 11, 4]', 'usage_domains[2]', /id 4 is listed twice/],
  ['control_domains: [-1]', 'control_domains[0]', /between 0 and 255/],
  ['control_domains: [0x47, 71]', 'control_domains[1]', /listed twice/],
  // kernel parameters
  ['kernel_params: [ap.apmask=0xff]', 'kernel_params', /mapping/],
  ['kernel_params: { ap.apmsk: "0xff" }', 'kernel_params.ap.apmsk', /unknown field/],
  ['kernel_params: { ap.apmask: 0xff }', 'kernel_params."ap.apmask"', /string/],
  ['kernel_params: { ap.aqmask: 5 }', 'kernel_params."ap.aqmask"', /string/],
  ['kernel_params: { ap.domain: "4" }', 'kernel_params."ap.domain"', /integer/],
  ['kernel_params: { ap.domain: 4294967296 }', 'kernel_params."ap.domain"', /between/],
  ['kernel_params: { ap.poll_thread: 1 }', 'kernel_params."ap.poll_thread"', /true or false/],
  ['kernel_params: { ap.useirq: 0 }', 'kernel_params."ap.useirq"', /true or false/]
] as Array<[string, string, RegExp]>) test(badCase, yaml, field, reason)

test('errors without a source have no prefix', t => {
  const e = t.throws(() => topologyFrom({ host: 'zos' }), { instanceOf: TopologyError })
  t.true(e?.message.startsWith('host: ') ?? false)
  t.is(e?.name, 'TopologyError')
})

// ---------------------------------------------------------------------------------------
// Defaults

test('an empty document is an LPAR without QCI, adapters or domains, with both modules', t => {
  for (const text of ['', '{}', 'null', '# only a comment\n']) {
    const topo = loadTopology(text)
    t.deepEqual(topo, {
      kernel: 'newest',
      host: 'lpar',
      secureExecution: false,
      qci: { available: false, features: [], maxAdapterId: 0, maxDomainId: 0 },
      interrupts: true,
      adapters: [],
      usageDomains: [],
      controlDomains: [],
      kernelParams: {},
      modules: ['zcrypt_cex4', 'vfio_ap']
    } satisfies Topology, JSON.stringify(text))
  }
})

test('qci: present means available, with the LPAR features and 63/15 limits unless given', t => {
  t.deepEqual(loadTopology('qci: {}').qci, { available: true, features: ['APSC', 'APXA', 'QACT', 'RC8A'], maxAdapterId: 63, maxDomainId: 15 })
  t.deepEqual(loadTopology('qci: { available: false }').qci.available, false)
  t.deepEqual(loadTopology('qci: false').qci, { available: false, features: [], maxAdapterId: 0, maxDomainId: 0 })
  t.deepEqual(loadTopology('qci: { features: [] }').qci.features, [])
  t.deepEqual(loadTopology('qci: { features: [APSB, APSC] }').qci.features, ['APSB', 'APSC'])
})

test('adapter defaults: functions by mode, depth 8, ml 0, configured, not checkstopped, a serial', t => {
  const topo = loadTopology(`adapters:
  - { id: 6, type: CEX5, mode: accel }
  - { id: 0x05, type: CEX8, mode: ep11 }
  - { id: 3, raw_type: 15, mode: cca, functions: 0x92800000, depth: 3, ml: 2, serial: ABC, config: false, chkstop: true }
`)
  t.deepEqual(topo.adapters.map(a => a.id), [3, 5, 6], 'sorted by id')
  const [a3, a5, a6] = topo.adapters
  t.deepEqual(a3, { id: 3, rawType: 15, mode: 'cca', functions: 0x92800000, depth: 3, ml: 2, serial: 'ABC', configured: false, checkstopped: true })
  t.is(a5.rawType, 14)
  t.is(a5.functions, DEFAULT_FUNCTIONS.ep11)
  t.is(a6.rawType, 11)
  t.is(a6.functions, DEFAULT_FUNCTIONS.accel)
  t.is(a6.depth, 8)
  t.is(a6.ml, 0)
  t.true(a6.configured)
  t.false(a6.checkstopped)
  t.is(typeof a6.serial, 'string')
  t.is(a5.serial.length, 16, 'EP11 serial numbers have 16 characters')
  t.is(loadTopology('adapters: [{ id: 3, type: CEX8, mode: cca }]').adapters[0].serial.length, 8, 'CCA serial numbers have 8 characters')
})

test('default facility words carry the mode bits (accelerator 0x08, CCA 0x10, EP11 0x04 in the top byte)', t => {
  t.is(DEFAULT_FUNCTIONS.accel & 0x08000000, 0x08000000)
  t.is(DEFAULT_FUNCTIONS.cca & 0x10000000, 0x10000000)
  t.is(DEFAULT_FUNCTIONS.ep11 & 0x04000000, 0x04000000)
})

const typeCase = test.macro({
  exec (t, type: string, raw: number) {
    t.is(loadTopology(`adapters: [{ id: 1, type: ${type}, mode: cca }]`).adapters[0].rawType, raw)
  },
  title: (_p, type: string, raw: number) => `type ${type} is raw type ${raw}`
})
for (const [type, raw] of [['CEX4', 10], ['CEX5', 11], ['CEX6', 12], ['CEX7', 13], ['CEX8', 14]] as Array<[string, number]>) test(typeCase, type, raw)

test('domains: sorted, YAML hex accepted, control domains default to the usage domains', t => {
  const topo = loadTopology('usage_domains: [0x47, 4, 11]')
  t.deepEqual(topo.usageDomains, [4, 11, 0x47])
  t.deepEqual(topo.controlDomains, [4, 11, 0x47])
  t.deepEqual(loadTopology('usage_domains: [1]\ncontrol_domains: []').controlDomains, [])
  t.deepEqual(loadTopology('usage_domains: [1]\ncontrol_domains: [9, 2]').controlDomains, [2, 9])
})

test('kernel parameters are kept as written', t => {
  const topo = loadTopology(`kernel_params:
  ap.apmask: "0xffff"
  ap.aqmask: "+0-15"
  ap.domain: -1
  ap.poll_thread: true
  ap.useirq: false
`)
  t.deepEqual(topo.kernelParams, { apmask: '0xffff', aqmask: '+0-15', domain: -1, pollThread: true, useirq: false })
})

test('JSON is accepted (YAML is a superset)', t => {
  const topo = loadTopology(JSON.stringify({
    host: 'zvm',
    qci: { max_adapter_id: 255, max_domain_id: 84 },
    interrupts: false,
    adapters: [{ id: 3, type: 'CEX8', mode: 'cca' }],
    usage_domains: [4],
    modules: ['vfio_ap']
  }))
  t.is(topo.host, 'zvm')
  t.is(topo.qci.maxAdapterId, 255)
  t.false(topo.interrupts)
  t.deepEqual(topo.modules, ['vfio_ap'])
  t.deepEqual(adapterIds(topo), [3])
})

test('topologyFrom validates plain data the same way', t => {
  t.deepEqual(topologyFrom({ adapters: [{ id: 2, type: 'CEX6', mode: 'ep11' }] }).adapters[0].rawType, 12)
  const e = t.throws(() => topologyFrom({ adapters: [{ id: 2, type: 'CEX6', mode: 'ep11' }, { id: 3, type: 'CEX6', mode: 'x' }] }, 'api'), { instanceOf: TopologyError })
  t.is(e?.field, 'adapters[1].mode')
  t.true(e?.message.startsWith('api: adapters[1].mode: ') ?? false)
})

// ---------------------------------------------------------------------------------------
// The shipped topologies

test('the default topology is the vfio-ap.rst example LPAR', t => {
  const topo = defaultTopology()
  t.deepEqual(topo, loadTopology(DEFAULT_TOPOLOGY_YAML))
  t.deepEqual(adapterIds(topo), [4, 5, 6])
  t.deepEqual(topo.adapters.map(a => [a.rawType, a.mode]), [[11, 'cca'], [11, 'cca'], [11, 'accel']])
  t.deepEqual(topo.usageDomains, [4, 0x47, 0xab, 0xff])
  t.deepEqual(topo.controlDomains, [4, 0x47, 0xab, 0xff])
  t.deepEqual(topo.qci, { available: true, features: ['APSC', 'APXA', 'QACT', 'RC8A'], maxAdapterId: 63, maxDomainId: 255 })
})

test('fixture F1 (ap-bus.md §10)', t => {
  const topo = loadTopology(fixture('f1.yaml'), 'f1.yaml')
  t.deepEqual(topo.qci, { available: true, features: ['APSC', 'APXA', 'QACT', 'RC8A'], maxAdapterId: 255, maxDomainId: 84 })
  t.deepEqual(topo.adapters.map(a => [a.id, a.rawType, a.mode, a.functions]), [[3, 14, 'cca', 0x92800000], [5, 14, 'ep11', 0x86000000], [6, 14, 'accel', 0xea000000]])
  t.deepEqual(topo.usageDomains, [4, 11, 0x47])
  t.deepEqual(topo.controlDomains, [4, 11, 0x47])
  t.true(topo.interrupts)
})

test('fixture TG (vfio-ap.md §9.1)', t => {
  const topo = loadTopology(fixture('tg.yaml'), 'tg.yaml')
  t.deepEqual(adapterIds(topo), [4, 5, 6])
  t.deepEqual(topo.usageDomains, [4, 0x47, 0xab, 0xff])
  t.is(topo.qci.maxAdapterId, 63)
  t.is(topo.qci.maxDomainId, 255)
})

test('kernel: a profile name, newest unless given; anything else names the field', t => {
  t.is(loadTopology('{}').kernel, 'newest')
  t.is(loadTopology('kernel: "5.10"').kernel, '5.10')
  t.is(loadTopology('kernel: 6.8').kernel, '6.8')
  t.is(loadTopology('kernel: 6.10').kernel, '6.10')
  t.is(loadTopology('kernel: 6.0').kernel, '6.0')
  t.throws(() => loadTopology('kernel: "4.19"'), { message: /^kernel: must be one of 5\.10, 6\.0, 6\.8, 6\.10, 6\.12, newest/ })
})
