/**
 * vfio_ap and the mdev core as sysfs shows them: the matrix device and its mdev type,
 * each mdev's directory, `/sys/bus/matrix`, `/sys/bus/mdev`, `/sys/class/mdev_bus` and the
 * mdevs' IOMMU groups.
 */
import { fail } from '../errors.js'
import type { SynthTarget } from '../events.js'
import type { PowerDirs } from '../power.js'
import { type AttrDecl, DirType, type DirNode, type Node } from '../sysfs.js'
import type { Queue } from '../ap/device.js'
import { MATRIX_PATH, matrixText, type Mdev, TYPE_DIR, TYPE_NAME, type VfioAp } from './vfio-ap.js'

/** Attributes vfio_ap adds to the queues it has bound. */
export function vfioQueueAttrs (v: VfioAp): Array<AttrDecl<Queue>> {
  return [{ name: 'status', mode: 0o444, visible: q => q.driver === 'vfio_ap' && v.profile.queueStatus, show: q => v.queueStatus(q) }]
}

const links = (names: () => Iterable<string>, target: (name: string) => string | undefined): DirNode =>
  new DirType<null>([{ kind: 'link', names, lookup: (_c, name) => { const t = target(name); return t === undefined ? undefined : { kind: 'link', target: t } } }]).instance(null)

export interface VfioTrees {
  devicesVfioAp: DirNode
  busMatrix: DirNode
  busMdev: DirNode
  classMdevBus: DirNode
  iommuGroups: DirNode
}

