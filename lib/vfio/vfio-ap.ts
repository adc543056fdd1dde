/**
 * The vfio_ap device driver (vfio_ap_drv.c, vfio_ap_ops.c) and the mdev core around it:
 * mediated matrix devices, assignment, the shadow (guest) matrix and its filter, hot plug,
 * the in-use callback of the AP bus and the kernel log lines.
 */
import { fail } from '../errors.js'
import type { KernelLog, UeventLog } from '../events.js'
import { hex2mask, Mask } from '../mask.js'
import { cstr, kstrtoull } from '../parse.js'
import type { ApBus, ApDevice, ApDriver } from '../ap/bus.js'
import { apqnText, type Queue } from '../ap/device.js'
import type { QciInfo } from '../ap/lpar.js'
import type { KernelProfile } from '../profiles.js'

/** MAX_ZDEV_ENTRIES_EXT: 256 x 256. */
export const MAX_MDEVS = 65536
export const TYPE_NAME = 'passthrough'
export const TYPE_DIR = 'vfio_ap-passthrough'
export const MATRIX_PATH = 'devices/vfio_ap/matrix'

export interface Apcb { apm: Mask, aqm: Mask, adm: Mask }
const emptyApcb = (): Apcb => ({ apm: new Mask(), aqm: new Mask(), adm: new Mask() })
const cloneApcb = (c: Apcb): Apcb => ({ apm: c.apm.clone(), aqm: c.aqm.clone(), adm: c.adm.clone() })

export class Mdev {
  /** Assigned masks (what `matrix`, `control_domains` and `ap_config` show). */
  apm = new Mask()
  aqm = new Mask()
  adm = new Mask()
  /** The shadow APCB: what is or will be passed through (`guest_matrix`). */
  shadow: Apcb = emptyApcb()
  /** The guest (KVM) the device is attached to, and the masks the guest currently has. */
  guest: string | undefined
  guestApcb: Apcb | undefined
  /** How often the guest's AP configuration was pushed (hot plug/unplug). */
  guestUpdates = 0
  /** Resources a host configuration change added, waiting for the scan to complete. */
  added: Apcb = emptyApcb()
  /** A remove is waiting for the guest; the `remove` file is gone meanwhile. */
  removing = false
  /** remove writes waiting for the guest to release the device. */
  readonly pendingRemoves: Array<() => void> = []

  constructor (readonly uuid: string, readonly iommuGroup: number) {}

  get treePath (): string { return `${MATRIX_PATH}/${this.uuid}` }
  get devpath (): string { return `/${this.treePath}` }
}

export interface ApcbState { apm: string, aqm: string, adm: string }
export interface VfioState {
  host: ApcbState
  /** In creation order. */
  mdevs: Array<{
    uuid: string
    iommuGroup: number
    matrix: ApcbState
    shadow: ApcbState
    guest: string | null
    guestApcb: ApcbState | null
    guestUpdates: number
    removing: boolean
  }>
  freedGroups: number[]
  nextGroup: number
}
const apcbState = (c: Apcb): ApcbState => ({ apm: c.apm.toHex(), aqm: c.aqm.toHex(), adm: c.adm.toHex() })
const apcbFrom = (c: ApcbState): Apcb => ({ apm: hex2mask(c.apm), aqm: hex2mask(c.aqm), adm: hex2mask(c.adm) })

export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/** The matrix formatter shared by `matrix` and `guest_matrix` (vfio_ap_mdev_matrix_show). */
export function matrixText (apm: Mask, aqm: Mask, apmMax: number, aqmMax: number): string {
  const as = apm.ids().filter(a => a <= apmMax)
  const ds = aqm.ids().filter(d => d <= aqmMax)
  let out = ''
  const LIMIT = 4095
  if (as.length > 0 && ds.length > 0) {
    outer: for (const a of as) {
      for (const d of ds) {
        out += apqnText(a, d) + '\n'
        if (out.length >= LIMIT) break outer
      }
    }
  } else if (as.length > 0) {
    out = as.map(a => `${a.toString(16).padStart(2, '0')}.\n`).join('')
  } else if (ds.length > 0) {
    out = ds.map(d => `.${d.toString(16).padStart(4, '0')}\n`).join('')
  }
  return out.length > LIMIT ? out.slice(0, LIMIT) : out
}

