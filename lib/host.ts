/**
 * A simulated IBM Z host: the machine (topology), the AP bus with its drivers, vfio_ap, the
 * sysfs tree rooted where `/sys` would be, and the control API. Booting runs what the kernel
 * runs: drivers register, the first bus scan creates and binds the devices.
 */
import { ApBus, type BusState } from './ap/bus.js'
import { apTree } from './ap/tree.js'
import { zcryptDrivers } from './ap/zcrypt.js'
import { ZcryptNodes, type ZcdnState, zcryptTrees } from './ap/zcdn.js'
import { CONTROL_PATH, controlTree, type GuestInfo, GUEST_NAME, type LparCommand, rerootedView } from './control.js'
import { fail, isSysfsError } from './errors.js'
import { Faults } from './faults.js'
import { GuestSystem, type GuestState } from './guest.js'
import { KernelLog, type KlogRecord, type Uevent, UeventLog } from './events.js'
import { type PowerControl, powerDirs } from './power.js'
import { DirType, type DirNode, type Node, O_RDONLY, O_WRONLY, resolve, Sysfs } from './sysfs.js'
import { type Topology, topologyData, topologyFrom } from './topology.js'
import { parseHostState } from './state.js'
import { vfioQueueAttrs, vfioTree } from './vfio/tree.js'
import { type Mdev, VfioAp, type VfioState } from './vfio/vfio-ap.js'

export interface HostOptions {
  /** Microseconds since boot, for kernel log and uevent timestamps. */
  clockUsec?: () => number
  /** How `kernel/debug/apsim/restore` reads a snapshot file (the daemon supplies it). */
  readFile?: (path: string) => Promise<string>
  /** A timer for fault rules with a delay. */
  sleep?: (ms: number) => Promise<void>
  /** Hears how far booting's first AP bus scan is, in adapter ids (a 256x256 host takes a while). */
  progress?: (done: number, total: number) => void
}

/** A whole simulated host as plain data: `apsim snapshot` writes it, `--state` keeps it. */
export interface HostState {
  format: 'apsim-state'
  version: 1
  /** The machine as it is now, in topology-file form. */
  topology: Record<string, unknown>
  bus: BusState
  vfio: VfioState | null
  klog: KlogRecord[]
  uevents: Uevent[]
  /** Devices whose `power/control` was set to `on` (absent in states written before it was kept). */
  power?: Record<string, 'on'>
  /** zcrypt's extra device nodes (absent in older states, and without zcrypt_cex4). */
  zcdn?: ZcdnState
  /** The kernels of the running guests (absent in older states: guests then boot afresh). */
  guests?: GuestState[]
}

interface Model { bus: ApBus, vfio: VfioAp | undefined, zcdn: ZcryptNodes | undefined, tree: DirNode, power: PowerControl }

const dir = (entries: Record<string, Node | undefined>, mode?: number): DirNode => {
  const d = new DirType<null>(Object.entries(entries)
    .filter((e): e is [string, Node] => e[1] !== undefined)
    .map(([name, node]) => node.kind === 'link'
      ? { name, link: () => node.target }
      : node.kind === 'dir' ? { name, dir: () => node } : { name, mode: node.mode, show: node.show === undefined ? undefined : () => node.show!() })).instance(null)
  return mode === undefined ? d : { ...d, mode }
}

const link = (target: string): Node => ({ kind: 'link', target })

const guestInfo = (m: Mdev, se: boolean): GuestInfo => ({
  name: m.guest!,
  mdev: m.uuid,
  se,
  apcb: { apm: (m.guestApcb?.apm ?? m.shadow.apm).toHex(), aqm: (m.guestApcb?.aqm ?? m.shadow.aqm).toHex(), adm: (m.guestApcb?.adm ?? m.shadow.adm).toHex() },
  updates: m.guestUpdates
})

export class Host {
  readonly klog: KernelLog
  readonly uevents: UeventLog
  /** Fault rules for users' error-handling tests; every injection is also an `apsim` event. */
  readonly faults: Faults
  /** @internal The `/sys` root; it follows the model across restores. */
  readonly root: DirNode
  private model: Model
  private readonly fs: Sysfs
  /** The running guests' own kernels, by guest name. */
  private readonly guestSystems = new Map<string, { system: GuestSystem, view: DirNode }>()
  /** Added to the clock so that time never runs backwards across a restore. */
  private clockBase = 0
  private readonly clockRaw: () => number

