/**
 * The AP bus (ap_bus.c): bus-wide state, the scan that creates and removes devices from the
 * machine's configuration, the masks that decide which driver may bind a queue, binding, and
 * the `/sys/bus/ap` attributes.
 */
import { fail } from '../errors.js'
import { synthUevent, type KernelLog, type SynthTarget, type UeventAction, type UeventLog } from '../events.js'
import { hex2mask, Mask, parseApMask, qciMaskText } from '../mask.js'
import { cstr, kstrtobool, kstrtoull, sscanfInt, sscanfU64 } from '../parse.js'
import { NEWEST, profile, type KernelProfile } from '../profiles.js'
import { PAGE_SIZE, type AttrDecl } from '../sysfs.js'
import { QCI_FEATURES, type Topology } from '../topology.js'
import { Card, Queue, type DriverName } from './device.js'
import { Lpar, type QciInfo } from './lpar.js'

export type ApDevice = Card | Queue
export const isQueue = (d: ApDevice): d is Queue => d instanceof Queue

/** An AP device driver as the bus sees it (struct ap_driver). */
export interface ApDriver {
  readonly name: DriverName
  readonly module: string
  readonly binds: 'card' | 'queue'
  /** Default drivers (zcrypt) own the queues the masks reserve. */
  readonly isDefault: boolean
  /** Device types in the driver's id table. */
  readonly types: readonly number[]
  /** Throws (ENODEV) to refuse the device. */
  probe: (dev: ApDevice) => void
  remove: (dev: ApDevice) => void
  /** The in-use callback the bus asks before it reserves ids for the default drivers. */
  inUse?: (apm: Mask, aqm: Mask) => boolean
  onConfigChanged?: (cur: QciInfo, prev: QciInfo) => void
  onScanComplete?: (cur: QciInfo, prev: QciInfo) => void
}

/** Everything about the bus a snapshot keeps beyond the machine's configuration. */
export interface BusState {
  apmask: string
  aqmask: string
  apDomain: number
  configTime: number
  pollTimeout: string
  pollThread: boolean
  driversAutoprobe: boolean
  scans: string
  bindingsCompleteCount: string
  bindingsDone: boolean
  masksInUse: boolean
  cards: Array<{ id: number, driver: DriverName | null, zcryptOnline: boolean, config: boolean, chkstop: boolean, requestCount: string }>
  queues: Array<{
    apid: number
    apqi: number
    driver: DriverName | null
    zcryptOnline: boolean
    driverOverride: string | null
    devState: Queue['devState']
    smState: Queue['smState']
    config: boolean
    chkstop: boolean
    requestCount: string
    resets: number
    resetResult: Queue['resetResult']
    /** Secure Execution guests only (absent elsewhere and in older states). */
    seBind?: Queue['seBind']
    assocIdx?: number | null
  }>
}

const AP_CONFIG_TIME_MIN = 5
const AP_CONFIG_TIME_MAX = 120
const POLL_TIMEOUT_MAX = 120000000000n

/** sysfs_streq: equal, ignoring one trailing newline on either side. */
export function sysfsStreq (a: string, b: string): boolean {
  const strip = (s: string): string => s.endsWith('\n') ? s.slice(0, -1) : s
  return strip(cstr(a)) === strip(cstr(b))
}

export class ApBus {
  readonly profile: KernelProfile
  readonly lpar: Lpar
  readonly maxAdapterId: number
  readonly maxDomainId: number
  /** The last QCI result the bus fetched. */
  qci: QciInfo
  apmask: Mask
  aqmask: Mask
  apDomain = -1
  configTime = 30
  pollTimeout: bigint
  pollThread = false
  readonly interrupts: boolean
  /** The kernel runs in a Secure Execution guest (is_prot_virt_guest). */
  readonly seGuest: boolean
  scans = 0n
  bindingsCompleteCount = 0n
  private bindingsDone = false
  driversAutoprobe = true
  /** 6.19: mask writes and driver_override exclude each other. */
  private masksInUse = false
  private overrideCount = 0
  readonly drivers: ApDriver[] = []
  readonly cards = new Map<number, Card>()
  /** Module parameters as given on the kernel command line. */
  readonly params: Topology['kernelParams']