export class VfioAp implements ApDriver {
  readonly name = 'vfio_ap' as const
  readonly module = 'vfio_ap'
  readonly binds = 'queue' as const
  readonly isDefault = false
  readonly types = [10, 11, 12, 13, 14] as const
  /** The mdevs by UUID, in creation order (the driver's list is newest first: `mdevs`). */
  private readonly byUuid = new Map<string, Mdev>()
  private readonly byGroup = new Map<number, Mdev>()
  private readonly byGuest = new Map<string, Mdev>()
  /** IOMMU group ids handed back, ascending; the lowest free id is reused first. */
  private readonly freedGroups: number[] = []
  private nextGroup = 0
  /**
   * The mdev holding each APQN (key apid * 256 + apqi), kept by setApm/setAqm: queue `status`
   * reads and probes ask it in O(1), however many mdevs there are.
   */
  private readonly byApqn = new Map<number, Mdev>()
  /** The host AP configuration vfio_ap knows (matrix_dev->info); all zero without QCI. */
  host: Apcb
  readonly apmMax: number
  readonly aqmMax: number
  readonly profile: KernelProfile

  constructor (readonly bus: ApBus, readonly klog: KernelLog, readonly uevents: UeventLog) {
    this.host = this.hostConfig(bus.qci)
    this.apmMax = bus.maxAdapterId
    this.aqmMax = bus.maxDomainId
    this.profile = bus.profile
  }

  private hostConfig (qci: QciInfo): Apcb {
    return qci.available ? { apm: qci.apm.clone(), aqm: qci.aqm.clone(), adm: qci.adm.clone() } : emptyApcb()
  }

  mdev (uuid: string): Mdev | undefined { return this.byUuid.get(uuid.toLowerCase()) }
  /** The driver's mdev list: the most recently created first. */
  get mdevs (): Mdev[] { return [...this.byUuid.values()].reverse() }
  get count (): number { return this.byUuid.size }
  uuids (): string[] { return [...this.byUuid.keys()].sort() }
  byIommuGroup (group: number): Mdev | undefined { return this.byGroup.get(group) }
  /** The mdev a running guest holds. */
  guestMdev (guest: string): Mdev | undefined { return this.byGuest.get(guest) }
  get availableInstances (): number { return MAX_MDEVS - this.byUuid.size }

  private warn (m: Mdev, text: string): void { this.klog.warn(`vfio_ap_mdev ${m.uuid}: ${text}`) }
  private notice (m: Mdev, text: string): void { this.klog.log('notice', `vfio_ap_mdev ${m.uuid}: ${text}`) }

  /** The mdev whose matrix holds the APQN (at most one: sharing is refused). */
  owner (apid: number, apqi: number): Mdev | undefined {
    return this.byApqn.get(apid * 256 + apqi)
  }

  private index (m: Mdev, apids: number[], apqis: number[], on: boolean): void {
    for (const a of apids) {
      for (const d of apqis) {
        const k = a * 256 + d
        if (on) this.byApqn.set(k, m)
        else if (this.byApqn.get(k) === m) this.byApqn.delete(k)
      }
    }
  }

  /** Every change of an mdev's adapters goes through here (the APQN index follows). */
  private setApm (m: Mdev, apm: Mask): void {
    const domains = m.aqm.ids()
    this.index(m, m.apm.andNot(apm).ids(), domains, false)
    this.index(m, apm.andNot(m.apm).ids(), domains, true)
    m.apm = apm
  }

  /**
   * Both masks at once (ap_config, restore): setting one and then the other would pass through
   * a matrix (new adapters x old domains) that may overlap another mdev's.
   */
  private setMatrix (m: Mdev, apm: Mask, aqm: Mask): void {
    this.index(m, m.apm.ids(), m.aqm.ids(), false)
    m.apm = apm
    m.aqm = aqm
    this.index(m, apm.ids(), aqm.ids(), true)
  }