  /**
   * Why the last refused control write was refused (`ERRNO: words`), for `last_error`; kept
   * here, not in the control tree, which a restore rebuilds.
   */
  lastError = ''

  /** The machine as booted (a restore replaces it with the snapshot's). */
  topology: Topology
  /** The whole host as it booted: what `reset()` goes back to. */
  private booted: HostState

  constructor (topology: Topology, private readonly opts: HostOptions = {}) {
    this.topology = topology
    const start = Date.now()
    const raw = opts.clockUsec ?? (() => (Date.now() - start) * 1000)
    const clock = (): number => this.clockBase + raw()
    this.clockRaw = raw
    this.klog = new KernelLog(clock)
    this.uevents = new UeventLog(clock)
    this.faults = new Faults(inj => this.uevents.emit('fault', `/${inj.path}`, 'apsim', [
      ['APSIM_INJECTED', `rule ${inj.rule}`], ['OP', inj.op], ['ERRNO', inj.errno ?? '-'], ...(inj.delayMs === undefined ? [] : [['DELAY_MS', String(inj.delayMs)] as [string, string]])
    ]), opts.sleep)
    this.model = this.boot(topology)
    // A device that goes away takes its power settings along; one that comes back starts afresh.
    this.uevents.subscribe(u => { if (u.action === 'remove') this.model?.power.delete(u.devpath) })
    this.root = { kind: 'dir', entries: () => this.model.tree.entries(), lookup: name => this.model.tree.lookup(name) }
    this.fs = new Sysfs(this.root, undefined, this.faults)
    this.booted = this.snapshot()
  }

  /** @internal The model, for the daemon and the tests; not part of the library API. */
  get bus (): ApBus { return this.model.bus }
  /** @internal */
  get vfio (): VfioAp | undefined { return this.model.vfio }

  private boot (topology: Topology): Model {
    const bus = new ApBus(topology, this.klog, this.uevents)
    const modules = new Set(topology.modules)
    let zcdn: ZcryptNodes | undefined
    if (modules.has('zcrypt_cex4')) {
      zcryptDrivers().forEach(d => bus.registerDriver(d))
      zcdn = new ZcryptNodes(bus.profile, this.klog, this.uevents)
    }
    let vfio: VfioAp | undefined
    if (modules.has('vfio_ap')) {
      vfio = new VfioAp(bus, this.klog, this.uevents)
      bus.registerDriver(vfio)
      this.klog.info('vfio_ap matrix: MDEV: Registered')
    }
    bus.scan(this.opts.progress)
    const control: PowerControl = new Map()
    return { bus, vfio, zcdn, tree: this.buildTree(bus, vfio, zcdn, control), power: control }
  }

  private buildTree (b: ApBus, v: VfioAp | undefined, zn: ZcryptNodes | undefined, control: PowerControl): DirNode {
    const power = powerDirs(control)
    const ap = apTree(b, v === undefined ? [] : vfioQueueAttrs(v), power)
    const vt = v === undefined ? undefined : vfioTree(v, power)
    const zt = zn === undefined ? undefined : zcryptTrees(zn, power, (t, buf) => b.synth(t, buf))
    const param = (show: () => string, mode = 0o440): Node => ({ kind: 'attr', mode, show })
    const driverLinks = (names: Record<string, string>): DirNode => dir(Object.fromEntries(Object.entries(names).map(([n, t]) => [n, link(t)])))
    return dir({
      bus: dir({ ap: ap.busAp, matrix: vt?.busMatrix, mdev: vt?.busMdev }),
      devices: dir({ ap: ap.devicesAp, vfio_ap: vt?.devicesVfioAp, virtual: zt === undefined ? undefined : dir({ misc: zt.virtualMisc, zcrypt: zt.virtualZcrypt }) }),
      class: dir({ mdev_bus: vt?.classMdevBus, misc: zt?.classMisc, zcrypt: zt?.classZcrypt }),
      kernel: dir({
        iommu_groups: vt?.iommuGroups ?? dir({}),
        debug: dir({ apsim: { ...controlTree(this), mode: 0o700 } }, 0o700)
      }),
      module: dir({
        ap: dir({
          parameters: dir({
            apmask: param(() => `${b.params.apmask ?? '(null)'}\n`),
            aqmask: param(() => `${b.params.aqmask ?? '(null)'}\n`),
            domain: param(() => `${b.apDomain}\n`),
            poll_thread: param(() => `${b.pollThread ? 1 : 0}\n`),
            useirq: param(() => `${b.params.useirq === false ? 0 : 1}\n`),
            msgpool_min_items: param(() => '8\n', 0o400)
          })
        }),
        zcrypt_cex4: b.driver('cex4card') === undefined ? undefined : dir({ drivers: driverLinks({ 'ap:cex4card': 'bus/ap/drivers/cex4card', 'ap:cex4queue': 'bus/ap/drivers/cex4queue' }) }),
        vfio_ap: v === undefined ? undefined : dir({ drivers: driverLinks({ 'ap:vfio_ap': 'bus/ap/drivers/vfio_ap', 'mdev:vfio_ap_mdev': 'bus/mdev/drivers/vfio_ap_mdev' }) })
      })
    })
  }

