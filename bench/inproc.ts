/**
 * The model alone, in process (no FUSE): what booting, listing, looking up and storing cost
 * on the full-size host, next to the default host in the same process. Prints one JSON
 * object; `node --cpu-prof build/bench/inproc.js` profiles the same work.
 *
 *   node build/bench/inproc.js [--rounds N]
 */
import { Host } from '../lib/host.js'
import { Sysfs } from '../lib/sysfs.js'
import { defaultTopology, topologyFrom } from '../lib/topology.js'
import { median } from './stats.js'
import { ALL_ONES, ALL_ZEROS, fullSizeTopology, uuidOf } from './topologies.js'

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1] ?? 3) || 3
const t = (): number => performance.now()
const time = (fn: () => void): number => { const a = t(); fn(); return t() - a }
/** µs per call of fn over n calls. */
const per = (n: number, fn: (i: number) => void): number => { const a = t(); for (let i = 0; i < n; i++) fn(i); return (t() - a) * 1000 / n }

const full = topologyFrom(fullSizeTopology(), 'full-size')
const out: Record<string, unknown> = {}

// Boot, interleaved with the default host.
const bootFull: number[] = []
const bootDefault: number[] = []
let host!: Host
for (let r = 0; r < rounds; r++) {
  bootDefault.push(time(() => new Host(defaultTopology())))
  bootFull.push(time(() => { host = new Host(full) }))
}
out.bootFullMs = median(bootFull)
out.bootDefaultMs = median(bootDefault)
global.gc?.()
out.heapMB = process.memoryUsage().heapUsed / 2 ** 20
out.rssMB = process.memoryUsage().rss / 2 ** 20
const small = new Host(defaultTopology())
const fs = new Sysfs(host.root)
const fsSmall = new Sysfs(small.root)

const devices = fs.readdir('bus/ap/devices').length
if (devices !== 65792) throw new Error(`bus/ap/devices has ${devices} entries, not 65,792`)
out.readdirDevicesMs = median(Array.from({ length: rounds }, () => time(() => fs.readdir('bus/ap/devices'))))
out.readdirCardMs = median(Array.from({ length: rounds }, () => time(() => fs.readdir('devices/ap/cardff'))))
out.readdirDriverMs = median(Array.from({ length: rounds }, () => time(() => fs.readdir('bus/ap/drivers/cex4queue'))))

// Lookups and reads: the same depth on both hosts, interleaved.
const deepFull = 'devices/ap/cardff/ff.00ff/online'
const deepSmall = 'devices/ap/card05/05.0004/online'
const N = 20000
const stF: number[] = []; const stS: number[] = []; const rdF: number[] = []; const rdS: number[] = []
const lnF: number[] = []; const lnS: number[] = []
for (let r = 0; r < rounds; r++) {
  stS.push(per(N, () => fsSmall.stat(deepSmall)))
  stF.push(per(N, () => fs.stat(deepFull)))
  rdS.push(per(N, () => small.read(deepSmall)))
  rdF.push(per(N, () => host.read(deepFull)))
  lnS.push(per(N, () => fsSmall.stat('bus/ap/drivers/cex4queue/05.0004')))
  lnF.push(per(N, () => fs.stat('bus/ap/drivers/cex4queue/ff.00ff')))
}
out.statUs = { full: median(stF), default: median(stS) }
out.readUs = { full: median(rdF), default: median(rdS) }
out.driverLinkStatUs = { full: median(lnF), default: median(lnS) }

// The all-queues apmask flip: every queue to vfio_ap and back.
const toVfio: number[] = []
const toHost: number[] = []
for (let r = 0; r < rounds; r++) {
  toVfio.push(time(() => host.write('bus/ap/apmask', ALL_ZEROS + '\n')))
  toHost.push(time(() => host.write('bus/ap/apmask', ALL_ONES + '\n')))
}
const bound = host.read('bus/ap/bindings')
out.apmaskFlipMs = { toVfio: median(toVfio), toHost: median(toHost) }

// An mdev holding 512 APQNs (adapters 0 and 1, all domains): its matrix is a full page.
host.write('bus/ap/apmask', '-0-1\n')
const M = `devices/vfio_ap/matrix/${uuidOf(0)}`
host.write('devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create', uuidOf(0))
host.write(`${M}/assign_adapter`, '0\n')
host.write(`${M}/assign_adapter`, '1\n')
out.assign256DomainsMs = time(() => { for (let d = 0; d < 256; d++) host.write(`${M}/assign_domain`, `${d}\n`) })
const matrix = host.read(`${M}/matrix`)
if (matrix.length !== 4095) throw new Error(`matrix is ${matrix.length} bytes, not 4095`)
out.matrixReadUs = per(1000, () => host.read(`${M}/matrix`))

// 1,000 mdevs: create, list, look up, store, remove.
const create = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create'
out.create1000Ms = time(() => { for (let i = 1; i <= 1000; i++) host.write(create, uuidOf(i)) })
out.readdirMatrixMs = time(() => fs.readdir('devices/vfio_ap/matrix'))
out.readdirIommuMs = time(() => fs.readdir('kernel/iommu_groups'))
out.iommuLookupUs = per(N, () => fs.stat('kernel/iommu_groups/500/devices'))
out.mdevStatUs = per(N, () => fs.stat(`devices/vfio_ap/matrix/${uuidOf(500)}/matrix`))
out.queueStatusReadUs = per(N, () => host.read('devices/ap/card01/01.0080/status'))
out.storeWith1000MdevsUs = per(2000, i => host.write(`devices/vfio_ap/matrix/${uuidOf(1000)}/${i % 2 === 0 ? 'assign_control_domain' : 'unassign_control_domain'}`, '4\n'))
out.remove1000Ms = time(() => { for (let i = 1; i <= 1000; i++) host.write(`devices/vfio_ap/matrix/${uuidOf(i)}/remove`, '1\n') })
out.bindingsAfterFlip = bound.trim()

process.stdout.write(JSON.stringify(out) + '\n')