export function vfioTree (v: VfioAp, power: PowerDirs): VfioTrees {
  const uuids = (): string[] => v.uuids()
  const mdevTarget = (uuid: string): string | undefined => v.mdev(uuid)?.uuid === uuid ? `${MATRIX_PATH}/${uuid}` : undefined
  const mdevOf = (name: string): Mdev | undefined => { const m = v.mdev(name); return m?.uuid === name ? m : undefined }

  const mdevDir = new DirType<Mdev>([
    { name: 'assign_adapter', mode: 0o200, store: (m, buf) => v.assignAdapter(m, buf) },
    { name: 'unassign_adapter', mode: 0o200, store: (m, buf) => v.unassignAdapter(m, buf) },
    { name: 'assign_domain', mode: 0o200, store: (m, buf) => v.assignDomain(m, buf) },
    { name: 'unassign_domain', mode: 0o200, store: (m, buf) => v.unassignDomain(m, buf) },
    { name: 'assign_control_domain', mode: 0o200, store: (m, buf) => v.assignControlDomain(m, buf) },
    { name: 'unassign_control_domain', mode: 0o200, store: (m, buf) => v.unassignControlDomain(m, buf) },
    { name: 'control_domains', mode: 0o444, show: m => m.adm.ids().filter(d => d <= v.aqmMax).map(d => d.toString(16).padStart(4, '0') + '\n').join('') },
    { name: 'matrix', mode: 0o444, show: m => matrixText(m.apm, m.aqm, v.apmMax, v.aqmMax) },
    { name: 'guest_matrix', mode: 0o444, visible: () => v.profile.dynamicConfig, show: m => matrixText(m.shadow.apm, m.shadow.aqm, v.apmMax, v.aqmMax) },
    { name: 'ap_config', mode: 0o644, visible: () => v.profile.apConfig, show: m => v.apConfigText(m), store: (m, buf) => v.storeApConfig(m, buf) },
    { name: 'remove', mode: 0o200, visible: m => !m.removing, store: (m, buf) => v.removeStore(m, buf) },
    { name: 'uevent', mode: 0o644, show: () => `DRIVER=vfio_ap_mdev\nMDEV_TYPE=${TYPE_NAME}\n`, store: (m, buf) => v.bus.synth({ devpath: m.devpath, subsystem: 'mdev', env: [['DRIVER', 'vfio_ap_mdev'], ['MDEV_TYPE', TYPE_NAME]], device: `vfio_ap_mdev ${m.uuid}` }, buf) },
    { name: 'mdev_type', link: () => `${MATRIX_PATH}/mdev_supported_types/${TYPE_DIR}` },
    { name: 'driver', link: () => 'bus/mdev/drivers/vfio_ap_mdev' },
    { name: 'subsystem', link: () => 'bus/mdev' },
    { name: 'iommu_group', link: m => `kernel/iommu_groups/${m.iommuGroup}` },
    { name: 'power', dir: m => power(m.devpath) }
  ])

  const synth = (t: SynthTarget) => (_c: unknown, buf: string): void => { v.bus.synth(t, buf) }

  const typeDir = new DirType<null>([
    { name: 'name', mode: 0o444, show: () => 'VFIO AP Passthrough Device\n' },
    { name: 'device_api', mode: 0o444, show: () => 'vfio-ap\n' },
    { name: 'available_instances', mode: 0o444, show: () => `${v.availableInstances}\n` },
    { name: 'create', mode: 0o200, store: (_c, buf) => { v.create(buf) } },
    { name: 'devices', dir: () => links(uuids, name => mdevOf(name) === undefined ? undefined : `${MATRIX_PATH}/${name}`) }
  ]).instance(null)

  const matrixDir = new DirType<null>([
    { name: 'features', mode: 0o444, visible: () => v.profile.matrixFeatures, show: () => 'guest_matrix hotplug ap_config\n' },
    { name: 'mdev_supported_types', dir: () => new DirType<null>([{ name: TYPE_DIR, dir: () => typeDir }]).instance(null) },
    { name: 'driver', link: () => 'bus/matrix/drivers/vfio_ap' },
    { name: 'subsystem', link: () => 'bus/matrix' },
    { name: 'uevent', mode: 0o644, show: () => 'DRIVER=vfio_ap\n', store: synth({ devpath: `/${MATRIX_PATH}`, subsystem: 'matrix', env: [['DRIVER', 'vfio_ap']], device: 'vfio_ap matrix' }) },
    { name: 'power', dir: () => power(`/${MATRIX_PATH}`) },
    {
      kind: 'dir',
      names: uuids,
      lookup: (_c, name): Node | undefined => { const m = mdevOf(name); return m === undefined ? undefined : mdevDir.instance(m) }
    }
  ]).instance(null)

  // A root device with neither bus nor class: dev_uevent_filter drops its events, and its
  // dev_err prefix has an empty driver string.
  const devicesVfioAp = new DirType<null>([
    { name: 'uevent', mode: 0o644, show: () => '', store: synth({ devpath: '/devices/vfio_ap', subsystem: undefined, env: [], device: ' vfio_ap' }) },
    { name: 'power', dir: () => power('/devices/vfio_ap') },
    { name: 'matrix', dir: () => matrixDir }
  ]).instance(null)

  const busDir = (bus: string, devices: DirNode, drivers: Record<string, DirNode>): DirNode => new DirType<null>([
    { name: 'devices', dir: () => devices },
    { name: 'drivers', dir: () => new DirType<null>(Object.entries(drivers).map(([name, d]) => ({ name, dir: () => d }))).instance(null) },
    { name: 'drivers_autoprobe', mode: 0o644, show: () => '1\n', store: () => {} },
    { name: 'drivers_probe', mode: 0o200, store: () => fail('ENODEV', 'drivers_probe: no such device') },
    { name: 'uevent', mode: 0o200, store: synth({ devpath: `/bus/${bus}`, subsystem: 'bus', env: [] }) }
  ]).instance(null)

  const busMatrix = busDir('matrix',
    links(() => ['matrix'], name => name === 'matrix' ? MATRIX_PATH : undefined),
    {
      vfio_ap: new DirType<null>([
        { name: 'uevent', mode: 0o200, store: synth({ devpath: '/bus/matrix/drivers/vfio_ap', subsystem: 'drivers', env: [] }) },
        { name: 'matrix', link: () => MATRIX_PATH }
      ]).instance(null)
    })

  const busMdev = busDir('mdev',
    links(uuids, mdevTarget),
    {
      vfio_ap_mdev: new DirType<null>([
        { name: 'uevent', mode: 0o200, store: synth({ devpath: '/bus/mdev/drivers/vfio_ap_mdev', subsystem: 'drivers', env: [] }) },
        { name: 'module', link: () => 'module/vfio_ap' },
        { kind: 'link', names: uuids, lookup: (_c, name) => { const t = mdevTarget(name); return t === undefined ? undefined : { kind: 'link', target: t } } }
      ]).instance(null)
    })

  const classMdevBus = links(() => ['matrix'], name => name === 'matrix' ? MATRIX_PATH : undefined)

  const groupDir = new DirType<Mdev>([
    { name: 'devices', dir: m => links(() => [m.uuid], name => name === m.uuid ? m.treePath : undefined) },
    { name: 'reserved_regions', mode: 0o444, show: () => '' }
  ])
  const iommuGroups = new DirType<null>([{
    kind: 'dir',
    names: () => v.mdevs.map(m => m.iommuGroup).sort((a, b) => a - b).map(String),
    lookup: (_c, name) => {
      const m = /^(0|[1-9][0-9]*)$/.test(name) ? v.byIommuGroup(Number(name)) : undefined
      return m === undefined ? undefined : groupDir.instance(m)
    }
  }]).instance(null)

  return { devicesVfioAp, busMatrix, busMdev, classMdevBus, iommuGroups }
}
