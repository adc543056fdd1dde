/**
 * The largest AP bus there is, in-process: 256 adapters x 256 domains (65,536 queues, QCI
 * max ids 255). Correctness only; how fast it is lives in bench/ (npm run bench), never in a
 * test. One host serves the whole file: booting it is the expensive part.
 */
import test from 'ava'
import { Host } from '../../lib/host.js'
import { Sysfs } from '../../lib/sysfs.js'
import { topologyFrom } from '../../lib/topology.js'
import { ALL_ONES, ALL_ZEROS, fullSizeTopology, uuidOf } from '../../bench/topologies.js'

const progress: Array<[number, number]> = []
const host = new Host(topologyFrom(fullSizeTopology(), 'full-size'), { progress: (done, total) => progress.push([done, total]) })
const fs = new Sysfs(host.root)
const names = (dir: string): string[] => fs.readdir(dir).map(e => e.name)

test.serial('boots with 256 cards and 65,536 queues, all bound, and reports its progress per adapter id', t => {
  t.is(host.read('bus/ap/ap_max_adapter_id'), '255\n')
  t.is(host.read('bus/ap/ap_max_domain_id'), '255\n')
  t.is(host.read('bus/ap/bindings'), '65536/65536 (complete)\n')
  t.is(progress.length, 256)
  t.deepEqual(progress.at(-1), [256, 256])
})

test.serial('bus/ap/devices lists 65,792 entries: every card and queue once, each a link to its device', t => {
  const devices = names('bus/ap/devices')
  t.is(devices.length, 65792)
  t.is(new Set(devices).size, 65792)
  t.true(devices.includes('card00') && devices.includes('cardff') && devices.includes('00.0000') && devices.includes('ff.00ff'))
  t.is(fs.readlink('bus/ap/devices/ff.00ff'), '../../../devices/ap/cardff/ff.00ff')
  t.is(names('devices/ap/cardff').filter(n => /^ff\.[0-9a-f]{4}$/.test(n)).length, 256)
  t.is(names('bus/ap/drivers/cex4queue').filter(n => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(n)).length, 65536)
})

test.serial('an apmask write moves every queue to vfio_ap and back', t => {
  host.write('bus/ap/apmask', ALL_ZEROS + '\n')
  t.is(names('bus/ap/drivers/vfio_ap').filter(n => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(n)).length, 65536)
  t.is(names('bus/ap/drivers/cex4queue').filter(n => n.includes('.')).length, 0)
  t.is(host.read('devices/ap/card80/80.0080/status'), 'unassigned\n')
  host.write('bus/ap/apmask', ALL_ONES + '\n')
  t.is(names('bus/ap/drivers/cex4queue').filter(n => n.includes('.')).length, 65536)
  t.is(host.read('bus/ap/bindings'), '65536/65536 (complete)\n')
})

test.serial('an mdev of 512 APQNs shows a full page of matrix; 1,000 mdevs come and go', t => {
  host.write('bus/ap/apmask', '-0-1\n')
  const create = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create'
  const m = `devices/vfio_ap/matrix/${uuidOf(0)}`
  host.write(create, uuidOf(0))
  host.write(`${m}/assign_adapter`, '0\n')
  host.write(`${m}/assign_adapter`, '1\n')
  for (let d = 0; d < 256; d++) host.write(`${m}/assign_domain`, `${d}\n`)
  const matrix = host.read(`${m}/matrix`)
  t.is(matrix.length, 4095)
  t.true(matrix.startsWith('00.0000\n00.0001\n'))
  t.is(host.read('devices/ap/card01/01.00ff/status'), 'assigned\n')
  for (let i = 1; i <= 1000; i++) host.write(create, uuidOf(i))
  t.is(names('kernel/iommu_groups').length, 1001)
  t.is(names('bus/mdev/devices').length, 1001)
  t.is(host.read('devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances'), `${65536 - 1001}\n`)
  for (let i = 1; i <= 1000; i++) host.write(`devices/vfio_ap/matrix/${uuidOf(i)}/remove`, '1\n')
  t.deepEqual(names('bus/mdev/devices'), [uuidOf(0)])
})
