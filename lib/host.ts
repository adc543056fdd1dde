/**
 * A simulated IBM Z host: the machine (topology), the AP bus with its drivers, vfio_ap, and
 * the sysfs tree rooted where `/sys` would be. Booting it runs what the kernel runs: drivers
 * register, the first bus scan creates and binds the devices.
 */
import { formatKlog, KernelLog, UeventLog } from './events.js'
import { ApBus } from './ap/bus.js'
import { powerDirs } from './power.js'
import { apTree } from './ap/tree.js'
import { zcryptDrivers } from './ap/zcrypt.js'
import { DirType, type DirNode, type Node, O_RDONLY, O_WRONLY, Sysfs } from './sysfs.js'
import type { Topology } from './topology.js'
import { vfioQueueAttrs, vfioTree } from './vfio/tree.js'
import { VfioAp } from './vfio/vfio-ap.js'

export interface HostOptions {
  /** Microseconds since boot, for kernel log and uevent timestamps. */
  clockUsec?: () => number
}

const dir = (entries: Record<string, Node | undefined>): DirNode =>
  new DirType<null>(Object.entries(entries)
    .filter((e): e is [string, Node] => e[1] !== undefined)
    .map(([name, node]) => node.kind === 'link'
      ? { name, link: () => node.target }
      : node.kind === 'dir' ? { name, dir: () => node } : { name, mode: node.mode, show: node.show === undefined ? undefined : () => node.show!() })).instance(null)

const link = (target: string): Node => ({ kind: 'link', target })

export class Host {
  readonly klog: KernelLog
  readonly uevents: UeventLog
  readonly bus: ApBus
  readonly vfio: VfioAp | undefined
  readonly root: DirNode
  private readonly fs: Sysfs

  constructor (readonly topology: Topology, opts: HostOptions = {}) {
    const start = Date.now()
    const clock = opts.clockUsec ?? (() => (Date.now() - start) * 1000)
    this.klog = new KernelLog(clock)
    this.uevents = new UeventLog(clock)
    this.bus = new ApBus(topology, this.klog, this.uevents)
    const modules = new Set(topology.modules)
    if (modules.has('zcrypt_cex4')) zcryptDrivers().forEach(d => this.bus.registerDriver(d))
    if (modules.has('vfio_ap')) {
      this.vfio = new VfioAp(this.bus, this.klog, this.uevents)
      this.bus.registerDriver(this.vfio)
      this.klog.info('vfio_ap matrix: MDEV: Registered')
    }
    this.bus.scan()
    this.root = this.buildTree()
    this.fs = new Sysfs(this.root)
  }

  private buildTree (): DirNode {
    const v = this.vfio
    const power = powerDirs()
    const ap = apTree(this.bus, v === undefined ? [] : vfioQueueAttrs(v), power)
    const vt = v === undefined ? undefined : vfioTree(v, power)
    const b = this.bus
    const param = (show: () => string, mode = 0o440): Node => ({ kind: 'attr', mode, show })
    const driverLinks = (names: Record<string, string>): DirNode => dir(Object.fromEntries(Object.entries(names).map(([n, t]) => [n, link(t)])))
    return dir({
      bus: dir({ ap: ap.busAp, matrix: vt?.busMatrix, mdev: vt?.busMdev }),
      devices: dir({ ap: ap.devicesAp, vfio_ap: vt?.devicesVfioAp }),
      class: dir({ mdev_bus: vt?.classMdevBus }),
      kernel: dir({
        iommu_groups: vt?.iommuGroups ?? dir({}),
        debug: dir({ apsim: this.controlTree() })
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

  /** The root-only control tree (where debugfs lives on a real host). */
  private controlTree (): DirNode {
    return new DirType<Host>([
      { name: 'dmesg', mode: 0o400, limit: Number.MAX_SAFE_INTEGER, show: h => h.klog.records().map(r => formatKlog(r) + '\n').join('') }
    ]).instance(this)
  }

  /** Reads an attribute as `cat` would (same permission checks, same 4095-byte cap). */
  read (path: string): string {
    const fh = this.fs.open(path, O_RDONLY)
    try {
      const chunks: Buffer[] = []
      for (let pos = 0; ; ) {
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
}