  constructor (t: Topology, readonly klog: KernelLog, readonly uevents: UeventLog) {
    this.profile = profile(t.kernel) ?? NEWEST
    this.lpar = new Lpar(t)
    this.qci = this.lpar.qci()
    const apxa = this.qci.available && this.qci.features.has('APXA')
    this.maxAdapterId = apxa && this.qci.na !== 0 ? this.qci.na : 63
    this.maxDomainId = apxa && this.qci.nd !== 0 ? this.qci.nd : 15
    this.params = t.kernelParams
    this.apmask = Mask.all()
    this.aqmask = Mask.all()
    // ap_perms_init: a given parameter starts from zero; an invalid one leaves zero.
    if (t.kernelParams.apmask !== undefined) this.apmask = this.bootMask(t.kernelParams.apmask, 'apmask')
    if (t.kernelParams.aqmask !== undefined) this.aqmask = this.bootMask(t.kernelParams.aqmask, 'aqmask')
    this.masksInUse = !this.apmask.equals(Mask.all()) || !this.aqmask.equals(Mask.all())
    this.interrupts = t.interrupts && t.kernelParams.useirq !== false
    this.seGuest = t.secureExecution
    this.pollTimeout = t.host === 'zvm' ? 1500000n : 250000n
    this.pollThread = t.kernelParams.pollThread === true && !this.interrupts
    const dom = t.kernelParams.domain
    if (dom !== undefined) {
      if (dom < -1 || dom > this.maxDomainId || (dom >= 0 && !this.aqmask.has(dom))) this.klog.warn(`ap: ${dom} is not a valid cryptographic domain`)
      else this.apDomain = dom
    }
  }

  private bootMask (text: string, what: string): Mask {
    try {
      return parseApMask(text, new Mask(), what)
    } catch {
      return new Mask()
    }
  }

  // -------------------------------------------------------------------------------------
  // Devices

  card (apid: number): Card | undefined { return this.cards.get(apid) }
  queue (apid: number, apqi: number): Queue | undefined { return this.cards.get(apid)?.queues.get(apqi) }

  sortedCards (): Card[] { return [...this.cards.values()].sort((a, b) => a.id - b.id) }

  /** Every queue, card by card, in domain order. */
  allQueues (): Queue[] {
    const out: Queue[] = []
    for (const c of this.sortedCards()) for (const q of c.sortedQueues()) out.push(q)
    return out
  }

  /** A device by its bus name (`card04`, `04.0005`). */
  deviceByName (name: string): ApDevice | undefined {
    let m = /^card([0-9a-f]{2})$/.exec(name)
    if (m !== null) return this.cards.get(parseInt(m[1], 16))
    m = /^([0-9a-f]{2})\.([0-9a-f]{4})$/.exec(name)
    if (m !== null) return this.queue(parseInt(m[1], 16), parseInt(m[2], 16))
    return undefined
  }

  /** The device a bind/unbind/drivers_probe buffer names (sysfs_streq). */
  deviceByBuffer (buf: string): ApDevice | undefined {
    const s = cstr(buf)
    return this.deviceByName(s.endsWith('\n') ? s.slice(0, -1) : s)
  }

  /** Host-owned: reserved for the default drivers by apmask x aqmask. */
  reserved (apid: number, apqi: number): boolean { return this.apmask.has(apid) && this.aqmask.has(apqi) }

  driver (name: string): ApDriver | undefined { return this.drivers.find(d => d.name === name) }