  // -------------------------------------------------------------------------------------
  // Reading and writing attributes in-process

  /** Reads an attribute as `cat` would (same permission checks, same 4095-byte cap). */
  read (path: string): string {
    const fh = this.fs.open(path, O_RDONLY)
    try {
      const chunks: Buffer[] = []
      for (let pos = 0; ;) {
        const b = this.fs.read(fh, pos, 65536)
        if (b.length === 0) break
        chunks.push(Buffer.from(b))
        pos += b.length
      }
      return Buffer.concat(chunks).toString('latin1')
    } finally {
      this.fs.release(fh)
    }
  }

  /** One write(2) of `data` to an attribute; throws SysfsError as the store would fail. */
  write (path: string, data: string): number {
    const r = this.store(path, data)
    if (typeof r !== 'number') throw new Error(`${path}: the store blocks; use writeAsync`)
    return r
  }

  /** Like write, for stores that may block (mdev `remove` while a guest holds the device). */
  writeAsync (path: string, data: string): Promise<number> {
    try {
      return Promise.resolve(this.store(path, data))
    } catch (e) {
      return Promise.reject(e)
    }
  }

  private store (path: string, data: string): number | Promise<number> {
    const fh = this.fs.open(path, O_WRONLY)
    let r: number | Promise<number>
    try {
      r = this.fs.write(fh, Buffer.from(data, 'latin1'))
    } catch (e) {
      this.fs.release(fh)
      throw e
    }
    if (typeof r === 'number') { this.fs.release(fh); return r }
    return r.finally(() => this.fs.release(fh))
  }

  // -------------------------------------------------------------------------------------
  // Control API: guests

  private requireVfio (): VfioAp {
    if (this.vfio === undefined) fail('ENODEV', 'the vfio_ap module is not loaded')
    return this.vfio
  }

  /**
   * A guest starts on an mdev (QEMU opens its VFIO device): it gets the shadow matrix, and its
   * kernel boots on it — a Secure Execution guest's when `se`.
   */
  startGuest (name: string, uuid: string, se = false): void {
    if (!GUEST_NAME.test(name)) fail('EINVAL', `guest name ${JSON.stringify(name)}: use letters, digits, '_', '.', '-' (at most 64)`)
    this.requireVfio().attachGuest(uuid, name)
    this.guestSystems.delete(name)
    this.guestSystem(name, se)
  }

  /** The guest stops (QEMU closes the device): its masks are cleared, its queues reset, its kernel is gone. */
  stopGuest (name: string): void {
    const g = this.guest(name)
    if (g === undefined) fail('ENOENT', `no running guest ${JSON.stringify(name)}`)
    this.requireVfio().detachGuest(g.mdev)
    this.guestSystems.delete(name)
  }

  guests (): GuestInfo[] {
    const v = this.vfio
    if (v === undefined) return []
    return v.mdevs.filter(m => m.guest !== undefined).map(m => this.info(m)).sort((a, b) => a.name.localeCompare(b.name))
  }

  /** One running guest by name, without going through every mdev (lookups under guest/NAME). */
  guest (name: string): GuestInfo | undefined {
    const m = this.vfio?.guestMdev(name)
    return m === undefined ? undefined : this.info(m)
  }