  /** Every change of an mdev's domains goes through here (the APQN index follows). */
  private setAqm (m: Mdev, aqm: Mask): void {
    const adapters = m.apm.ids()
    this.index(m, adapters, m.aqm.andNot(aqm).ids(), false)
    this.index(m, adapters, aqm.andNot(m.aqm).ids(), true)
    m.aqm = aqm
  }

  /** A queue of this mdev that vfio_ap has bound (a "linked" vfio_ap queue). */
  private linked (m: Mdev, apid: number, apqi: number): Queue | undefined {
    const q = this.bus.queue(apid, apqi)
    return q !== undefined && q.driver === 'vfio_ap' && m.apm.has(apid) && m.aqm.has(apqi) ? q : undefined
  }

  // -------------------------------------------------------------------------------------
  // mdev lifecycle

  /** `create` (mdev_sysfs.c create_store -> mdev_device_create -> vfio_ap_mdev_probe). */
  create (buf: string): Mdev {
    if (buf.length !== 36 && buf.length !== 37) fail('EINVAL', `create: ${buf.length} bytes, a UUID has 36 (37 with a newline)`)
    const text = buf.slice(0, 36)
    if (!UUID_RE.test(text)) fail('EINVAL', `create: ${JSON.stringify(text)} is not a UUID`)
    const uuid = text.toLowerCase()
    if (this.byUuid.has(uuid)) fail('EEXIST', `create: mdev ${uuid} exists`)
    if (this.byUuid.size >= MAX_MDEVS) fail(this.profile.exhaustedEusers ? 'EUSERS' : 'EPERM', 'create: no instances of vfio_ap-passthrough left')
    const group = this.freedGroups.shift() ?? this.nextGroup++
    const m = new Mdev(uuid, group)
    this.byUuid.set(uuid, m)
    this.byGroup.set(group, m)
    this.uevents.emit('add', m.devpath, 'mdev', [['MDEV_TYPE', TYPE_NAME]])
    this.klog.info(`vfio_ap_mdev ${uuid}: Adding to iommu group ${group}`)
    this.uevents.emit('bind', m.devpath, 'mdev', [['DRIVER', 'vfio_ap_mdev'], ['MDEV_TYPE', TYPE_NAME]])
    return m
  }

  /** `remove`: 0 does nothing; anything else removes, waiting for a guest to let go first. */
  removeStore (m: Mdev, buf: string): void | Promise<void> {
    let v: bigint
    try {
      v = kstrtoull(buf)
    } catch {
      return fail('EINVAL', `remove: ${JSON.stringify(cstr(buf))} is not a number`)
    }
    if (v === 0n) return
    // device_remove_file_self: the first writer wins, a concurrent one returns at once.
    if (m.removing) return
    if (m.guest === undefined) { this.destroy(m); return }
    if (!this.profile.removeBlocks) fail('EBUSY', `remove: mdev ${m.uuid} is in use by guest ${m.guest}`)
    m.removing = true
    // The vfio core asks the user (QEMU) to release the device and waits; newest kernels
    // take the AP resources away from the guest at once.
    if (this.profile.removeRequestLog) this.notice(m, 'Relaying device request to user (#0)')
    if (this.profile.newLogWording && m.guestApcb !== undefined && (!m.guestApcb.apm.isEmpty() || !m.guestApcb.aqm.isEmpty() || !m.guestApcb.adm.isEmpty())) {
      m.guestApcb = emptyApcb()
      m.guestUpdates++
    }
    return new Promise(resolve => m.pendingRemoves.push(resolve))
  }