  private event (action: UeventAction, dev: ApDevice, extra?: Array<[string, string]>): void {
    // kobject_uevent_env: the caller's variables, then the device's own (dev_uevent, ap_uevent);
    // an unbind event carries no MODALIAS. (A mask flip sends 131,072 of these: no garbage
    // beyond the event itself when there is nothing to add or drop.)
    const env = extra === undefined || extra.length === 0 ? dev.uevent() : [...extra, ...dev.uevent()]
    this.uevents.emit(action, dev.devpath, 'ap', action === 'unbind' && hasModalias(env) ? env.filter(([k]) => k !== 'MODALIAS') : env)
  }

  // -------------------------------------------------------------------------------------
  // Binding (driver core + ap_device_probe)

  private matches (drv: ApDriver, dev: ApDevice): boolean {
    const hwtype = isQueue(dev) ? dev.card.hwtype : dev.hwtype
    return drv.binds === (isQueue(dev) ? 'queue' : 'card') && drv.types.includes(hwtype)
  }

  /**
   * ap_device_probe's gate: whether `drv` may probe `dev` at all (driver_override, else the
   * masks). Tested before probing, so that a scan or a mask flip that moves 65,536 queues
   * does not build and throw 65,536 errors (the refusal is only an error for `bind`).
   */
  private admits (drv: ApDriver, dev: ApDevice): boolean {
    if (!isQueue(dev)) return true
    if (dev.driverOverride !== undefined) return dev.driverOverride === drv.name
    return this.reserved(dev.apid, dev.apqi) === drv.isDefault
  }

  /** ap_device_probe's gate plus the driver's probe. Throws ENODEV when refused. */
  private probe (drv: ApDriver, dev: ApDevice): void {
    if (!this.admits(drv, dev)) {
      const q = dev as Queue
      if (q.driverOverride !== undefined) fail('ENODEV', `${q.name}: driver_override names ${q.driverOverride}`)
      fail('ENODEV', `${q.name} is ${drv.isDefault ? 'not ' : ''}reserved for the default drivers`)
    }
    this.bindingsDone = false
    // The driver core sets dev->driver before it calls the driver's probe.
    dev.driver = drv.name
    try {
      drv.probe(dev)
    } catch (e) {
      dev.driver = undefined
      throw e
    }
    this.event('bind', dev)
  }

  /** device_attach: the first matching driver whose probe succeeds binds. */
  attach (dev: ApDevice): boolean {
    if (dev.driver !== undefined) return true
    for (const drv of this.drivers) {
      if (!this.matches(drv, dev) || !this.admits(drv, dev)) continue
      try {
        this.probe(drv, dev)
        return true
      } catch (e) {
        if ((e as { code?: string }).code !== 'ENODEV') throw e
      }
    }
    return false
  }

  detach (dev: ApDevice): void {
    if (dev.driver === undefined) return
    const drv = this.driver(dev.driver)
    if (isQueue(dev)) dev.devState = 'shutdown'
    drv?.remove(dev)
    dev.driver = undefined
    if (isQueue(dev)) dev.devState = 'uninitiated'
    this.event('unbind', dev)
  }

  /** `echo NAME > drivers/X/bind` */
  bindStore (drv: ApDriver, buf: string): void {
    const dev = this.deviceByBuffer(buf)
    if (dev === undefined || !this.matches(drv, dev)) fail('ENODEV', `${JSON.stringify(cstr(buf))}: no such device for ${drv.name}`)
    if (dev.driver !== undefined) fail('EBUSY', `${dev.name} is bound to ${dev.driver}`)
    this.probe(drv, dev)
    this.checkBindingsComplete()
  }

  /** `echo NAME > drivers/X/unbind` */
  unbindStore (drv: ApDriver, buf: string): void {
    const dev = this.deviceByBuffer(buf)
    if (dev === undefined || dev.driver !== drv.name) fail('ENODEV', `${JSON.stringify(cstr(buf))} is not bound to ${drv.name}`)
    this.detach(dev)
  }

  /** `echo NAME > /sys/bus/ap/drivers_probe` */
  driversProbeStore (buf: string): void {
    const dev = this.deviceByBuffer(buf)
    if (dev === undefined) fail('ENODEV', `${JSON.stringify(cstr(buf))}: no such device`)
    this.attach(dev)
    this.checkBindingsComplete()
  }

