/**
 * The simulated host: what the machine and the LPAR configuration offer (QCI, adapters,
 * domains) and the kernel command line. Plain data, loaded from YAML or JSON and validated
 * field by field; every error names the field and the reason.
 */
import { parse as parseYaml } from 'yaml'
import { PROFILE_NAMES } from './profiles.js'

export const QCI_FEATURES = ['APSC', 'APXA', 'QACT', 'RC8A', 'APSB'] as const
export type QciFeature = typeof QCI_FEATURES[number]
export type AdapterMode = 'accel' | 'cca' | 'ep11'
export type HostKind = 'lpar' | 'zvm' | 'kvm'
export const MODULES = ['zcrypt_cex4', 'vfio_ap'] as const
export type ModuleName = typeof MODULES[number]

export interface AdapterSpec {
  id: number
  /** Raw TAPQ adapter type: 10 = CEX4 ... 14 = CEX8; above 14 a future card. */
  rawType: number
  mode: AdapterMode
  /** The 32-bit TAPQ facility word (queue view; the card hides the low 16 bits). */
  functions: number
  /** Raw queue-depth field, 0..15. */
  depth: number
  /** Message-length field; 0 means the default 12288-byte limit. */
  ml: number
  serial: string
  configured: boolean
  checkstopped: boolean
}

export interface Topology {
  /** The kernel profile (lib/profiles.ts): `newest` unless given. */
  kernel: string
  host: HostKind
  /** A KVM guest running under Secure Execution (with APSB, its queues offer se_bind/se_associate). */
  secureExecution: boolean
  qci: { available: boolean, features: QciFeature[], maxAdapterId: number, maxDomainId: number }
  interrupts: boolean
  adapters: AdapterSpec[]
  usageDomains: number[]
  controlDomains: number[]
  /** `ap.*` kernel parameters as written on the command line (strings, unparsed). */
  kernelParams: { apmask?: string, aqmask?: string, domain?: number, pollThread?: boolean, useirq?: boolean }
  modules: ModuleName[]
}

export class TopologyError extends Error {
  constructor (readonly field: string, readonly reason: string, source?: string) {
    super(`${source !== undefined ? source + ': ' : ''}${field}: ${reason}`)
    this.name = 'TopologyError'
  }
}

const TYPE_NAMES: Record<string, number> = { CEX4: 10, CEX5: 11, CEX6: 12, CEX7: 13, CEX8: 14 }
/** The adapter type names a topology (and `add-adapter`) accepts; other types by raw number. */
export const ADAPTER_TYPES: readonly string[] = Object.keys(TYPE_NAMES)
/** Synthetic facility words for each mode (APSC|APXA plus the mode bit and its functions). */
export const DEFAULT_FUNCTIONS: Record<AdapterMode, number> = {
  cca: 0x92800000,
  ep11: 0x86000000,
  accel: 0xea000000
}

type Raw = Record<string, unknown>

class Reader {
  constructor (readonly source: string | undefined) {}

  fail (field: string, reason: string): never { throw new TopologyError(field, reason, this.source) }

  obj (v: unknown, field: string): Raw {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(field, 'must be a mapping')
    return v as Raw
  }

  keys (o: Raw, field: string, allowed: string[]): void {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) this.fail(field === '' ? k : `${field}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`)
  }

  int (v: unknown, field: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, `must be an integer, got ${JSON.stringify(v)}`)
    if (v < min || v > max) this.fail(field, `must be between ${min} and ${max}, got ${v}`)
    return v
  }

  bool (v: unknown, field: string): boolean {
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${JSON.stringify(v)}`)
    return v
  }

  str (v: unknown, field: string): string {
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${JSON.stringify(v)}`)
    return v
  }

  oneOf<T extends string> (v: unknown, field: string, values: readonly T[]): T {
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(field, `must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`)
    return v as T
  }

  list (v: unknown, field: string, what = 'a list'): unknown[] {
    if (!Array.isArray(v)) this.fail(field, `must be ${what}`)
    return v as unknown[]
  }

  ids (v: unknown, field: string): number[] {
    const ids = this.list(v, field, 'a list of ids').map((x, i) => this.int(x, `${field}[${i}]`, 0, 255))
    const seen = new Set<number>()
    ids.forEach((id, i) => { if (seen.has(id)) this.fail(`${field}[${i}]`, `id ${id} is listed twice`); seen.add(id) })
    return ids.sort((a, b) => a - b)
  }
}