  private destroy (m: Mdev): void {
    if (!this.byUuid.has(m.uuid)) return
    for (const a of m.apm.ids()) for (const d of m.aqm.ids()) { const q = this.linked(m, a, d); if (q !== undefined) this.reset(q) }
    this.uevents.emit('unbind', m.devpath, 'mdev', [['MDEV_TYPE', TYPE_NAME]])
    this.klog.info(`vfio_ap_mdev ${m.uuid}: Removing from iommu group ${m.iommuGroup}`)
    this.setApm(m, new Mask())
    this.byUuid.delete(m.uuid)
    this.byGroup.delete(m.iommuGroup)
    const at = this.freedGroups.findIndex(g => g > m.iommuGroup)
    this.freedGroups.splice(at < 0 ? this.freedGroups.length : at, 0, m.iommuGroup)
    this.uevents.emit('remove', m.devpath, 'mdev', [['MDEV_TYPE', TYPE_NAME]])
  }

  // -------------------------------------------------------------------------------------
  // Guests (the stand-in for QEMU opening and closing the VFIO device)

  attachGuest (uuid: string, guest: string): void {
    const m = this.mdev(uuid)
    if (m === undefined) fail('ENODEV', `no mdev ${uuid}`)
    if (m.guest !== undefined) fail('EBUSY', `mdev ${m.uuid} is already in use by guest ${m.guest}`)
    const other = this.byGuest.get(guest)
    if (other !== undefined) fail('EPERM', `guest ${guest} already has mdev ${other.uuid}; a guest takes one vfio_ap mdev`)
    m.guest = guest
    this.byGuest.set(guest, m)
    // Before dynamic configuration the guest simply gets the assigned matrix.
    if (!this.profile.dynamicConfig) m.shadow = cloneApcb(m)
    this.push(m)
  }

  detachGuest (uuid: string): void {
    const m = this.mdev(uuid)
    if (m === undefined) fail('ENODEV', `no mdev ${uuid}`)
    if (m.guest === undefined) fail('EINVAL', `mdev ${m.uuid} has no guest attached`)
    this.byGuest.delete(m.guest)
    m.guest = undefined
    m.guestApcb = undefined
    for (const a of m.apm.ids()) for (const d of m.aqm.ids()) { const q = this.linked(m, a, d); if (q !== undefined) this.reset(q) }
    if (m.removing) {
      this.destroy(m)
      for (const done of m.pendingRemoves.splice(0)) done()
    }
  }

  /** vfio_ap_mdev_update_guest_apcb: the guest gets the shadow APCB. */
  private push (m: Mdev): void {
    if (m.guest === undefined) return
    m.guestApcb = cloneApcb(m.shadow)
    m.guestUpdates++
  }

  private reset (q: Queue): void {
    q.resets++
    q.resetResult = !q.config ? 'deconfigured' : q.chkstop ? 'checkstopped' : 'normal'
  }

  private resetAdapters (m: Mdev, apids: Iterable<number>): void {
    for (const a of apids) for (const d of m.aqm.ids()) { const q = this.linked(m, a, d); if (q !== undefined) this.reset(q) }
  }

  // -------------------------------------------------------------------------------------
  // The filter (vfio_ap_mdev_filter_matrix, vfio_ap_mdev_filter_cdoms)

  private passable (q: Queue): boolean {
    if (this.profile.passableDeconfigured) return q.resetResult !== 'failed'
    return q.resetResult === 'normal' || q.resetResult === 'deconfigured'
  }

  /**
   * Recomputes S_apm/S_aqm; adapters that were in the guest view and got dropped go to
   * `filtered`. Before 6.8 only the APQNs of `scope` (what was just assigned or bound) were
   * examined, so an adapter filtered earlier could come back.
   */
  private filterMatrix (m: Mdev, filtered: Set<number>, scope?: { apm: Mask, aqm: Mask }): boolean {
    const prev = m.shadow
    const apm = m.apm.and(this.host.apm)
    const aqm = m.aqm.and(this.host.aqm)
    const partial = !this.profile.filterWholeMatrix && scope !== undefined
    const domains = partial ? scope.aqm.ids() : aqm.ids()
    for (const a of partial ? scope.apm.ids() : apm.ids()) {
      for (const d of domains) {
        const q = this.linked(m, a, d)
        if (q === undefined || !this.passable(q)) {
          apm.clear(a)
          if (prev.apm.has(a)) filtered.add(a)
          break
        }
      }
    }
    const changed = !apm.equals(prev.apm) || !aqm.equals(prev.aqm)
    m.shadow = { apm, aqm, adm: prev.adm }
    return changed
  }