  registerDriver (drv: ApDriver): void {
    this.drivers.push(drv)
    if (this.scans === 0n) return
    for (const c of this.sortedCards()) {
      if (drv.binds === 'card') this.attachIfMatching(drv, c)
      else for (const q of c.sortedQueues()) this.attachIfMatching(drv, q)
    }
    this.checkBindingsComplete()
  }

  private attachIfMatching (drv: ApDriver, dev: ApDevice): void {
    if (dev.driver !== undefined || !this.matches(drv, dev) || !this.admits(drv, dev)) return
    try { this.probe(drv, dev) } catch (e) { if ((e as { code?: string }).code !== 'ENODEV') throw e }
  }

  private boundQueues (): [number, number] {
    let bound = 0
    let total = 0
    for (const c of this.cards.values()) {
      for (const q of c.queues.values()) {
        total++
        if (q.driver !== undefined) bound++
      }
    }
    return [bound, total]
  }

  private checkBindingsComplete (): void {
    if (this.scans < 1n || this.bindingsDone) return
    const [bound, total] = this.boundQueues()
    if (bound !== total) return
    this.bindingsDone = true
    this.bindingsCompleteCount++
    if (!this.profile.scansAndBindings) return
    this.uevents.emit('change', '/devices/ap', 'ap', [['BINDINGS', 'complete'], ['COMPLETECOUNT', String(this.bindingsCompleteCount)]])
  }

  // -------------------------------------------------------------------------------------
  // Scan (ap_scan_bus)

  /**
   * One AP bus scan: QCI, default domain, devices, driver callbacks, counters. `progress`
   * hears of each adapter id scanned (a full-size first scan creates 65,536 queues).
   */
  scan (progress?: (done: number, total: number) => void): void {
    const prev = this.qci
    const cur = this.lpar.qci()
    const changed = !qciEqual(cur, prev)
    this.qci = cur
    if (changed) {
      if (!cur.apm.andNot(prev.apm).isEmpty() || !cur.aqm.andNot(prev.aqm).isEmpty()) this.bindingsDone = false
      for (const d of this.drivers) d.onConfigChanged?.(cur, prev)
    }
    this.selectDomain()
    for (let apid = 0; apid <= this.maxAdapterId; apid++) {
      this.scanAdapter(apid)
      progress?.(apid + 1, this.maxAdapterId + 1)
    }
    if (changed) for (const d of this.drivers) d.onScanComplete?.(cur, prev)
    this.scans++
    if (this.scans === 1n && this.profile.scansAndBindings) this.uevents.emit('change', '/devices/ap', 'ap', [['INITSCAN', 'done']])
    this.checkBindingsComplete()
  }

  private usable (apid: number): boolean {
    const spec = this.lpar.adapters.get(apid)
    return spec !== undefined && this.qci.apm.has(apid)
  }

  /** The lowest usage domain (also in aqmask) that some adapter (also in apmask) answers on. */
  private selectDomain (): void {
    if (this.apDomain >= 0) return
    for (let d = 0; d <= this.maxDomainId; d++) {
      if (!this.qci.aqm.has(d) || !this.aqmask.has(d)) continue
      for (let a = 0; a <= this.maxAdapterId; a++) {
        if (this.usable(a) && this.apmask.has(a) && this.lpar.tapq(a) === 'normal') {
          this.apDomain = d
          return
        }
      }
    }
  }

  private compatibleType (raw: number): number {
    const newest = this.profile.maxKnownType
    if (raw >= 10 && raw <= newest) return raw
    if (raw > newest && this.qci.features.has('QACT')) return newest
    return 0
  }

  private removeCard (c: Card): void {
    for (const q of c.sortedQueues()) this.removeQueue(q)
    this.detach(c)
    this.cards.delete(c.id)
    this.event('remove', c)
  }