function readAdapter (r: Reader, v: unknown, field: string): AdapterSpec {
  const o = r.obj(v, field)
  r.keys(o, field, ['id', 'type', 'raw_type', 'mode', 'functions', 'depth', 'ml', 'serial', 'config', 'chkstop'])
  const id = r.int(o.id, `${field}.id`, 0, 255)
  let rawType: number
  if (o.raw_type !== undefined) {
    if (o.type !== undefined) r.fail(`${field}.raw_type`, 'give either type or raw_type, not both')
    rawType = r.int(o.raw_type, `${field}.raw_type`, 1, 255)
  } else {
    rawType = TYPE_NAMES[r.oneOf(o.type, `${field}.type`, ADAPTER_TYPES)]
  }
  const mode = r.oneOf(o.mode, `${field}.mode`, ['accel', 'cca', 'ep11'] as const)
  const functions = o.functions === undefined ? DEFAULT_FUNCTIONS[mode] : r.int(o.functions, `${field}.functions`, 0, 0xffffffff)
  return {
    id,
    rawType,
    mode,
    functions,
    depth: o.depth === undefined ? 8 : r.int(o.depth, `${field}.depth`, 0, 15),
    ml: o.ml === undefined ? 0 : r.int(o.ml, `${field}.ml`, 0, 15),
    serial: o.serial === undefined ? defaultSerial(id, mode) : r.str(o.serial, `${field}.serial`),
    configured: o.config === undefined ? true : r.bool(o.config, `${field}.config`),
    checkstopped: o.chkstop === undefined ? false : r.bool(o.chkstop, `${field}.chkstop`)
  }
}

/** A serial number of the width the card reports for its mode: 8 characters (CCA), 16 (EP11). */
export function defaultSerial (id: number, mode: AdapterMode): string {
  const hex = id.toString(16).toUpperCase().padStart(2, '0')
  return mode === 'ep11' ? `93AAP${hex}SIM000000`.slice(0, 16) : `93AAC${hex}S`.slice(0, 8)
}

/** YAML reads an unquoted `6.10` as the number 6.1: map numbers back onto profile names. */
function kernelName (v: unknown): unknown {
  if (typeof v !== 'number') return v
  return PROFILE_NAMES.find(n => parseFloat(n) === v) ?? String(v)
}

/** Validates parsed YAML/JSON into a Topology; `source` prefixes error messages. */
export function topologyFrom (data: unknown, source?: string): Topology {
  const r = new Reader(source)
  const o = r.obj(data ?? {}, '(top level)')
  r.keys(o, '', ['kernel', 'host', 'secure_execution', 'qci', 'interrupts', 'adapters', 'usage_domains', 'control_domains', 'kernel_params', 'modules'])

  let qci: Topology['qci'] = { available: false, features: [], maxAdapterId: 0, maxDomainId: 0 }
  if (o.qci !== undefined && o.qci !== false) {
    const q = r.obj(o.qci, 'qci')
    r.keys(q, 'qci', ['available', 'features', 'max_adapter_id', 'max_domain_id'])
    const available = q.available === undefined ? true : r.bool(q.available, 'qci.available')
    let features: QciFeature[] = ['APSC', 'APXA', 'QACT', 'RC8A']
    if (q.features !== undefined) {
      features = r.list(q.features, 'qci.features').map((f, i) => r.oneOf(f, `qci.features[${i}]`, QCI_FEATURES))
    }
    qci = {
      available,
      features,
      maxAdapterId: q.max_adapter_id === undefined ? 63 : r.int(q.max_adapter_id, 'qci.max_adapter_id', 0, 255),
      maxDomainId: q.max_domain_id === undefined ? 15 : r.int(q.max_domain_id, 'qci.max_domain_id', 0, 255)
    }
  }

  const adapters = (o.adapters === undefined ? [] : r.list(o.adapters, 'adapters')).map((a, i) => readAdapter(r, a, `adapters[${i}]`))
  const seen = new Set<number>()
  adapters.forEach((a, i) => { if (seen.has(a.id)) r.fail(`adapters[${i}].id`, `adapter ${a.id} is listed twice`); seen.add(a.id) })
  adapters.sort((a, b) => a.id - b.id)

  const usageDomains = o.usage_domains === undefined ? [] : r.ids(o.usage_domains, 'usage_domains')
  const controlDomains = o.control_domains === undefined ? [...usageDomains] : r.ids(o.control_domains, 'control_domains')

  const kernelParams: Topology['kernelParams'] = {}
  if (o.kernel_params !== undefined) {
    const k = r.obj(o.kernel_params, 'kernel_params')
    r.keys(k, 'kernel_params', ['ap.apmask', 'ap.aqmask', 'ap.domain', 'ap.poll_thread', 'ap.useirq'])
    if (k['ap.apmask'] !== undefined) kernelParams.apmask = String(r.str(k['ap.apmask'], 'kernel_params."ap.apmask"'))
    if (k['ap.aqmask'] !== undefined) kernelParams.aqmask = String(r.str(k['ap.aqmask'], 'kernel_params."ap.aqmask"'))
    if (k['ap.domain'] !== undefined) kernelParams.domain = r.int(k['ap.domain'], 'kernel_params."ap.domain"', -(2 ** 31), 2 ** 31 - 1)
    if (k['ap.poll_thread'] !== undefined) kernelParams.pollThread = r.bool(k['ap.poll_thread'], 'kernel_params."ap.poll_thread"')
    if (k['ap.useirq'] !== undefined) kernelParams.useirq = r.bool(k['ap.useirq'], 'kernel_params."ap.useirq"')
  }

  let modules: ModuleName[] = [...MODULES]
  if (o.modules !== undefined) {
    modules = r.list(o.modules, 'modules').map((m, i) => r.oneOf(m, `modules[${i}]`, MODULES))
  }

  const host = o.host === undefined ? 'lpar' : r.oneOf(o.host, 'host', ['lpar', 'zvm', 'kvm'] as const)
  const secureExecution = o.secure_execution === undefined ? false : r.bool(o.secure_execution, 'secure_execution')
  if (secureExecution && host !== 'kvm') r.fail('secure_execution', `a Secure Execution guest is a KVM guest (host: kvm), not ${host}`)

  return {
    kernel: o.kernel === undefined ? 'newest' : r.oneOf(kernelName(o.kernel), 'kernel', PROFILE_NAMES),
    host,
    secureExecution,
    qci,
    interrupts: o.interrupts === undefined ? true : r.bool(o.interrupts, 'interrupts'),
    adapters,
    usageDomains,
    controlDomains,
    kernelParams,
    modules
  }
}