  private filterCdoms (m: Mdev): boolean {
    const adm = m.adm.and(this.host.adm)
    const changed = !adm.equals(m.shadow.adm)
    m.shadow.adm = adm
    return changed
  }

  /** Filter, push if the view changed, reset queues of adapters that were filtered out (6.8). */
  private refilter (m: Mdev, cdoms = false, scope?: { apm: Mask, aqm: Mask }): void {
    const filtered = new Set<number>()
    let update = this.filterMatrix(m, filtered, scope)
    if (cdoms) update = this.filterCdoms(m) || update
    if (update) {
      this.push(m)
      if (this.profile.filterWholeMatrix) this.resetAdapters(m, filtered)
    }
  }

  /** Before 6.0 every assignment store is refused while a guest holds the mdev, before parsing. */
  private staticGuard (m: Mdev): void {
    if (!this.profile.dynamicConfig && m.guest !== undefined) fail('EBUSY', `mdev ${m.uuid} is in use by guest ${m.guest}`)
  }

  /** Before 6.0: an APQN of the new matrix (or, with no domain, some queue of the adapter) must be bound to vfio_ap. */
  private verifyBound (apids: number[], apqis: number[], what: string): void {
    const bound = (a: number | undefined, d: number | undefined): boolean => {
      if (a !== undefined && d !== undefined) return this.bus.queue(a, d)?.driver === 'vfio_ap'
      const cards = a === undefined ? this.bus.cards.values() : [this.bus.card(a)].filter(c => c !== undefined)
      for (const c of cards) for (const q of c.queues.values()) if (q.driver === 'vfio_ap' && (d === undefined || q.apqi === d)) return true
      return false
    }
    if (apids.length === 0 || apqis.length === 0) {
      for (const a of apids) if (!bound(a, undefined)) fail('EADDRNOTAVAIL', `${what}: no queue of adapter ${a} is bound to vfio_ap`)
      for (const d of apqis) if (!bound(undefined, d)) fail('EADDRNOTAVAIL', `${what}: no queue of domain ${d} is bound to vfio_ap`)
      return
    }
    for (const a of apids) for (const d of apqis) if (!bound(a, d)) fail('EADDRNOTAVAIL', `${what}: queue ${apqnText(a, d)} is not bound to vfio_ap`)
  }

  // -------------------------------------------------------------------------------------
  // Validation (vfio_ap_mdev_validate_masks)

  private hostOwned (apid: number, apqi: number): boolean {
    const override = this.bus.queue(apid, apqi)?.driverOverride
    if (override !== undefined) return this.bus.driver(override)?.isDefault === true
    return this.bus.reserved(apid, apqi)
  }

  private validate (m: Mdev, apm: Mask, aqm: Mask): void {
    const domains = aqm.ids()
    for (const a of apm.ids()) {
      for (const d of domains) if (this.hostOwned(a, d)) fail('EADDRNOTAVAIL', `queue ${apqnText(a, d)} is reserved for the host's default drivers`)
    }
    this.verifyNoSharing(m, apm, aqm)
  }

  private verifyNoSharing (m: Mdev, apm: Mask, aqm: Mask): void {
    for (const x of this.mdevs) {
      if (x === m) continue
      const oa = apm.and(x.apm)
      const od = aqm.and(x.aqm)
      if (oa.isEmpty() || od.isEmpty()) continue
      if (this.profile.dynamicConfig) {
        for (const a of oa.ids()) {
          for (const d of od.ids()) {
            if (this.profile.newLogWording) this.warn(m, `Userspace may not assign queue ${apqnText(a, d)} to mdev: already assigned to ${x.uuid}`)
            else this.warn(x, `Userspace may not re-assign queue ${apqnText(a, d)} already assigned to ${x.uuid}`)
          }
        }
      }
      fail('EADDRINUSE', `queues of ${x.uuid} would be shared`)
    }
  }

