/**
 * The AP bus as sysfs shows it: `/sys/bus/ap` (attributes, `devices/` links, driver
 * directories) and `/sys/devices/ap` (card and queue directories). Nothing is materialised:
 * every lookup goes straight to the model's maps.
 */
import type { PowerDirs } from '../power.js'
import { type AttrDecl, DirType, type DirNode, type EntryDecl, type Node } from '../sysfs.js'
import { ApBus, type ApDriver, busAttrs, isQueue } from './bus.js'
import { type Card, type Queue, cardCoreAttrs, queueCoreAttrs } from './device.js'
import { seQueueAttrs } from './se.js'
import { zcryptCardAttrs, zcryptQueueAttrs } from './zcrypt.js'

const dirOf = (t: DirType<Card> | DirType<Queue>, dev: Card | Queue): DirNode =>
  isQueue(dev) ? (t as DirType<Queue>).instance(dev) : (t as DirType<Card>).instance(dev)

const driverLink = (dev: Card | Queue): string | undefined => dev.driver === undefined ? undefined : `bus/ap/drivers/${dev.driver}`

/** Builds the AP bus directories; `queueExtra` are attributes other drivers add to queues (vfio_ap's `status`). */
export function apTree (bus: ApBus, queueExtra: Array<AttrDecl<Queue>>, power: PowerDirs): { busAp: DirNode, devicesAp: DirNode } {
  const queueDir = new DirType<Queue>([
    ...queueCoreAttrs,
    ...seQueueAttrs,
    ...zcryptQueueAttrs,
    ...queueExtra,
    { name: 'driver', link: driverLink },
    { name: 'subsystem', link: () => 'bus/ap' },
    { name: 'power', dir: q => power(q.devpath) }
  ])
  const cardDir = new DirType<Card>([
    ...cardCoreAttrs,
    ...zcryptCardAttrs,
    { name: 'driver', link: driverLink },
    { name: 'subsystem', link: () => 'bus/ap' },
    { name: 'power', dir: c => power(c.devpath) },
    {
      kind: 'dir',
      names: c => c.sortedQueues().map(q => q.name),
      lookup: (c, name) => {
        const m = /^([0-9a-f]{2})\.([0-9a-f]{4})$/.exec(name)
        if (m === null || parseInt(m[1], 16) !== c.id) return undefined
        const q = c.queues.get(parseInt(m[2], 16))
        return q === undefined ? undefined : queueDir.instance(q)
      }
    }
  ])

  /** Card, then its queues, card by card; only those `keep` accepts. */
  const deviceNames = (b: ApBus, keep?: (dev: Card | Queue) => boolean): string[] => {
    const out: string[] = []
    for (const c of b.sortedCards()) {
      if (keep === undefined || keep(c)) out.push(c.name)
      for (const q of c.sortedQueues()) if (keep === undefined || keep(q)) out.push(q.name)
    }
    return out
  }

  const driverDir = new DirType<ApDriver>([
    { name: 'bind', mode: 0o200, store: (d, buf) => bus.bindStore(d, buf) },
    { name: 'unbind', mode: 0o200, store: (d, buf) => bus.unbindStore(d, buf) },
    { name: 'uevent', mode: 0o200, store: (d, buf) => bus.synth({ devpath: `/bus/ap/drivers/${d.name}`, subsystem: 'drivers', env: [] }, buf) },
    { name: 'module', link: d => `module/${d.module}` },
    {
      kind: 'link',
      names: d => deviceNames(bus, dev => dev.driver === d.name),
      lookup: (d, name) => {
        const dev = bus.deviceByName(name)
        return dev !== undefined && dev.driver === d.name ? { kind: 'link', target: dev.treePath } : undefined
      }
    }
  ])

  const busAp = new DirType<ApBus>([
    ...busAttrs,
    {
      name: 'devices',
      dir: b => new DirType<ApBus>([{
        kind: 'link',
        names: bb => deviceNames(bb),
        lookup: (bb, name): Node | undefined => {
          const dev = bb.deviceByName(name)
          return dev === undefined ? undefined : { kind: 'link', target: dev.treePath }
        }
      }]).instance(b)
    },
    {
      name: 'drivers',
      dir: b => new DirType<ApBus>([{
        kind: 'dir',
        names: bb => bb.drivers.map(d => d.name),
        lookup: (bb, name) => {
          const d = bb.driver(name)
          return d === undefined ? undefined : driverDir.instance(d)
        }
      }]).instance(b)
    }
  ] satisfies Array<EntryDecl<ApBus>>).instance(bus)

  const devicesAp = new DirType<ApBus>([
    { name: 'uevent', mode: 0o644, show: () => '', store: (b, buf) => b.synth({ devpath: '/devices/ap', subsystem: 'ap', env: [], device: 'ap ap' }, buf) },
    { name: 'power', dir: () => power('/devices/ap') },
    {
      kind: 'dir',
      names: b => b.sortedCards().map(c => c.name),
      lookup: (b, name) => {
        const m = /^card([0-9a-f]{2})$/.exec(name)
        const c = m === null ? undefined : b.card(parseInt(m[1], 16))
        return c === undefined ? undefined : dirOf(cardDir, c)
      }
    }
  ]).instance(bus)

  return { busAp, devicesAp }
}