  private info (m: Mdev): GuestInfo { return guestInfo(m, this.guestSystems.get(m.guest!)?.system.se ?? false) }

  /**
   * The kernel guest `name` runs, following the host's changes of its APCB; booted when first
   * needed (a guest attached by a state from before guests kept their kernels boots afresh).
   */
  private guestSystem (name: string, se = false): { system: GuestSystem, view: DirNode } | undefined {
    const m = this.vfio?.guestMdev(name)
    if (m === undefined || m.guestApcb === undefined) return undefined
    let g = this.guestSystems.get(name)
    if (g === undefined) {
      const system = GuestSystem.boot(name, se, this.bus.lpar, m.guestApcb, m.guestUpdates)
      g = { system, view: this.viewOf(system) }
      this.guestSystems.set(name, g)
    }
    g.system.follow(this.bus.lpar, m.guestApcb, m.guestUpdates)
    return g
  }

  private viewOf (system: GuestSystem): DirNode {
    const r = system.host.root
    return rerootedView(dir({ bus: dir({ ap: resolve(r, 'bus/ap') }), devices: dir({ ap: resolve(r, 'devices/ap') }), module: resolve(r, 'module') }), `${CONTROL_PATH}/guest/${system.name}/sys`)
  }

  /**
   * What the guest's own AP bus shows: a KVM guest whose QCI reports the guest's masks, with
   * the host's adapters (types, modes, state) behind them. Its writable files write to the
   * guest's kernel, never to the host.
   */
  guestView (name: string): DirNode | undefined {
    return this.guestSystem(name)?.view
  }

  // -------------------------------------------------------------------------------------
  // Control API: the machine's AP configuration

  /**
   * Applies changes to the machine's AP configuration and then one AP bus scan, so a
   * running guest sees one consolidated hot plug/unplug. All or nothing: a refused command
   * leaves the machine as it was.
   */
  changeLpar (cmds: LparCommand[]): void {
    const lpar = this.bus.lpar
    const before = lpar.topology(this.topology)
    try {
      for (const c of cmds) {
        switch (c.op) {
          case 'add-adapter': lpar.addAdapter(c.adapter); break
          case 'remove-adapter': lpar.removeAdapter(c.id); break
          case 'configure': lpar.setAdapterConfigured(c.id, c.on); break
          case 'checkstop': lpar.setAdapterCheckstop(c.id, c.on); break
          case 'add-usage-domain': lpar.addUsageDomain(c.id); break
          case 'remove-usage-domain': lpar.removeUsageDomain(c.id); break
          case 'add-control-domain': lpar.addControlDomain(c.id); break
          case 'remove-control-domain': lpar.removeControlDomain(c.id); break
          case 'scan': break
        }
      }
    } catch (e) {
      lpar.reset(before)
      throw e
    }
    this.bus.scan()
  }

  /**
   * The hypervisor gives the machine a new AP configuration (a guest's APCB changed): adapters
   * and domains become `t`'s, then one AP bus scan.
   */
  reconfigure (t: Topology): void {
    this.bus.lpar.reset(t)
    this.bus.scan()
  }