  /** The AP bus's in-use callback: are any of these APQNs assigned to an mdev? */
  inUse (apm: Mask, aqm: Mask): boolean {
    if (!this.profile.dynamicConfig) return false
    for (const x of this.mdevs) {
      const oa = apm.and(x.apm)
      const od = aqm.and(x.aqm)
      if (oa.isEmpty() || od.isEmpty()) continue
      for (const a of oa.ids()) {
        for (const d of od.ids()) {
          this.warn(x, this.profile.newLogWording
            ? `Can not reserve queue ${apqnText(a, d)} for host driver: in use by mdev`
            : `Userspace may not re-assign queue ${apqnText(a, d)} already assigned to ${x.uuid}`)
        }
      }
      return true
    }
    return false
  }

  // -------------------------------------------------------------------------------------
  // Assignment stores

  private parseId (buf: string, max: number, what: string): number {
    const v = kstrtoull(buf)
    if (v > BigInt(max)) fail('ENODEV', `${what} ${v} is above the maximum ${max}`)
    return Number(v)
  }

  assignAdapter (m: Mdev, buf: string): void {
    this.staticGuard(m)
    const apid = this.parseId(buf, this.apmMax, 'adapter')
    if (!this.profile.dynamicConfig) {
      this.verifyBound([apid], m.aqm.ids(), 'assign_adapter')
      const apm = m.apm.clone().set(apid)
      try {
        this.verifyNoSharing(m, apm, m.aqm)
      } catch (e) {
        // The old store clears the bit on a sharing error, even if it was set before.
        this.setApm(m, m.apm.clone().clear(apid))
        throw e
      }
      this.setApm(m, apm)
      return
    }
    if (m.apm.has(apid)) return
    const apm = m.apm.clone().set(apid)
    this.validate(m, apm, m.aqm)
    this.setApm(m, apm)
    this.refilter(m, false, { apm: new Mask([apid]), aqm: m.aqm })
  }

  assignDomain (m: Mdev, buf: string): void {
    this.staticGuard(m)
    const apqi = this.parseId(buf, this.aqmMax, 'domain')
    if (!this.profile.dynamicConfig) {
      this.verifyBound(m.apm.ids(), [apqi], 'assign_domain')
      const aqm = m.aqm.clone().set(apqi)
      try {
        this.verifyNoSharing(m, m.apm, aqm)
      } catch (e) {
        this.setAqm(m, m.aqm.clone().clear(apqi))
        throw e
      }
      this.setAqm(m, aqm)
      return
    }
    if (m.aqm.has(apqi)) return
    const aqm = m.aqm.clone().set(apqi)
    this.validate(m, m.apm, aqm)
    this.setAqm(m, aqm)
    this.refilter(m, false, { apm: m.apm, aqm: new Mask([apqi]) })
  }

  assignControlDomain (m: Mdev, buf: string): void {
    this.staticGuard(m)
    const id = this.parseId(buf, this.aqmMax, 'control domain')
    if (m.adm.has(id)) return
    m.adm.set(id)
    if (this.filterCdoms(m)) this.push(m)
  }

  /** vfio_ap_mdev_hot_unplug_adapters: drop from the view, push, reset what the guest had. */
  private unplugAdapters (m: Mdev, apids: number[]): void {
    const toReset: Queue[] = []
    let update = false
    for (const a of apids) {
      if (!m.shadow.apm.has(a)) continue
      for (const d of m.shadow.aqm.ids()) { const q = this.linked(m, a, d); if (q !== undefined) toReset.push(q) }
      m.shadow.apm.clear(a)
      update = true
    }
    if (update) this.push(m)
    toReset.forEach(q => this.reset(q))
  }

  private unplugDomains (m: Mdev, apqis: number[]): void {
    const toReset: Queue[] = []
    let update = false
    for (const d of apqis) {
      if (!m.shadow.aqm.has(d)) continue
      for (const a of m.shadow.apm.ids()) { const q = this.linked(m, a, d); if (q !== undefined) toReset.push(q) }
      m.shadow.aqm.clear(d)
      update = true
    }
    if (update) this.push(m)
    toReset.forEach(q => this.reset(q))
  }