  private removeQueue (q: Queue): void {
    this.detach(q)
    q.card.queues.delete(q.apqi)
    this.event('remove', q)
  }

  private hasUsageDomain (): boolean {
    for (let d = 0; d <= this.maxDomainId; d++) if (this.qci.aqm.has(d)) return true
    return false
  }

  private scanAdapter (apid: number): void {
    let card = this.cards.get(apid)
    const spec = this.lpar.adapters.get(apid)
    if (!this.usable(apid) || spec === undefined || !this.hasUsageDomain()) {
      if (card !== undefined) this.removeCard(card)
      return
    }
    const hwtype = this.compatibleType(spec.rawType)
    const status = this.lpar.tapq(apid)
    const decfg = status === 'deconfigured'
    const chkstop = status === 'checkstopped'
    if (card !== undefined && (card.rawType !== spec.rawType || card.cardFunctions !== ((spec.functions & 0xffff0000) >>> 0))) {
      this.removeCard(card)
      card = undefined
    }
    if (card !== undefined) {
      card.chkstop = chkstop
      if (decfg === card.config) {
        card.config = !decfg
        this.event('change', card, [['CONFIG', card.config ? '1' : '0']])
      }
    } else {
      if (hwtype === 0) return
      card = new Card(this, apid, spec.rawType, hwtype, spec.functions, spec.depth, spec.ml, spec.serial)
      card.config = !decfg
      card.chkstop = chkstop
      this.cards.set(apid, card)
      this.event('add', card)
      if (this.driversAutoprobe) this.attach(card)
    }
    for (let apqi = 0; apqi <= this.maxDomainId; apqi++) this.scanDomain(card, apqi, decfg, chkstop)
  }

  private scanDomain (card: Card, apqi: number, decfg: boolean, chkstop: boolean): void {
    let q = card.queues.get(apqi)
    if (!this.qci.aqm.has(apqi)) {
      if (q !== undefined) this.removeQueue(q)
      return
    }
    if (q === undefined) {
      q = new Queue(card, apqi)
      q.config = !decfg
      q.chkstop = chkstop
      q.initialise()
      card.queues.set(apqi, q)
      this.event('add', q)
      if (this.driversAutoprobe) this.attach(q)
      return
    }
    const initiated = q.devState !== 'uninitiated'
    if (chkstop && !q.chkstop) {
      q.chkstop = true
      if (initiated) q.devState = 'error'
    } else if (!chkstop && q.chkstop) {
      q.chkstop = false
      if (initiated) q.initialise()
    }
    if (decfg && q.config) {
      q.config = false
      if (initiated) q.devState = 'error'
      this.event('change', q, [['CONFIG', '0']])
      return
    }
    if (!decfg && !q.config) {
      q.config = true
      if (initiated) q.initialise()
      this.event('change', q, [['CONFIG', '1']])
      return
    }
    if (!decfg && q.devState === 'error') q.initialise()
  }

  // -------------------------------------------------------------------------------------
  // Masks (apmask_store, aqmask_store, __ap_revise_reserved)

  storeMask (which: 'apmask' | 'aqmask', buf: string): void {
    if (this.overrideCount > 0) fail('EINVAL', `${which}: a queue has driver_override set`)
    const current = this[which]
    const next = parseApMask(buf, current, which)
    if (next.equals(current)) return
    const newlySet = next.andNot(current)
    if (!newlySet.isEmpty()) {
      // 6.19 asks about all 256 ids of the other mask, older kernels about its current bits.
      const other = (m: Mask): Mask => this.profile.driverOverride ? Mask.all() : m
      const apm = which === 'apmask' ? newlySet : other(this.apmask)
      const aqm = which === 'aqmask' ? newlySet : other(this.aqmask)
      for (const d of this.drivers) {
        if (d.inUse?.(apm, aqm) === true) fail('EBUSY', `${which}: an id to be reserved is assigned to a mediated device of ${d.name}`)
      }
    }
    this[which] = next
    this.masksInUse = !this.apmask.equals(Mask.all()) || !this.aqmask.equals(Mask.all())
    this.reviseReserved()
    if (this.profile.maskChangeUevents) this.uevents.emit('change', '/devices/ap', 'ap', [[which.toUpperCase(), `${next.toHex()}\n`]])
  }