  /** The machine's AP configuration in the control grammar's words. */
  lparText (): string {
    const lpar = this.bus.lpar
    const hex = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`
    const names: Record<number, string> = { 10: 'CEX4', 11: 'CEX5', 12: 'CEX6', 13: 'CEX7', 14: 'CEX8' }
    const lines = [...lpar.adapters.values()].sort((a, b) => a.id - b.id).map(a =>
      `adapter ${hex(a.id)} ${names[a.rawType] ?? a.rawType} ${a.mode} ${a.configured ? 'configured' : 'deconfigured'}${a.checkstopped ? ' checkstopped' : ''}`)
    lines.push(`usage-domains ${lpar.usageDomains.ids().map(hex).join(' ')}`.trimEnd())
    lines.push(`control-domains ${lpar.controlDomains.ids().map(hex).join(' ')}`.trimEnd())
    return lines.join('\n') + '\n'
  }

  // -------------------------------------------------------------------------------------
  // Snapshots

  snapshot (): HostState {
    const guests = this.guests().map(g => this.guestSystem(g.name)?.system.state()).filter(g => g !== undefined)
    return {
      format: 'apsim-state',
      version: 1,
      topology: topologyData(this.bus.lpar.topology(this.topology)),
      bus: this.bus.state(),
      vfio: this.vfio?.state() ?? null,
      klog: this.klog.records(),
      uevents: this.uevents.records(),
      power: Object.fromEntries([...this.model.power].filter(([, v]) => v === 'on').sort(([a], [b]) => a < b ? -1 : 1)) as Record<string, 'on'>,
      zcdn: this.model.zcdn?.state(),
      ...(guests.length === 0 ? {} : { guests })
    }
  }

  /**
   * Replaces the whole model by a snapshot's. The snapshot is untrusted: every field is checked
   * first (lib/state.ts), the new host is built aside, and it is swapped in only once all of it
   * is built, so a refused snapshot (EINVAL naming the field) changes nothing.
   */
  restore (state: HostState): void {
    const s = parseHostState(state)
    this.install(s, topologyFrom(s.topology, 'state topology'))
  }

  /** Builds a checked state's host aside, then swaps it in (restore's second half). */
  private install (s: HostState, topology: Topology): void {
    let model: Model
    let guests: Array<[string, { system: GuestSystem, view: DirNode }]>
    this.klog.muted = this.uevents.muted = true
    try {
      model = this.boot(topology)
      model.bus.restore(s.bus)
      if (s.vfio !== null && model.vfio !== undefined) model.vfio.restore(s.vfio)
      if (s.zcdn !== undefined && model.zcdn !== undefined) model.zcdn.restore(s.zcdn)
      for (const [devpath, v] of Object.entries(s.power ?? {})) model.power.set(devpath, v)
      guests = (s.guests ?? []).map(g => {
        const system = GuestSystem.fromState(g)
        return [g.name, { system, view: this.viewOf(system) }]
      })
    } catch (e) {
      if (isSysfsError(e)) throw e
      return fail('EINVAL', `state does not fit: ${(e as Error).message}`)
    } finally {
      this.klog.muted = this.uevents.muted = false
    }
    this.model = model
    this.topology = topology
    this.klog.load(s.klog)
    this.uevents.load(s.uevents)
    const last = Math.max(s.klog.at(-1)?.usec ?? 0, s.uevents.at(-1)?.usec ?? 0)
    this.clockBase = Math.max(0, last - this.clockRaw())
    this.guestSystems.clear()
    for (const [name, g] of guests) this.guestSystems.set(name, g)
  }

  /**
   * `restore` in the control tree: a snapshot file named by its path, read by the daemon's
   * reader (asynchronously: the mount keeps serving meanwhile). A file that cannot be read or
   * parsed is EINVAL with the reason; the reader's own refusals (ELOOP) pass through.
   */
  async restoreFrom (path: string): Promise<void> {
    const read = this.opts.readFile
    if (read === undefined) fail('EOPNOTSUPP', 'this host cannot read files')
    let state: unknown
    try {
      state = JSON.parse(await read(path))
    } catch (e) {
      if (isSysfsError(e)) throw e
      return fail('EINVAL', `${path}: ${(e as Error).message}`)
    }
    this.restore(state as HostState)
  }

  /** A host booted from a snapshot; `reset()` goes back to it. */
  static fromState (state: HostState, opts: HostOptions = {}): Host {
    const s = parseHostState(state)
    const topology = topologyFrom(s.topology, 'state topology')
    const host = new Host(topology, opts)
    host.install(s, topology)
    host.booted = host.snapshot()
    return host
  }

  /**
   * A test fixture's reset: the whole host back to the state it booted in (or to `state`),
   * with no fault rules and an empty fault history. A snapshot that does not fit changes nothing.
   */
  reset (state: HostState = this.booted): void {
    this.restore(state)
    this.faults.reset()
  }

  /** @internal `reset` in the control tree: `1` for the state the host booted in, else the path of a snapshot file. */
  resetFrom (arg: string): Promise<void> | undefined {
    if (arg === '1') { this.reset(); return undefined }
    if (!arg.startsWith('/')) fail('EINVAL', `expected 1 or the absolute path of a snapshot file, got ${JSON.stringify(arg)}`)
    return this.restoreFrom(arg).then(() => { this.faults.reset() })
  }
}