  unassignAdapter (m: Mdev, buf: string): void {
    this.staticGuard(m)
    const apid = this.parseId(buf, this.apmMax, 'adapter')
    if (!m.apm.has(apid)) return
    this.unplugAdapters(m, [apid])
    this.setApm(m, m.apm.clone().clear(apid))
  }

  unassignDomain (m: Mdev, buf: string): void {
    this.staticGuard(m)
    const apqi = this.parseId(buf, this.aqmMax, 'domain')
    if (!m.aqm.has(apqi)) return
    this.unplugDomains(m, [apqi])
    this.setAqm(m, m.aqm.clone().clear(apqi))
  }

  unassignControlDomain (m: Mdev, buf: string): void {
    this.staticGuard(m)
    const id = this.parseId(buf, this.aqmMax, 'control domain')
    if (!m.adm.has(id)) return
    m.adm = m.adm.clone().clear(id)
    if (m.shadow.adm.has(id)) {
      m.shadow.adm = m.shadow.adm.clone().clear(id)
      this.push(m)
    }
  }

  apConfigText (m: Mdev): string { return `${m.apm.toHex()},${m.aqm.toHex()},${m.adm.toHex()}\n` }

  /** `ap_config` (6.10): three masks replaced atomically. */
  storeApConfig (m: Mdev, buf: string): void {
    let rest: string | undefined = cstr(buf).slice(0, 201)
    const field = (what: string): Mask => {
      if (rest === undefined) fail('EINVAL', `ap_config: the ${what} field is missing`)
      const i = rest.search(/[,\n]/)
      const text = i < 0 ? rest : rest.slice(0, i)
      rest = i < 0 ? undefined : rest.slice(i + 1)
      return hex2mask(text, `ap_config ${what}`)
    }
    const apm = field('adapter')
    const aqm = field('domain')
    const adm = field('control domain')
    this.validate(m, apm, aqm)
    const over = (mask: Mask, max: number): boolean => mask.ids().some(id => id > max)
    if (over(apm, this.apmMax) || over(aqm, this.aqmMax) || over(adm, this.aqmMax)) fail('ENODEV', 'ap_config: an id is above the maximum')
    this.unplugAdapters(m, m.apm.andNot(apm).ids())
    this.unplugDomains(m, m.aqm.andNot(aqm).ids())
    this.setMatrix(m, apm, aqm)
    m.adm = adm
    this.refilter(m, true)
  }

  // -------------------------------------------------------------------------------------
  // AP bus driver callbacks

  probe (dev: ApDevice): void {
    const q = dev as Queue
    q.resetResult = 'normal'
    const m = this.owner(q.apid, q.apqi)
    if (m === undefined || !this.profile.dynamicConfig) return
    // During a configuration-add scan the filter waits for the scan to complete.
    if (!m.added.apm.isEmpty() || !m.added.aqm.isEmpty()) return
    this.refilter(m, false, { apm: new Mask([q.apid]), aqm: new Mask([q.apqi]) })
  }

  remove (dev: ApDevice): void {
    const q = dev as Queue
    if (!this.profile.dynamicConfig) { this.reset(q); return }
    const m = this.owner(q.apid, q.apqi)
    if (m !== undefined && m.shadow.apm.has(q.apid) && m.shadow.aqm.has(q.apqi)) {
      // A single queue cannot be unplugged: the whole adapter leaves the guest.
      m.shadow.apm.clear(q.apid)
      this.push(m)
      for (const d of m.shadow.aqm.ids()) { const lq = this.linked(m, q.apid, d); if (lq !== undefined) this.reset(lq) }
      return
    }
    if (this.host.apm.has(q.apid) && this.host.aqm.has(q.apqi)) this.reset(q)
  }