  private reviseReserved (): void {
    for (const q of this.allQueues()) {
      if (q.driver === undefined) {
        this.attach(q)
        continue
      }
      if (q.driverOverride !== undefined) {
        if (q.driverOverride === q.driver) continue
      } else if (this.reserved(q.apid, q.apqi) === this.driver(q.driver)?.isDefault) {
        continue
      }
      this.detach(q)
      this.attach(q)
    }
  }

  storeDriverOverride (q: Queue, buf: string): void {
    if (this.masksInUse) fail('EINVAL', 'driver_override: apmask or aqmask is not all ones')
    if (buf.length >= PAGE_SIZE - 1) fail('EINVAL', 'driver_override: value too long')
    const s = cstr(buf)
    const nl = s.indexOf('\n')
    const value = nl < 0 ? s : s.slice(0, nl)
    const before = q.driverOverride !== undefined
    q.driverOverride = value === '' ? undefined : value
    this.overrideCount += (q.driverOverride !== undefined ? 1 : 0) - (before ? 1 : 0)
  }

  // -------------------------------------------------------------------------------------
  // Card and queue stores that reach the bus or the machine

  storeCardConfig (c: Card, on: boolean): void {
    if (on !== c.config) {
      this.lpar.sclpConfigure(c.id, on)
      c.config = on
    }
    this.event('change', c, [['CONFIG', on ? '1' : '0']])
    // The machine reports the configuration change; the bus rescans at once.
    this.scan()
  }

  storeCardOnline (c: Card, on: boolean): void {
    if (on && (!c.config || c.chkstop)) fail('ENODEV', `${c.name} is deconfigured or checkstopped`)
    c.zcryptOnline = on
    this.event('change', c, [['ONLINE', on ? '1' : '0']])
    for (const q of c.sortedQueues()) {
      if (q.driver !== 'cex4queue' || q.zcryptOnline === on) continue
      q.zcryptOnline = on
      this.event('change', q, [['ONLINE', on ? '1' : '0']])
    }
  }

  storeQueueOnline (q: Queue, on: boolean): void {
    if (on && (!q.config || !q.card.config || q.chkstop || q.card.chkstop)) fail('ENODEV', `${q.name} or its card is deconfigured or checkstopped`)
    if (on && !q.card.zcryptOnline) fail('EINVAL', `${q.name}: card ${q.card.name} is offline`)
    q.zcryptOnline = on
    this.event('change', q, [['ONLINE', on ? '1' : '0']])
  }

  /** `echo add > uevent` on a card or queue. */
  synthUevent (dev: ApDevice, buf: string): void {
    this.synth({ devpath: dev.devpath, subsystem: 'ap', env: dev.uevent(), device: `${dev.driver ?? 'ap'} ${dev.name}` }, buf)
  }

  /** `echo add > uevent` on any object of the AP bus (the bus, a driver, the root device). */
  synth (t: SynthTarget, buf: string): void {
    synthUevent(this.uevents, this.klog, t, buf, this.profile.ueventStoreRc)
  }