const TYPE_BY_RAW = Object.fromEntries(Object.entries(TYPE_NAMES).map(([n, r]) => [r, n]))

/** The file form of a topology (what `topologyFrom` reads back to the same value). */
export function topologyData (t: Topology): Record<string, unknown> {
  const kp: Record<string, unknown> = {}
  if (t.kernelParams.apmask !== undefined) kp['ap.apmask'] = t.kernelParams.apmask
  if (t.kernelParams.aqmask !== undefined) kp['ap.aqmask'] = t.kernelParams.aqmask
  if (t.kernelParams.domain !== undefined) kp['ap.domain'] = t.kernelParams.domain
  if (t.kernelParams.pollThread !== undefined) kp['ap.poll_thread'] = t.kernelParams.pollThread
  if (t.kernelParams.useirq !== undefined) kp['ap.useirq'] = t.kernelParams.useirq
  return {
    kernel: t.kernel,
    host: t.host,
    ...(t.secureExecution ? { secure_execution: true } : {}),
    qci: t.qci.available
      ? { available: true, features: t.qci.features, max_adapter_id: t.qci.maxAdapterId, max_domain_id: t.qci.maxDomainId }
      : { available: false },
    interrupts: t.interrupts,
    adapters: t.adapters.map(a => ({
      id: a.id,
      ...(TYPE_BY_RAW[a.rawType] !== undefined ? { type: TYPE_BY_RAW[a.rawType] } : { raw_type: a.rawType }),
      mode: a.mode,
      functions: a.functions,
      depth: a.depth,
      ml: a.ml,
      serial: a.serial,
      config: a.configured,
      chkstop: a.checkstopped
    })),
    usage_domains: t.usageDomains,
    control_domains: t.controlDomains,
    kernel_params: kp,
    modules: t.modules
  }
}

/** Parses YAML (a superset of JSON) and validates it. */
export function loadTopology (text: string, source?: string): Topology {
  let data: unknown
  try {
    data = parseYaml(text)
  } catch (e) {
    throw new TopologyError('(file)', `not valid YAML or JSON: ${(e as Error).message}`, source)
  }
  return topologyFrom(data, source)
}

/**
 * The host of the kernel documentation's vfio-ap example (Documentation/arch/s390/vfio-ap.rst):
 * an LPAR with adapters 4 and 5 (CEX5C) and 6 (CEX5A), usage and control domains 4, 0x47,
 * 0xab and 0xff.
 */
export const DEFAULT_TOPOLOGY_YAML = `# The LPAR of the kernel's vfio-ap documentation example
kernel: newest
host: lpar
qci:
  features: [APSC, APXA, QACT, RC8A]
  max_adapter_id: 63
  max_domain_id: 255
adapters:
  - { id: 4, type: CEX5, mode: cca }
  - { id: 5, type: CEX5, mode: cca }
  - { id: 6, type: CEX5, mode: accel }
usage_domains: [0x04, 0x47, 0xab, 0xff]
control_domains: [0x04, 0x47, 0xab, 0xff]
`

export function defaultTopology (): Topology {
  return loadTopology(DEFAULT_TOPOLOGY_YAML, '(default topology)')
}
