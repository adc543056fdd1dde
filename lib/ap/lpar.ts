/**
 * The machine side of the simulation: what the LPAR's AP configuration offers (the QCI
 * result) and what each adapter answers to TAPQ. Changing it is what the HMC, the SE or SCLP
 * does; the AP bus only notices at its next scan.
 */
import { Mask } from '../mask.js'
import { fail } from '../errors.js'
import { DEFAULT_FUNCTIONS, defaultSerial, type AdapterMode, type AdapterSpec, type HostKind, type QciFeature, type Topology } from '../topology.js'

export interface QciInfo {
  available: boolean
  features: Set<QciFeature>
  na: number
  nd: number
  apm: Mask
  aqm: Mask
  adm: Mask
}

export interface NewAdapter {
  id: number
  type?: 'CEX4' | 'CEX5' | 'CEX6' | 'CEX7' | 'CEX8'
  rawType?: number
  mode: AdapterMode
  functions?: number
  depth?: number
  ml?: number
  serial?: string
}

const TYPE_RAW = { CEX4: 10, CEX5: 11, CEX6: 12, CEX7: 13, CEX8: 14 } as const

/** TAPQ's answer for one APQN. */
export type TapqStatus = 'normal' | 'deconfigured' | 'checkstopped'

export class Lpar {
  readonly kind: HostKind
  readonly qciAvailable: boolean
  readonly features: Set<QciFeature>
  readonly na: number
  readonly nd: number
  readonly adapters = new Map<number, AdapterSpec>()
  usageDomains: Mask
  controlDomains: Mask

  constructor (t: Topology) {
    this.kind = t.host
    this.qciAvailable = t.qci.available
    this.features = new Set(t.qci.features)
    this.na = t.qci.maxAdapterId
    this.nd = t.qci.maxDomainId
    this.usageDomains = new Mask()
    this.controlDomains = new Mask()
    this.reset(t)
  }

  /** Puts adapters and domains back to a topology's (undoing a refused change). */
  reset (t: Topology): void {
    this.adapters.clear()
    for (const a of t.adapters) this.adapters.set(a.id, { ...a })
    this.usageDomains = new Mask(t.usageDomains)
    this.controlDomains = new Mask(t.controlDomains)
  }

  /** The machine as it is now, as a topology (for snapshots). */
  topology (boot: Topology): Topology {
    return {
      ...boot,
      adapters: [...this.adapters.values()].sort((a, b) => a.id - b.id).map(a => ({ ...a })),
      usageDomains: this.usageDomains.ids(),
      controlDomains: this.controlDomains.ids()
    }
  }

  /** The QCI instruction's result as of now. */
  qci (): QciInfo {
    return {
      available: this.qciAvailable,
      features: new Set(this.features),
      na: this.na,
      nd: this.nd,
      apm: new Mask(this.adapters.keys()),
      aqm: this.usageDomains.clone(),
      adm: this.controlDomains.clone()
    }
  }

  tapq (apid: number): TapqStatus {
    const a = this.adapters.get(apid)
    if (a === undefined) return 'deconfigured'
    if (!a.configured) return 'deconfigured'
    return a.checkstopped ? 'checkstopped' : 'normal'
  }

  /** SCLP "configure/deconfigure AP": what a card's `config` store asks of the machine. */
  sclpConfigure (apid: number, on: boolean): void {
    if (this.kind !== 'lpar') fail('EOPNOTSUPP', `SCLP has no AP reconfiguration facility on a ${this.kind} guest`)
    this.setAdapterConfigured(apid, on)
  }

  private adapter (apid: number): AdapterSpec {
    const a = this.adapters.get(apid)
    if (a === undefined) fail('ENODEV', `adapter ${apid} is not in the LPAR configuration`)
    return a
  }

  addAdapter (n: NewAdapter): void {
    if (!Number.isInteger(n.id) || n.id < 0 || n.id > 255) fail('EINVAL', `adapter id ${n.id} is not in 0..255`)
    if (this.adapters.has(n.id)) fail('EEXIST', `adapter ${n.id} is already in the LPAR configuration`)
    const rawType = n.rawType ?? TYPE_RAW[n.type ?? 'CEX8']
    this.adapters.set(n.id, {
      id: n.id,
      rawType,
      mode: n.mode,
      functions: n.functions ?? DEFAULT_FUNCTIONS[n.mode],
      depth: n.depth ?? 8,
      ml: n.ml ?? 0,
      serial: n.serial ?? defaultSerial(n.id, n.mode),
      configured: true,
      checkstopped: false
    })
  }

  removeAdapter (apid: number): void {
    this.adapter(apid)
    this.adapters.delete(apid)
  }

  setAdapterConfigured (apid: number, on: boolean): void { this.adapter(apid).configured = on }
  setAdapterCheckstop (apid: number, on: boolean): void { this.adapter(apid).checkstopped = on }

  private domain (d: number): void {
    if (!Number.isInteger(d) || d < 0 || d > 255) fail('EINVAL', `domain ${d} is not in 0..255`)
  }

  addUsageDomain (d: number): void { this.domain(d); if (this.usageDomains.has(d)) fail('EEXIST', `usage domain ${d} is already configured`); this.usageDomains.set(d) }
  removeUsageDomain (d: number): void { this.domain(d); if (!this.usageDomains.has(d)) fail('ENOENT', `usage domain ${d} is not configured`); this.usageDomains.clear(d) }
  addControlDomain (d: number): void { this.domain(d); if (this.controlDomains.has(d)) fail('EEXIST', `control domain ${d} is already configured`); this.controlDomains.set(d) }
  removeControlDomain (d: number): void { this.domain(d); if (!this.controlDomains.has(d)) fail('ENOENT', `control domain ${d} is not configured`); this.controlDomains.clear(d) }
}