  state (): BusState {
    const cards = this.sortedCards()
    return {
      apmask: this.apmask.toHex(),
      aqmask: this.aqmask.toHex(),
      apDomain: this.apDomain,
      configTime: this.configTime,
      pollTimeout: String(this.pollTimeout),
      pollThread: this.pollThread,
      driversAutoprobe: this.driversAutoprobe,
      scans: String(this.scans),
      bindingsCompleteCount: String(this.bindingsCompleteCount),
      bindingsDone: this.bindingsDone,
      masksInUse: this.masksInUse,
      cards: cards.map(c => ({ id: c.id, driver: c.driver ?? null, zcryptOnline: c.zcryptOnline, config: c.config, chkstop: c.chkstop, requestCount: String(c.requestCount) })),
      queues: cards.flatMap(c => c.sortedQueues()).map(q => ({
        apid: q.apid,
        apqi: q.apqi,
        driver: q.driver ?? null,
        zcryptOnline: q.zcryptOnline,
        driverOverride: q.driverOverride ?? null,
        devState: q.devState,
        smState: q.smState,
        config: q.config,
        chkstop: q.chkstop,
        requestCount: String(q.requestCount),
        resets: q.resets,
        resetResult: q.resetResult,
        ...(this.seGuest ? { seBind: q.seBind, assocIdx: q.assocIdx ?? null } : {})
      }))
    }
  }

  /** Puts a snapshot's bus state over a freshly booted bus of the same machine. */
  restore (st: BusState): void {
    this.apmask = hex2mask(st.apmask)
    this.aqmask = hex2mask(st.aqmask)
    this.apDomain = st.apDomain
    this.configTime = st.configTime
    this.pollTimeout = BigInt(st.pollTimeout)
    this.pollThread = st.pollThread
    this.driversAutoprobe = st.driversAutoprobe
    this.scans = BigInt(st.scans)
    this.bindingsCompleteCount = BigInt(st.bindingsCompleteCount)
    this.bindingsDone = st.bindingsDone
    this.masksInUse = st.masksInUse
    for (const c of st.cards) {
      const card = this.cards.get(c.id)
      if (card === undefined) continue
      Object.assign(card, { driver: c.driver ?? undefined, zcryptOnline: c.zcryptOnline, config: c.config, chkstop: c.chkstop, requestCount: BigInt(c.requestCount) })
    }
    this.overrideCount = 0
    for (const q of st.queues) {
      const queue = this.queue(q.apid, q.apqi)
      if (queue === undefined) continue
      Object.assign(queue, {
        driver: q.driver ?? undefined,
        zcryptOnline: q.zcryptOnline,
        driverOverride: q.driverOverride ?? undefined,
        devState: q.devState,
        smState: q.smState,
        config: q.config,
        chkstop: q.chkstop,
        requestCount: BigInt(q.requestCount),
        resets: q.resets,
        resetResult: q.resetResult,
        seBind: q.seBind ?? 'available',
        assocIdx: q.assocIdx ?? undefined
      })
      if (q.driverOverride !== null) this.overrideCount++
    }
  }

  bindingsText (): string {
    const [bound, total] = this.boundQueues()
    return this.scans >= 1n && bound === total ? `${bound}/${total} (complete)\n` : `${bound}/${total}\n`
  }

  featuresText (): string {
    if (!this.qci.available) return '-\n'
    const words = QCI_FEATURES.filter(f => this.qci.features.has(f))
    return words.length === 0 ? '' : words.join(' ') + '\n'
  }
}

function hasModalias (env: Array<[string, string]>): boolean {
  for (const [k] of env) if (k === 'MODALIAS') return true
  return false
}

function qciEqual (a: QciInfo, b: QciInfo): boolean {
  return a.available === b.available && a.apm.equals(b.apm) && a.aqm.equals(b.aqm) && a.adm.equals(b.adm) &&
    a.features.size === b.features.size && [...a.features].every(f => b.features.has(f))
}


// ---------------------------------------------------------------------------------------
// /sys/bus/ap attributes (ap_bus.c), in registration order