  onConfigChanged (cur: QciInfo): void {
    if (!this.profile.dynamicConfig) return
    const now = this.hostConfig(cur)
    const before = this.host
    const removed: Apcb = { apm: before.apm.andNot(now.apm), aqm: before.aqm.andNot(now.aqm), adm: before.adm.andNot(now.adm) }
    const added: Apcb = { apm: now.apm.andNot(before.apm), aqm: now.aqm.andNot(before.aqm), adm: now.adm.andNot(before.adm) }
    // Only adapters of a type vfio_ap supports (CEX4 and newer) count as added.
    for (const a of added.apm.ids()) {
      const raw = this.bus.lpar.adapters.get(a)?.rawType ?? 0
      if (raw < 10) added.apm.clear(a)
    }
    for (const m of this.mdevs) {
      const s = m.shadow
      const next: Apcb = { apm: s.apm.andNot(removed.apm), aqm: s.aqm.andNot(removed.aqm), adm: s.adm.andNot(removed.adm) }
      if (!next.apm.equals(s.apm) || !next.aqm.equals(s.aqm) || !next.adm.equals(s.adm)) {
        m.shadow = next
        this.push(m)
      }
      m.added = { apm: added.apm.and(m.apm), aqm: added.aqm.and(m.aqm), adm: added.adm.and(m.adm) }
    }
    this.host = now
  }

  onScanComplete (): void {
    for (const m of this.mdevs) {
      const added = m.added
      const apqns = !added.apm.isEmpty() || !added.aqm.isEmpty()
      const cdoms = !added.adm.isEmpty()
      m.added = emptyApcb()
      if (!apqns && !cdoms) continue
      const filtered = new Set<number>()
      let update = cdoms ? this.filterCdoms(m) : false
      if (apqns) update = this.filterMatrix(m, filtered, { apm: added.apm.isEmpty() ? m.apm : added.apm, aqm: added.aqm.isEmpty() ? m.aqm : added.aqm }) || update
      if (update) this.push(m)
      if (this.profile.filterWholeMatrix) this.resetAdapters(m, filtered)
    }
  }

  state (): VfioState {
    return {
      host: apcbState(this.host),
      mdevs: [...this.byUuid.values()].map(m => ({
        uuid: m.uuid,
        iommuGroup: m.iommuGroup,
        matrix: apcbState(m),
        shadow: apcbState(m.shadow),
        guest: m.guest ?? null,
        guestApcb: m.guestApcb === undefined ? null : apcbState(m.guestApcb),
        guestUpdates: m.guestUpdates,
        removing: m.removing
      })),
      freedGroups: [...this.freedGroups],
      nextGroup: this.nextGroup
    }
  }

  /** Puts a snapshot's mdevs into a freshly loaded driver. */
  restore (st: VfioState): void {
    this.host = apcbFrom(st.host)
    for (const s of st.mdevs) {
      const m = new Mdev(s.uuid, s.iommuGroup)
      const matrix = apcbFrom(s.matrix)
      this.setMatrix(m, matrix.apm, matrix.aqm)
      m.adm = matrix.adm
      m.shadow = apcbFrom(s.shadow)
      m.guest = s.guest ?? undefined
      m.guestApcb = s.guestApcb === null ? undefined : apcbFrom(s.guestApcb)
      m.guestUpdates = s.guestUpdates
      m.removing = s.removing
      this.byUuid.set(m.uuid, m)
      this.byGroup.set(m.iommuGroup, m)
      if (m.guest !== undefined) this.byGuest.set(m.guest, m)
    }
    this.freedGroups.splice(0, this.freedGroups.length, ...st.freedGroups)
    this.nextGroup = st.nextGroup
  }

  /** Queue `status` (vfio_ap adds it while the queue is bound to it). */
  queueStatus (q: Queue): string {
    const m = this.owner(q.apid, q.apqi)
    if (m === undefined) return 'unassigned\n'
    if (m.guest === undefined) return 'assigned\n'
    // Before 6.8 "in use" only meant that the owning mdev has a guest.
    return !this.profile.filterWholeMatrix || (m.shadow.apm.has(q.apid) && m.shadow.aqm.has(q.apqi)) ? 'in use\n' : 'assigned\n'
  }
}