export const busAttrs: Array<AttrDecl<ApBus>> = [
  {
    name: 'ap_domain',
    mode: 0o644,
    show: b => `${b.apDomain}\n`,
    store: (b, buf) => {
      const v = sscanfInt(buf, 'i')
      if (v === undefined || v < 0 || v > b.maxDomainId || !b.aqmask.has(v)) fail('EINVAL', `ap_domain: ${JSON.stringify(buf)} is not a usable domain`)
      b.apDomain = v
    }
  },
  { name: 'ap_control_domain_mask', mode: 0o444, show: b => qciMaskText(b.qci.available ? b.qci.adm : undefined) },
  { name: 'ap_usage_domain_mask', mode: 0o444, show: b => qciMaskText(b.qci.available ? b.qci.aqm : undefined) },
  { name: 'ap_adapter_mask', mode: 0o444, show: b => qciMaskText(b.qci.available ? b.qci.apm : undefined) },
  {
    name: 'config_time',
    mode: 0o644,
    show: b => `${b.configTime}\n`,
    store: (b, buf) => {
      const v = sscanfInt(buf, 'd')
      if (v === undefined || v < AP_CONFIG_TIME_MIN || v > AP_CONFIG_TIME_MAX) fail('EINVAL', `config_time: ${JSON.stringify(buf)} is not in 5..120`)
      b.configTime = v
    }
  },
  {
    name: 'poll_thread',
    mode: 0o644,
    show: b => `${b.pollThread ? 1 : 0}\n`,
    store: (b, buf) => {
      let on: boolean
      if (b.profile.apFeatures64) {
        on = kstrtobool(buf, b.profile.boolEnableDisable)
      } else {
        const v = sscanfInt(buf, 'd')
        if (v === undefined) fail('EINVAL', `poll_thread: ${JSON.stringify(buf)} is not a number`)
        on = v !== 0
      }
      // With adapter interrupts in use the thread is not started.
      b.pollThread = on && !b.interrupts
    }
  },
  { name: 'ap_interrupts', mode: 0o444, show: b => `${b.interrupts ? 1 : 0}\n` },
  {
    name: 'poll_timeout',
    mode: 0o644,
    show: b => `${b.pollTimeout}\n`,
    store: (b, buf) => {
      let v: bigint
      if (b.profile.apFeatures64) {
        v = kstrtoull(buf)
      } else {
        const old = sscanfU64(buf)
        if (old === undefined || old === 0n) fail('EINVAL', `poll_timeout: ${JSON.stringify(buf)} is not a positive number`)
        v = old
      }
      if (v > POLL_TIMEOUT_MAX) fail('EINVAL', `poll_timeout: ${v} ns is more than 120 s`)
      b.pollTimeout = v
    }
  },
  { name: 'ap_max_domain_id', mode: 0o444, show: b => `${b.maxDomainId}\n` },
  { name: 'ap_max_adapter_id', mode: 0o444, show: b => `${b.maxAdapterId}\n` },
  { name: 'apmask', mode: 0o644, show: b => `${b.apmask.toHex()}\n`, store: (b, buf) => b.storeMask('apmask', buf) },
  { name: 'aqmask', mode: 0o644, show: b => `${b.aqmask.toHex()}\n`, store: (b, buf) => b.storeMask('aqmask', buf) },
  { name: 'scans', mode: 0o644, visible: b => b.profile.scansAndBindings, show: b => `${b.scans}\n`, store: b => { if (b.scans > 0n) b.scan() } },
  { name: 'bindings', mode: 0o444, visible: b => b.profile.scansAndBindings, show: b => b.bindingsText() },
  { name: 'bindings_complete_count', mode: 0o444, visible: b => b.profile.driverOverride, show: b => `${b.bindingsCompleteCount}\n` },
  { name: 'features', mode: 0o444, visible: b => b.profile.apFeatures64, show: b => b.featuresText() },
  // driver-core bus attributes
  {
    name: 'drivers_autoprobe',
    mode: 0o644,
    show: b => `${b.driversAutoprobe ? 1 : 0}\n`,
    store: (b, buf) => { b.driversAutoprobe = buf[0] !== '0' }
  },
  { name: 'drivers_probe', mode: 0o200, store: (b, buf) => b.driversProbeStore(buf) },
  { name: 'uevent', mode: 0o200, store: (b, buf) => b.synth({ devpath: '/bus/ap', subsystem: 'bus', env: [] }, buf) }
]
